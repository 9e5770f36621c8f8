package dev.retina.server.http;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;

import java.util.ArrayDeque;

/**
 * HTTP/1.1 pipelining: a client may send several requests before reading any answer, and must get the answers in
 * request order. Requests are handled off the event loop and finish in any order, so this passes one request at a
 * time down the pipeline and holds the next until the current one's response has been written whole. Event loop
 * only, one instance per channel; sits right behind the aggregator.
 */
public final class HttpPipeliningHandler extends ChannelDuplexHandler {
    private final ArrayDeque<FullHttpRequest> waiting = new ArrayDeque<>();
    private boolean busy;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        if (msg instanceof FullHttpRequest request) {
            if (busy) {
                waiting.add(request);
                return;
            }
            busy = true;
        }
        super.channelRead(ctx, msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
        if (msg instanceof LastHttpContent)
            promise.addListener(f -> ctx.executor().execute(() -> next(ctx)));
        super.write(ctx, msg, promise);
    }

    private void next(ChannelHandlerContext ctx) {
        busy = false;
        FullHttpRequest request = waiting.poll();
        if (request == null) return;
        if (!ctx.channel().isActive()) {
            ReferenceCountUtil.release(request);
            return;
        }
        busy = true;
        ctx.fireChannelRead(request);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        for (FullHttpRequest r; (r = waiting.poll()) != null; ) ReferenceCountUtil.release(r);
        super.channelInactive(ctx);
    }
}

package dev.retina.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.concurrent.ScheduledFuture;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * {@code --request-timeout}: a request whose response has not ended that long after its body arrived is aborted.
 * If nothing was sent yet the client gets 504 ({@code code: "request_timeout"}; 504 rather than 408, which means the
 * client was slow to send); a stream already under way is cut. Either way the connection closes, and closing it
 * cancels the request's future, which aborts the generation and frees its KV blocks. Runs on the event loop.
 */
public final class RequestTimeoutHandler extends ChannelDuplexHandler {
    private final long timeoutNanos;
    private final ObjectMapper mapper;
    private ScheduledFuture<?> timer;
    private boolean responseStarted;

    public RequestTimeoutHandler(Duration timeout, ObjectMapper mapper) {
        this.timeoutNanos = timeout.toNanos();
        this.mapper = mapper;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof FullHttpRequest) {
            responseStarted = false;
            cancelTimer();
            timer = ctx.executor().schedule(() -> expire(ctx), timeoutNanos, TimeUnit.NANOSECONDS);
        }
        ctx.fireChannelRead(msg);
    }

    private void expire(ChannelHandlerContext ctx) {
        timer = null;
        if (!ctx.channel().isActive()) return;
        if (responseStarted) {
            ctx.close();
            return;
        }
        responseStarted = true;
        HttpErrors.send(ctx, HttpErrors.response(mapper, new ApiException(504, ApiException.SERVER_ERROR,
                "The request took longer than the server's limit of " + timeoutNanos / 1_000_000 / 1000.0
                        + " seconds (--request-timeout) and was aborted", null, "request_timeout")), false);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
        if (msg instanceof HttpResponse) responseStarted = true;
        if (msg instanceof LastHttpContent) cancelTimer();
        super.write(ctx, msg, promise);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        cancelTimer();
        super.channelInactive(ctx);
    }

    private void cancelTimer() {
        if (timer != null) {
            timer.cancel(false);
            timer = null;
        }
    }
}

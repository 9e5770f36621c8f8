package dev.retina.server.http;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.LastHttpContent;

import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Slow-client limits (Slowloris): a request must arrive whole, headers and body, within {@code requestReadTimeout} of
 * its first byte, and a keep-alive connection with nothing in flight is closed after {@code idleTimeout}. A request
 * being answered (a long generation, a stream) is never cut here; {@code --request-timeout} bounds those. Event loop
 * only, one instance per channel.
 */
public final class SlowClientHandler extends ChannelDuplexHandler {
    private final long requestReadNanos;
    private final long idleNanos;
    private ScheduledFuture<?> deadline;
    private boolean reading;    // between a request's first byte and its last
    private int numOutstanding; // requests read whose responses have not been written whole

    public SlowClientHandler(Duration requestReadTimeout, Duration idleTimeout) {
        this.requestReadNanos = requestReadTimeout.toNanos();
        this.idleNanos = idleTimeout.toNanos();
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        arm(ctx, idleNanos);
        super.channelActive(ctx);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        if (!reading && msg instanceof HttpRequest) {
            reading = true;
            arm(ctx, requestReadNanos);
        }
        if (reading && msg instanceof LastHttpContent) {
            reading = false;
            numOutstanding++;
            cancel();
        }
        super.channelRead(ctx, msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
        if (msg instanceof LastHttpContent) {
            promise.addListener(f -> {
                numOutstanding = Math.max(0, numOutstanding - 1);
                if (numOutstanding == 0 && !reading && ctx.channel().isActive()) arm(ctx, idleNanos);
            });
        }
        super.write(ctx, msg, promise);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        cancel();
        super.channelInactive(ctx);
    }

    private void arm(ChannelHandlerContext ctx, long nanos) {
        cancel();
        deadline = ctx.executor().schedule(() -> {
            if (reading || numOutstanding == 0) ctx.close(); // a request that dribbles in, or an idle connection
        }, nanos, TimeUnit.NANOSECONDS);
    }

    private void cancel() {
        if (deadline != null) deadline.cancel(false);
        deadline = null;
    }
}

package dev.retina.server.http;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.DefaultLastHttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A server-sent-events response as OpenAI streams it (Netty has no SSE codec): a {@code text/event-stream} chunked
 * response, one {@code data: {json}} event per {@link #send}, and {@code data: [DONE]} in the last content.
 * Thread-safe: events sent before the router attaches the channel are buffered. Back-pressure: producers check
 * {@link #isWritable()} and register {@link #onWritable} to resume; a closed connection runs {@link #onCancel}.
 */
public final class SseEmitter {
    private ChannelHandlerContext ctx;
    private boolean keepAlive;
    private final List<String> pending = new ArrayList<>();
    private boolean done;
    private boolean cancelled;
    private Runnable cancelAction;
    private Runnable writableAction;
    private Runnable afterDone = () -> {
    };

    /** Sends one event's data (a JSON text). */
    public void send(String data) {
        ChannelHandlerContext c;
        synchronized (this) {
            if (done || cancelled) return;
            if (ctx == null) {
                pending.add(data);
                return;
            }
            c = ctx;
        }
        c.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer("data: " + data + "\n\n", StandardCharsets.UTF_8)));
    }

    /** Sends {@code data: [DONE]} and ends the response. */
    public void complete() {
        ChannelHandlerContext c;
        synchronized (this) {
            if (done) return;
            done = true;
            if (ctx == null || cancelled) return;
            c = ctx;
        }
        writeDone(c);
    }

    private void writeDone(ChannelHandlerContext c) {
        var f = c.writeAndFlush(new DefaultLastHttpContent(Unpooled.copiedBuffer("data: [DONE]\n\n", StandardCharsets.UTF_8)));
        if (!keepAlive) f.addListener(ChannelFutureListener.CLOSE);
        else f.addListener(x -> c.executor().execute(afterDone));
    }

    /** Whether the socket can take more now. */
    public synchronized boolean isWritable() {
        return ctx == null || cancelled || ctx.channel().isWritable();
    }

    /** Runs {@code action} once the socket is writable again (at once when it already is). */
    public void onWritable(Runnable action) {
        boolean now;
        synchronized (this) {
            now = isWritable();
            if (!now) writableAction = action;
        }
        if (now) action.run();
    }

    /** What to do when the client goes away before the stream ends (abort the generation). */
    public void onCancel(Runnable action) {
        boolean now;
        synchronized (this) {
            now = cancelled;
            cancelAction = action;
        }
        if (now) action.run();
    }

    // ---- router side ----

    /** Writes the response head and whatever was buffered; later events go straight out. Event loop only. */
    void attach(ChannelHandlerContext ctx, boolean keepAlive, Runnable afterDone) {
        HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
        head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8");
        head.headers().set(HttpHeaderNames.CACHE_CONTROL, "no-cache");
        head.headers().set(HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderValues.CHUNKED);
        head.headers().set(HttpHeaderNames.CONNECTION, keepAlive ? HttpHeaderValues.KEEP_ALIVE : HttpHeaderValues.CLOSE);
        ctx.write(head);
        List<String> buffered;
        boolean finished;
        synchronized (this) {
            this.ctx = ctx;
            this.keepAlive = keepAlive;
            this.afterDone = afterDone;
            buffered = new ArrayList<>(pending);
            pending.clear();
            finished = done;
        }
        for (String data : buffered)
            ctx.write(new DefaultHttpContent(Unpooled.copiedBuffer("data: " + data + "\n\n", StandardCharsets.UTF_8)));
        ctx.flush();
        if (finished) writeDone(ctx);
    }

    void writabilityChanged() {
        Runnable action = null;
        synchronized (this) {
            if (ctx != null && ctx.channel().isWritable()) {
                action = writableAction;
                writableAction = null;
            }
        }
        if (action != null) action.run();
    }

    void cancel() {
        Runnable action;
        Runnable writable;
        synchronized (this) {
            if (done || cancelled) return;
            cancelled = true;
            action = cancelAction;
            writable = writableAction;
            writableAction = null;
        }
        if (action != null) action.run();
        if (writable != null) writable.run(); // let a paused producer see the cancellation and stop
    }
}

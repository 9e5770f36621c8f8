package dev.retina.server.http;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.QueryStringDecoder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One INFO line per request when its response ends (streamed or not): id, method, path, status, model, prompt and
 * generation tokens, images, latency. Logger {@code dev.retina.access}; {@code --disable-log-requests} leaves this
 * handler out of the pipeline. Runs on the event loop, behind {@link RequestIdHandler}.
 */
public final class AccessLogHandler extends ChannelDuplexHandler {
    private static final Logger log = LoggerFactory.getLogger("dev.retina.access");

    private String method;
    private String path;
    private int status;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof HttpRequest request) {
            method = request.method().name();
            path = new QueryStringDecoder(request.uri()).rawPath();
        }
        ctx.fireChannelRead(msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
        if (msg instanceof HttpResponse response) status = response.status().code();
        if (msg instanceof LastHttpContent && log.isInfoEnabled()) {
            RequestContext rc = ctx.channel().attr(RequestContext.KEY).get();
            log.info(line(rc, method, path, status));
        }
        super.write(ctx, msg, promise);
    }

    static String line(RequestContext rc, String method, String path, int status) {
        StringBuilder sb = new StringBuilder(160);
        sb.append("request id=").append(rc == null ? "-" : rc.requestId())
                .append(' ').append(method).append(' ').append(path == null ? "-" : cut(path))
                .append(" status=").append(status);
        if (rc != null) {
            if (rc.model() != null) sb.append(" model=").append(cut(rc.model()));
            if (rc.numPromptTokens() >= 0) sb.append(" prompt_tokens=").append(rc.numPromptTokens());
            if (rc.numGenerationTokens() >= 0) sb.append(" generation_tokens=").append(rc.numGenerationTokens());
            if (rc.numImages() > 0) sb.append(" images=").append(rc.numImages());
            sb.append(" latency_ms=").append(String.format(java.util.Locale.ROOT, "%.1f",
                    (System.nanoTime() - rc.startNanos()) / 1e6));
        }
        return sb.toString();
    }

    private static String cut(String s) {
        return s.length() <= 100 ? s : s.substring(0, 97) + "...";
    }
}

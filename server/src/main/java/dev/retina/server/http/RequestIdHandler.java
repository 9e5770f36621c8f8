package dev.retina.server.http;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;

import java.util.UUID;
import java.util.regex.Pattern;

/**
 * Gives each request a {@link RequestContext}: its id is the client's {@code X-Request-Id} when that is a sane token,
 * else a fresh UUID. With {@code echo} on ({@code --enable-request-id-headers}) every response carries the id back.
 * Runs on the event loop, in front of the aggregator so 413s and CORS preflights get an id too.
 */
public final class RequestIdHandler extends ChannelDuplexHandler {
    public static final String HEADER = "X-Request-Id";
    /** Ids are echoed into headers and logs: printable ASCII without spaces, bounded. */
    private static final Pattern SAFE_ID = Pattern.compile("[\\x21-\\x7e]{1,128}");

    private final boolean echo;

    public RequestIdHandler(boolean echo) {
        this.echo = echo;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof HttpRequest request) {
            String given = request.headers().get(HEADER);
            String id = given != null && SAFE_ID.matcher(given).matches() ? given : UUID.randomUUID().toString();
            ctx.channel().attr(RequestContext.KEY).set(new RequestContext(id, System.nanoTime()));
        }
        ctx.fireChannelRead(msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
        if (echo && msg instanceof HttpResponse response) {
            RequestContext rc = ctx.channel().attr(RequestContext.KEY).get();
            if (rc != null) response.headers().set(HEADER, rc.requestId());
        }
        super.write(ctx, msg, promise);
    }
}

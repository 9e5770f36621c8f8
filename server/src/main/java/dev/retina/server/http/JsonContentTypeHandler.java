package dev.retina.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpUtil;

import java.util.Locale;

/**
 * 415 for a request body that says it is not JSON ({@code curl -d} sends {@code application/x-www-form-urlencoded}).
 * A body without any Content-Type is read as JSON, as FastAPI-based servers do. Runs on the event loop.
 */
public final class JsonContentTypeHandler extends ChannelInboundHandlerAdapter {
    private final ObjectMapper mapper;

    public JsonContentTypeHandler(ObjectMapper mapper) {
        this.mapper = mapper;
    }

    static boolean isJson(String contentType) {
        if (contentType == null) return true;
        String mime = contentType.split(";", 2)[0].strip().toLowerCase(Locale.ROOT);
        return mime.equals("application/json") || mime.startsWith("application/") && mime.endsWith("+json");
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof FullHttpRequest request && request.content().isReadable()
                && !isJson(request.headers().get(HttpHeaderNames.CONTENT_TYPE))) {
            boolean keepAlive = HttpUtil.isKeepAlive(request);
            String given = request.headers().get(HttpHeaderNames.CONTENT_TYPE);
            request.release();
            HttpErrors.send(ctx, HttpErrors.response(mapper, new ApiException(415, ApiException.INVALID_REQUEST,
                    "Unsupported Content-Type '" + ApiException.truncate(given) + "'; send application/json", null,
                    "unsupported_media_type")), keepAlive);
            return;
        }
        ctx.fireChannelRead(msg);
    }
}

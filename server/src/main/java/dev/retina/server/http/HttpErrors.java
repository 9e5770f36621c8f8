package dev.retina.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;

/** Writes OpenAI-shaped error responses from pipeline handlers (auth, admission, timeouts) on the event loop. */
public final class HttpErrors {
    private HttpErrors() {
    }

    public static FullHttpResponse response(ObjectMapper mapper, ApiException e) {
        byte[] body;
        try {
            body = mapper.writeValueAsBytes(e.toBody());
        } catch (Exception impossible) {
            body = "{\"error\":{\"message\":\"error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}".getBytes();
        }
        FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                HttpResponseStatus.valueOf(e.status()), Unpooled.wrappedBuffer(body));
        response.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
        HttpUtil.setContentLength(response, body.length);
        return response;
    }

    /** Sends {@code response}; closes the connection afterwards unless {@code keepAlive}. */
    public static void send(ChannelHandlerContext ctx, FullHttpResponse response, boolean keepAlive) {
        response.headers().set(HttpHeaderNames.CONNECTION, keepAlive ? HttpHeaderValues.KEEP_ALIVE : HttpHeaderValues.CLOSE);
        if (keepAlive) ctx.writeAndFlush(response);
        else ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
    }
}

package dev.retina.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.QueryStringDecoder;

/**
 * Admission for generation requests (POST {@code /v1/chat/completions}, {@code /v1/completions}): 429 with
 * {@code Retry-After} when {@code --max-num-waiting} requests already wait, 503 with {@code Retry-After} while the
 * server drains. An admitted request holds its slot until its response ends or its connection closes.
 * Runs on the event loop, one request per connection at a time (the router pauses reads meanwhile).
 */
public final class AdmissionHandler extends ChannelDuplexHandler {
    static final String RETRY_AFTER_SECONDS = "1";

    private final AdmissionControl control;
    private final ObjectMapper mapper;
    private boolean holding;

    public AdmissionHandler(AdmissionControl control, ObjectMapper mapper) {
        this.control = control;
        this.mapper = mapper;
    }

    static boolean isGeneration(FullHttpRequest request) {
        if (request.method() != HttpMethod.POST) return false;
        String path = new QueryStringDecoder(request.uri()).path();
        return path.equals("/v1/chat/completions") || path.equals("/v1/completions");
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof FullHttpRequest request && isGeneration(request)) {
            AdmissionControl.Decision decision = control.tryAdmit();
            if (decision != AdmissionControl.Decision.ADMITTED) {
                boolean keepAlive = HttpUtil.isKeepAlive(request);
                request.release();
                ApiException e = decision == AdmissionControl.Decision.QUEUE_FULL
                        ? new ApiException(429, "rate_limit_error", "Too many requests are waiting ("
                        + "--max-num-waiting); retry later", null, "queue_full")
                        : new ApiException(503, ApiException.SERVER_ERROR, "The server is shutting down; retry on "
                        + "another replica", null, "draining");
                FullHttpResponse response = HttpErrors.response(mapper, e);
                response.headers().set(HttpHeaderNames.RETRY_AFTER, RETRY_AFTER_SECONDS);
                HttpErrors.send(ctx, response, keepAlive);
                return;
            }
            holding = true;
        }
        ctx.fireChannelRead(msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
        if (msg instanceof LastHttpContent) releaseSlot();
        super.write(ctx, msg, promise);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        releaseSlot();
        super.channelInactive(ctx);
    }

    private void releaseSlot() {
        if (holding) {
            holding = false;
            control.release();
        }
    }
}

package dev.retina.server.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.stream.Collectors;

/**
 * Routes aggregated HTTP requests to endpoints: 404 for unknown paths, 405 (with {@code Allow}) for a known path
 * with the wrong method. Runs on the channel's event loop and never blocks it: the endpoint runs on
 * {@code requestExecutor}, and the response is written back on the channel's own executor.
 *
 * <p>One request at a time per connection: reading pauses while a request is in flight, so pipelined requests are
 * answered in order and a slow client cannot queue unbounded work. A client that closes its connection cancels its
 * request's future (which aborts the generation).
 */
public final class ApiRouter extends SimpleChannelInboundHandler<FullHttpRequest> {
    private static final Logger log = LoggerFactory.getLogger(ApiRouter.class);

    private final List<Route> routes;
    private final Executor requestExecutor;
    private final ObjectMapper mapper;
    /** The stream being written on this connection, if any (event loop only). */
    private SseEmitter streaming;

    public ApiRouter(List<Route> routes, Executor requestExecutor, ObjectMapper mapper) {
        this.routes = List.copyOf(routes);
        this.requestExecutor = requestExecutor;
        this.mapper = mapper;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
        boolean keepAlive = HttpUtil.isKeepAlive(request);
        if (!request.decoderResult().isSuccess()) {
            Throwable cause = request.decoderResult().cause();
            ApiException error = cause instanceof io.netty.handler.codec.http.TooLongHttpHeaderException
                    ? new ApiException(431, ApiException.INVALID_REQUEST, "the request headers are too large",
                    null, "request_header_fields_too_large")
                    : cause instanceof io.netty.handler.codec.http.TooLongHttpLineException
                    ? new ApiException(414, ApiException.INVALID_REQUEST, "the request line (URI) is too long", null,
                    "uri_too_long")
                    : ApiException.badRequest("malformed HTTP request", null);
            write(ctx, ApiResponse.error(error), false);
            return;
        }
        String path = new QueryStringDecoder(request.uri()).path();
        List<Route> onPath = routes.stream().filter(r -> r.matches(path)).toList();
        if (onPath.isEmpty()) {
            write(ctx, ApiResponse.error(new ApiException(404, ApiException.INVALID_REQUEST,
                    "Not found: " + ApiException.truncate(path), null, "not_found")), keepAlive);
            return;
        }
        Route route = onPath.stream().filter(r -> r.method().equals(request.method())).findFirst().orElse(null);
        if (route == null) {
            String allow = onPath.stream().map(r -> r.method().name()).collect(Collectors.joining(", "));
            FullHttpResponse response = toHttp(ApiResponse.error(new ApiException(405, ApiException.INVALID_REQUEST,
                    "Method " + request.method().name() + " is not allowed on " + path + "; use " + allow, null,
                    "method_not_allowed")));
            response.headers().set(HttpHeaderNames.ALLOW, allow);
            send(ctx, response, keepAlive);
            return;
        }
        ApiRequest apiRequest = new ApiRequest(request.method(), path, ByteBufUtil.getBytes(request.content()),
                ctx.channel().attr(RequestContext.KEY).get());
        dispatch(ctx, route.endpoint(), apiRequest, keepAlive);
    }

    private void dispatch(ChannelHandlerContext ctx, Endpoint endpoint, ApiRequest apiRequest, boolean keepAlive) {
        CompletableFuture<ApiResponse> result = new CompletableFuture<>();
        try {
            requestExecutor.execute(() -> {
                CompletableFuture<ApiResponse> inner;
                RequestContext.setCurrent(apiRequest.context()); // for backends that log and meter (see RequestContext)
                try {
                    inner = endpoint.handle(apiRequest);
                } catch (Throwable t) {
                    result.completeExceptionally(t);
                    return;
                } finally {
                    RequestContext.setCurrent(null);
                }
                // The client going away cancels `result`; pass that on so the generation is aborted.
                result.whenComplete((r, t) -> {
                    if (result.isCancelled()) inner.cancel(true);
                });
                inner.whenComplete((r, t) -> {
                    if (t != null) result.completeExceptionally(t);
                    else result.complete(r);
                });
            });
        } catch (RejectedExecutionException e) {
            write(ctx, ApiResponse.error(ApiException.unavailable("The server is overloaded; retry later")), keepAlive);
            return;
        }
        ctx.channel().config().setAutoRead(false);
        ctx.channel().closeFuture().addListener(f -> result.cancel(true));
        result.whenComplete((response, failure) -> {
            if (failure != null) response = toResponse(failure);
            if (response == null) return; // cancelled: the client is gone
            if (response.body() instanceof SseEmitter emitter) {
                ctx.executor().execute(() -> startStream(ctx, emitter, keepAlive));
                return;
            }
            FullHttpResponse http = toHttp(response); // serialise here, off the event loop
            ctx.executor().execute(() -> {
                send(ctx, http, keepAlive);
                ctx.channel().config().setAutoRead(true);
            });
        });
    }

    /** Streams an SSE response; reading resumes (keep-alive) once [DONE] is written, and a close cancels it. */
    private void startStream(ChannelHandlerContext ctx, SseEmitter emitter, boolean keepAlive) {
        if (!ctx.channel().isActive()) {
            emitter.cancel();
            return;
        }
        streaming = emitter;
        ctx.channel().closeFuture().addListener(f -> emitter.cancel());
        emitter.attach(ctx, keepAlive, () -> {
            if (streaming == emitter) streaming = null;
            ctx.channel().config().setAutoRead(true);
        });
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) throws Exception {
        if (streaming != null) streaming.writabilityChanged();
        super.channelWritabilityChanged(ctx);
    }

    private ApiResponse toResponse(Throwable failure) {
        Throwable cause = failure;
        while ((cause instanceof CompletionException || cause instanceof java.util.concurrent.ExecutionException)
                && cause.getCause() != null) cause = cause.getCause();
        if (cause instanceof CancellationException) return null;
        if (cause instanceof ApiException api) return ApiResponse.error(api);
        log.error("request failed", cause);
        return ApiResponse.error(ApiException.internal());
    }

    private void write(ChannelHandlerContext ctx, ApiResponse response, boolean keepAlive) {
        send(ctx, toHttp(response), keepAlive);
    }

    private FullHttpResponse toHttp(ApiResponse response) {
        if (response.body() instanceof ApiResponse.Raw raw) {
            FullHttpResponse http = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                    HttpResponseStatus.valueOf(response.status()), Unpooled.wrappedBuffer(raw.bytes()));
            http.headers().set(HttpHeaderNames.CONTENT_TYPE, raw.contentType());
            return http;
        }
        byte[] bytes;
        try {
            bytes = response.body() == null ? new byte[0] : mapper.writeValueAsBytes(response.body());
        } catch (JsonProcessingException e) {
            log.error("cannot serialise a response", e);
            return toHttp(ApiResponse.error(ApiException.internal()));
        }
        FullHttpResponse http = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                HttpResponseStatus.valueOf(response.status()), Unpooled.wrappedBuffer(bytes));
        if (response.body() != null)
            http.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
        return http;
    }

    /** Writes a response; closes the connection after it unless the client keeps it alive. */
    static void send(ChannelHandlerContext ctx, FullHttpResponse response, boolean keepAlive) {
        HttpUtil.setContentLength(response, response.content().readableBytes());
        if (!ctx.channel().isActive()) {
            response.release();
            return;
        }
        if (keepAlive) {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
            ctx.writeAndFlush(response);
        } else {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("connection error, closing", cause);
        ctx.close();
    }
}

package dev.retina.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.QueryStringDecoder;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;

/**
 * {@code --api-key}: every request but the two probes ({@code /health}, {@code /ready}) must carry
 * {@code Authorization: Bearer <key>} with one of the configured keys, else 401 in OpenAI's shape
 * ({@code code: "invalid_api_key"}): the API, {@code /tokenize}, {@code /detokenize}, and also {@code /metrics} and
 * {@code /version} (Prometheus scrapes with a bearer token). CORS preflights never reach this handler.
 *
 * <p>Keys are compared as SHA-256 digests with {@link MessageDigest#isEqual}, against every key without stopping
 * early, so neither the position of the first wrong byte nor the key's length shows in the timing.
 * Runs on the event loop, behind the aggregator.
 */
public final class ApiKeyAuthHandler extends ChannelInboundHandlerAdapter {
    private final List<byte[]> keyDigests;
    private final ObjectMapper mapper;

    public ApiKeyAuthHandler(List<String> apiKeys, ObjectMapper mapper) {
        if (apiKeys.isEmpty()) throw new IllegalArgumentException("no API keys");
        this.keyDigests = apiKeys.stream().map(k -> sha256(k.getBytes(StandardCharsets.UTF_8))).toList();
        this.mapper = mapper;
    }

    /** Whether {@code path} needs a key. */
    public static boolean isProtected(String path) {
        // Everything but the probes: a kubelet cannot present a secret key, and these two reveal nothing.
        return !(path.equals("/health") || path.equals("/ready"));
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof FullHttpRequest request && request.method() != HttpMethod.OPTIONS
                && isProtected(new QueryStringDecoder(request.uri()).path())
                && !authorized(request.headers().get(HttpHeaderNames.AUTHORIZATION))) {
            boolean keepAlive = HttpUtil.isKeepAlive(request);
            request.release();
            FullHttpResponse response = HttpErrors.response(mapper, new ApiException(401, ApiException.INVALID_REQUEST,
                    "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a key this server was "
                            + "started with (--api-key)", null, "invalid_api_key"));
            response.headers().set(HttpHeaderNames.WWW_AUTHENTICATE, "Bearer");
            HttpErrors.send(ctx, response, keepAlive);
            return;
        }
        ctx.fireChannelRead(msg);
    }

    /** Constant-time in the key material: every configured key is compared, digests of equal length. */
    boolean authorized(String header) {
        if (header == null || header.length() < 7 || !header.regionMatches(true, 0, "Bearer ", 0, 7)) return false;
        byte[] given = sha256(header.substring(7).strip().getBytes(StandardCharsets.UTF_8));
        boolean match = false;
        for (byte[] key : keyDigests) match |= MessageDigest.isEqual(key, given);
        return match;
    }

    private static byte[] sha256(byte[] bytes) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(bytes);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }
}

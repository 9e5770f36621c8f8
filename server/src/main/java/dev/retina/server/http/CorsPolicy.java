package dev.retina.server.http;

import dev.retina.server.config.ServingOptions;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.cors.CorsConfig;
import io.netty.handler.codec.http.cors.CorsConfigBuilder;

import java.util.List;
import java.util.Locale;

/**
 * Builds Netty's {@link CorsConfig} from {@code --allowed-origins/--allowed-methods/--allowed-headers}; Netty's
 * {@link io.netty.handler.codec.http.cors.CorsHandler} then answers preflights (200 with the Access-Control-* headers)
 * and decorates every response. {@code *} means any origin, every method, any header, as vLLM's defaults.
 */
public final class CorsPolicy {
    private static final HttpMethod[] ALL_METHODS = {HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT,
            HttpMethod.PATCH, HttpMethod.DELETE, HttpMethod.HEAD, HttpMethod.OPTIONS};

    private CorsPolicy() {
    }

    public static CorsConfig of(ServingOptions options) {
        return of(options.allowedOrigins(), options.allowedMethods(), options.allowedHeaders());
    }

    public static CorsConfig of(List<String> origins, List<String> methods, List<String> headers) {
        CorsConfigBuilder b = origins.contains("*") ? CorsConfigBuilder.forAnyOrigin()
                : CorsConfigBuilder.forOrigins(origins.toArray(String[]::new));
        b.allowedRequestMethods(methods.contains("*") ? ALL_METHODS : methods.stream()
                .map(m -> HttpMethod.valueOf(m.strip().toUpperCase(Locale.ROOT))).toArray(HttpMethod[]::new));
        b.allowedRequestHeaders(headers.toArray(String[]::new));
        b.exposeHeaders(RequestIdHandler.HEADER, "Retry-After");
        return b.build();
    }
}

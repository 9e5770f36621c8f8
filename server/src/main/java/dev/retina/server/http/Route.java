package dev.retina.server.http;

import io.netty.handler.codec.http.HttpMethod;

/**
 * A path and method served by an endpoint. A path ending in {@code /*} matches everything below it
 * ({@code /v1/models/*} serves {@code /v1/models/org/name}); any other path matches exactly.
 */
public record Route(HttpMethod method, String path, Endpoint endpoint) {
    public boolean matches(String requestPath) {
        if (path.endsWith("/*")) {
            String prefix = path.substring(0, path.length() - 1);
            return requestPath.startsWith(prefix) && requestPath.length() > prefix.length();
        }
        return path.equals(requestPath);
    }
}

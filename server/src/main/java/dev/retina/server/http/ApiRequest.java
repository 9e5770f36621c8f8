package dev.retina.server.http;

import io.netty.handler.codec.http.HttpMethod;

/**
 * A request as endpoints see it: no Netty buffers (the body is copied off the channel before leaving the loop).
 * {@code context} carries the request id and collects what the access log reports (never null).
 */
public record ApiRequest(HttpMethod method, String path, byte[] body, RequestContext context) {
    public ApiRequest {
        if (context == null) context = new RequestContext(java.util.UUID.randomUUID().toString(), System.nanoTime());
    }

    public ApiRequest(HttpMethod method, String path, byte[] body) {
        this(method, path, body, null);
    }
}

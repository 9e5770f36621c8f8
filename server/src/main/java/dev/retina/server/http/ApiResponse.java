package dev.retina.server.http;

import dev.retina.server.protocol.ApiException;

/**
 * What an endpoint answers: a status and a JSON-serialisable body (null for an empty body).
 */
public record ApiResponse(int status, Object body) {
    public static ApiResponse ok(Object body) {
        return new ApiResponse(200, body);
    }

    /** A 200 whose body is streamed as server-sent events. */
    public static ApiResponse stream(SseEmitter emitter) {
        return new ApiResponse(200, emitter);
    }

    public static ApiResponse error(ApiException e) {
        return new ApiResponse(e.status(), e.toBody());
    }

    /** A body sent as is with its own Content-Type (e.g. Prometheus text), not as JSON. */
    public static ApiResponse raw(int status, String contentType, byte[] bytes) {
        return new ApiResponse(status, new Raw(contentType, bytes));
    }

    public record Raw(String contentType, byte[] bytes) {
    }
}

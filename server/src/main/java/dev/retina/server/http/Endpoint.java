package dev.retina.server.http;

import java.util.concurrent.CompletableFuture;

/**
 * One route's logic. Called on the server's request executor, never on an event loop; may return a future that
 * completes elsewhere (the engine). Failing with {@link dev.retina.server.protocol.ApiException} sends that error;
 * any other failure sends a 500 with a fixed message.
 */
@FunctionalInterface
public interface Endpoint {
    CompletableFuture<ApiResponse> handle(ApiRequest request);
}

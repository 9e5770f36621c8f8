package dev.retina.server;

import dev.retina.server.http.ApiRequest;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.Endpoint;
import dev.retina.server.protocol.ApiException;

import java.util.concurrent.CompletableFuture;

/** {@code GET /health}: 200 with an empty body once the model is loaded, 503 before (as vLLM answers). */
public final class HealthHandler implements Endpoint {
    private final ServedModel model;

    public HealthHandler(ServedModel model) {
        this.model = model;
    }

    @Override
    public CompletableFuture<ApiResponse> handle(ApiRequest request) {
        return CompletableFuture.completedFuture(model.isReady() ? new ApiResponse(200, null)
                : ApiResponse.error(ApiException.unavailable("The model is still loading")));
    }
}

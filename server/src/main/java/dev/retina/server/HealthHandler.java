package dev.retina.server;

import dev.retina.server.http.ApiRequest;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.Endpoint;
import dev.retina.server.protocol.ApiException;

import java.util.concurrent.CompletableFuture;

/**
 * {@code GET /health}: 200 with an empty body once the model is loaded, 503 before (as vLLM answers), and 503 again
 * if the engine thread has died (liveness: restart the process).
 */
public final class HealthHandler implements Endpoint {
    private final ServedModel model;

    public HealthHandler(ServedModel model) {
        this.model = model;
    }

    @Override
    public CompletableFuture<ApiResponse> handle(ApiRequest request) {
        if (!model.isReady())
            return CompletableFuture.completedFuture(ApiResponse.error(ApiException.unavailable("The model is still loading")));
        boolean healthy = model.loaded().map(m -> m.backend().isHealthy()).orElse(true);
        return CompletableFuture.completedFuture(healthy ? new ApiResponse(200, null)
                : ApiResponse.error(ApiException.unavailable("The engine stopped; the server must be restarted")));
    }
}

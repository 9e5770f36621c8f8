package dev.retina.server;

import dev.retina.server.http.ApiRequest;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.Endpoint;
import dev.retina.server.protocol.ModelList;

import java.util.concurrent.CompletableFuture;

/** {@code GET /v1/models}: the one served model (its root and max_model_len once loaded). */
public final class ModelsHandler implements Endpoint {
    private final ServedModel model;

    public ModelsHandler(ServedModel model) {
        this.model = model;
    }

    @Override
    public CompletableFuture<ApiResponse> handle(ApiRequest request) {
        var loaded = model.loaded();
        return CompletableFuture.completedFuture(ApiResponse.ok(ModelList.of(ModelList.ModelCard.of(model.name(),
                model.createdEpochSeconds(), loaded.map(BackendLoader.LoadedModel::root).orElse(null),
                loaded.map(BackendLoader.LoadedModel::maxModelLen).orElse(null)))));
    }
}

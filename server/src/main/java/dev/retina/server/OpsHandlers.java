package dev.retina.server;

import dev.retina.server.http.AdmissionControl;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.Endpoint;
import dev.retina.server.metrics.RetinaMetrics;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ModelList;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;

/**
 * The operations endpoints beside the API: {@code /ready}, {@code /version}, {@code /metrics}, and
 * {@code GET /v1/models/{id}}. None needs an API key except the last (it is under /v1).
 */
public final class OpsHandlers {
    /** Prometheus' text exposition format. */
    public static final String PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

    private OpsHandlers() {
    }

    /**
     * {@code GET /ready}: 200 {@code {"status":"ready"}} when the model is loaded, the engine alive and the server not
     * draining; 503 otherwise (a load balancer takes the replica out). {@code /health} stays the liveness probe.
     */
    public static Endpoint ready(ServedModel model, AdmissionControl admission, BooleanSupplier engineAlive) {
        return request -> {
            String why = !model.isReady() ? "The model is still loading"
                    : admission.isDraining() ? "The server is draining"
                    : !engineAlive.getAsBoolean() ? "The engine has stopped" : null;
            return CompletableFuture.completedFuture(why == null ? ApiResponse.ok(Map.of("status", "ready"))
                    : ApiResponse.error(ApiException.unavailable(why)));
        };
    }

    /** {@code GET /version}: {@code {"version": "0.1.0"}}, from the jar manifest or the build's resource. */
    public static Endpoint version() {
        Map<String, String> body = Map.of("version", retinaVersion());
        return request -> CompletableFuture.completedFuture(ApiResponse.ok(body));
    }

    /** Retina's version: the jar's Implementation-Version, else {@code dev/retina/version.properties}, else "dev". */
    public static String retinaVersion() {
        String v = OpsHandlers.class.getPackage().getImplementationVersion();
        if (v != null) return v;
        try (InputStream in = OpsHandlers.class.getResourceAsStream("/dev/retina/version.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                String fromBuild = p.getProperty("version");
                if (fromBuild != null && !fromBuild.isBlank() && !fromBuild.startsWith("$")) return fromBuild;
            }
        } catch (IOException ignored) {
            // fall through to "dev"
        }
        return "dev";
    }

    /** {@code GET /metrics}: the Prometheus text exposition of {@link RetinaMetrics}. */
    public static Endpoint metrics(RetinaMetrics metrics) {
        return request -> CompletableFuture.completedFuture(ApiResponse.raw(200, PROMETHEUS_CONTENT_TYPE,
                metrics.scrape().getBytes(StandardCharsets.UTF_8)));
    }

    /** {@code GET /v1/models/{id}}: the model card, or OpenAI's 404 {@code model_not_found}. */
    public static Endpoint retrieveModel(ServedModel model) {
        return request -> {
            String id = request.path().substring("/v1/models/".length());
            if (!id.equals(model.name())) throw ApiException.modelNotFound(id);
            var loaded = model.loaded();
            return CompletableFuture.completedFuture(ApiResponse.ok(ModelList.ModelCard.of(model.name(),
                    model.createdEpochSeconds(), loaded.map(BackendLoader.LoadedModel::root).orElse(null),
                    loaded.map(BackendLoader.LoadedModel::maxModelLen).orElse(null))));
        };
    }
}

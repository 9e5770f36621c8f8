package dev.retina.server;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.http.HttpApiServer;
import dev.retina.server.http.Route;
import dev.retina.server.protocol.Json;
import io.netty.handler.codec.http.HttpMethod;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.retina.engine.EngineStats;
import dev.retina.server.backend.EngineChatBackend;
import dev.retina.server.config.ServingOptions;
import dev.retina.server.http.AdmissionControl;
import dev.retina.server.http.ApiChannelInitializer;
import dev.retina.server.http.TlsContexts;
import dev.retina.server.metrics.MeteredChatBackend;
import dev.retina.server.metrics.RetinaMetrics;
import io.netty.handler.ssl.SslContext;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The running server: HTTP routes, the request executor, and the served model. {@link #start} opens the port first
 * (so /health answers 503 while loading), then loads the model on the calling thread.
 */
public final class RetinaServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RetinaServer.class);

    private final ServedModel model;
    private final HttpApiServer http;
    private final ExecutorService requestExecutor;

    private final AdmissionControl admission;
    private final AtomicBoolean closed;

    private RetinaServer(ServedModel model, HttpApiServer http, ExecutorService requestExecutor,
                         AdmissionControl admission, AtomicBoolean closed) {
        this.model = model;
        this.http = http;
        this.requestExecutor = requestExecutor;
        this.admission = admission;
        this.closed = closed;
    }

    /** The routes of the OpenAI-compatible API over one served model. */
    public static List<Route> routes(ServedModel model, ObjectMapper mapper, Clock clock) {
        return routes(model, mapper, clock, new RetinaMetrics(), new AdmissionControl(0), () -> true, "assistant");
    }

    /** The API routes plus the operations endpoints (/ready, /version, /metrics, /tokenize, model retrieval). */
    public static List<Route> routes(ServedModel model, ObjectMapper mapper, Clock clock, RetinaMetrics metrics,
                                     AdmissionControl admission, BooleanSupplier engineAlive, String responseRole) {
        return routes(model, mapper, clock, metrics, admission, engineAlive, responseRole, false);
    }

    /** @param returnTokensAsTokenIds {@code --return-tokens-as-token-ids}: logprob tokens as {@code token_id:N} */
    public static List<Route> routes(ServedModel model, ObjectMapper mapper, Clock clock, RetinaMetrics metrics,
                                     AdmissionControl admission, BooleanSupplier engineAlive, String responseRole,
                                     boolean returnTokensAsTokenIds) {
        List<Route> routes = new ArrayList<>(apiRoutes(model, mapper, clock, responseRole, returnTokensAsTokenIds));
        routes.add(new Route(HttpMethod.GET, "/v1/models/*", OpsHandlers.retrieveModel(model)));
        routes.add(new Route(HttpMethod.POST, "/tokenize", TokenizeHandler.tokenize(model, mapper)));
        routes.add(new Route(HttpMethod.POST, "/detokenize", TokenizeHandler.detokenize(model, mapper)));
        routes.add(new Route(HttpMethod.GET, "/ready", OpsHandlers.ready(model, admission, engineAlive)));
        routes.add(new Route(HttpMethod.GET, "/version", OpsHandlers.version()));
        routes.add(new Route(HttpMethod.GET, "/metrics", OpsHandlers.metrics(metrics)));
        return routes;
    }

    private static List<Route> apiRoutes(ServedModel model, ObjectMapper mapper, Clock clock, String responseRole,
                                         boolean returnTokensAsTokenIds) {
        return List.of(
                new Route(HttpMethod.POST, "/v1/chat/completions",
                        new ChatCompletionsHandler(model, mapper, clock, responseRole, returnTokensAsTokenIds)),
                new Route(HttpMethod.POST, "/v1/completions", new CompletionsHandler(model, mapper, clock,
                        returnTokensAsTokenIds)),
                new Route(HttpMethod.GET, "/v1/models", new ModelsHandler(model)),
                new Route(HttpMethod.GET, "/health", new HealthHandler(model)));
    }

    /**
     * A bounded executor for request work (parsing, validation, handing to the backend): a request beyond its queue
     * gets 503 instead of piling up.
     */
    public static ExecutorService newRequestExecutor() {
        int threads = Math.max(2, Runtime.getRuntime().availableProcessors());
        AtomicInteger n = new AtomicInteger();
        return new ThreadPoolExecutor(threads, threads, 60, TimeUnit.SECONDS, new ArrayBlockingQueue<>(1024), r -> {
            Thread t = new Thread(r, "retina-request-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * Binds the port, then loads the model with {@code loader}; returns once the model serves.
     *
     * @throws Exception when the port cannot be bound or the model cannot be loaded (the port is closed again)
     */
    public static RetinaServer start(ServerConfig config, BackendLoader loader) throws Exception {
        return start(config, ServingOptions.defaults(), loader);
    }

    /**
     * Binds the port (TLS with {@code options}' key and certificate), then loads the model with {@code loader};
     * returns once the model serves.
     *
     * @throws Exception when the port cannot be bound or the model cannot be loaded (the port is closed again)
     */
    public static RetinaServer start(ServerConfig config, ServingOptions options, BackendLoader loader) throws Exception {
        ObjectMapper mapper = Json.newMapper();
        ServedModel model = new ServedModel(config.servedModelName(), Clock.systemUTC().instant().getEpochSecond());
        RetinaMetrics metrics = new RetinaMetrics();
        AdmissionControl admission = new AdmissionControl(options.maxNumWaiting());
        AtomicBoolean closed = new AtomicBoolean();
        SslContext ssl = options.tls() ? TlsContexts.server(options.sslCertFile(), options.sslKeyFile()) : null;
        ExecutorService executor = newRequestExecutor();
        HttpApiServer http;
        try {
            http = HttpApiServer.start(config.host(), config.port(), new ApiChannelInitializer(config.maxRequestBytes(),
                    routes(model, mapper, Clock.systemUTC(), metrics, admission,
                            () -> !closed.get() && model.loaded().map(m -> m.backend().isHealthy()).orElse(true),
                            options.responseRole(),
                            options.returnTokensAsTokenIds()), executor,
                    mapper, options, admission, ssl));
        } catch (Exception e) {
            executor.shutdownNow();
            throw e;
        }
        RetinaServer server = new RetinaServer(model, http, executor, admission, closed);
        String scheme = ssl != null ? "https" : "http";
        log.info("listening on {}://{}:{} (model loading)", scheme, config.host(), http.port());
        try {
            BackendLoader.LoadedModel loaded = loader.load(config, metrics.imageObserver());
            if (loaded.backend() instanceof EngineChatBackend engineBackend) {
                metrics.bindEngineStats(engineBackend::engineStats);
                metrics.bindEncoderCache(engineBackend::encoderCacheStats);
                if (config.engine().dataParallelSize() > 1)
                    metrics.bindReplicaStats(engineBackend::replicaStats, engineBackend::replicaRouted,
                            config.engine().dataParallelSize());
            }
            admission.bindNumRunning(() -> {
                EngineStats stats = loaded.backend() instanceof EngineChatBackend b ? b.engineStats() : null;
                return stats == null ? 0 : stats.numRunning();
            });
            model.markLoaded(loaded.withBackend(new MeteredChatBackend(loaded.backend(), metrics, model.name())));
        } catch (Exception | Error e) {
            server.close();
            throw e;
        }
        // The one line that says it worked: where, what, on which device, how much fits.
        log.info("Retina ready on {}://{}:{}/v1, serving '{}' from {}: {}", scheme, config.host(), http.port(),
                model.name(), model.loaded().orElseThrow().root(), model.loaded().orElseThrow().summary());
        return server;
    }

    public int port() {
        return http.port();
    }

    public ServedModel model() {
        return model;
    }

    /** Blocks until the listening socket closes. */
    public void awaitClose() throws InterruptedException {
        http.channel().closeFuture().sync();
    }

    /**
     * Drains: /ready turns 503 and new generation requests get 503 with Retry-After, while those in flight may finish
     * for up to {@code grace}. Returns whether all finished.
     */
    public boolean drain(Duration grace) {
        admission.startDraining();
        long deadline = System.nanoTime() + grace.toNanos();
        while (admission.numInFlight() > 0 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return admission.numInFlight() == 0;
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) return;
        admission.startDraining();
        http.close();
        requestExecutor.shutdownNow();
        model.loaded().ifPresent(m -> m.backend().close());
    }
}

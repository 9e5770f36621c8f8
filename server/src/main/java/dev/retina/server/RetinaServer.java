package dev.retina.server;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.http.HttpApiServer;
import dev.retina.server.http.Route;
import dev.retina.server.protocol.Json;
import io.netty.handler.codec.http.HttpMethod;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
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

    private RetinaServer(ServedModel model, HttpApiServer http, ExecutorService requestExecutor) {
        this.model = model;
        this.http = http;
        this.requestExecutor = requestExecutor;
    }

    /** The routes of the OpenAI-compatible API over one served model. */
    public static List<Route> routes(ServedModel model, ObjectMapper mapper, Clock clock) {
        return List.of(
                new Route(HttpMethod.POST, "/v1/chat/completions", new ChatCompletionsHandler(model, mapper, clock)),
                new Route(HttpMethod.POST, "/v1/completions", new CompletionsHandler(model, mapper, clock)),
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
        ObjectMapper mapper = Json.newMapper();
        ServedModel model = new ServedModel(config.servedModelName(), Clock.systemUTC().instant().getEpochSecond());
        ExecutorService executor = newRequestExecutor();
        HttpApiServer http;
        try {
            http = HttpApiServer.start(config.host(), config.port(), config.maxRequestBytes(),
                    routes(model, mapper, Clock.systemUTC()), executor, mapper);
        } catch (Exception e) {
            executor.shutdownNow();
            throw e;
        }
        RetinaServer server = new RetinaServer(model, http, executor);
        log.info("listening on http://{}:{} (model loading)", config.host(), http.port());
        try {
            model.markLoaded(loader.load(config));
        } catch (Exception | Error e) {
            server.close();
            throw e;
        }
        log.info("serving model '{}' on http://{}:{}", model.name(), config.host(), http.port());
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

    @Override
    public void close() {
        http.close();
        requestExecutor.shutdownNow();
        model.loaded().ifPresent(m -> m.backend().close());
    }
}

package dev.retina.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.errors.BadRequestException;
import com.openai.errors.InternalServerException;
import com.openai.errors.RateLimitException;
import com.openai.errors.UnprocessableEntityException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.sun.net.httpserver.HttpServer;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.MediaConfig;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import dev.retina.server.config.VlmConfig;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The error statuses a client meets, as the OpenAI Java SDK (retries off) raises them, against the real engine on
 * the llava15-336-mha fixture with {@code --max-num-waiting 1}: 429 when the queue is full, 422 for an image that
 * is not one, 400 {@code context_length_exceeded}, and 503 while draining (last: the server stays draining).
 * A slow request is one whose image the test's image server holds until the test lets it go.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ApiErrorsE2ETest {
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));
    static final String MODEL = "tiny-llava";

    static RetinaServer server;
    static HttpServer images;
    static OpenAIClient client;
    static String base;
    // Not the common pool: on a 2-core machine it has one thread, which the slow request holds.
    static final java.util.concurrent.ExecutorService background = java.util.concurrent.Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "e2e-clients");
        t.setDaemon(true);
        return t;
    });
    static volatile CountDownLatch entered = new CountDownLatch(1);
    static volatile CountDownLatch release = new CountDownLatch(1);

    @BeforeAll
    static void boot() throws Exception {
        Path modelDir = FIXTURES.resolve("models").resolve("llava15-336-mha");
        assumeTrue(Files.isRegularFile(modelDir.resolve("config.json")), "fixtures not present");
        ServerConfig config = new ServerConfig(modelDir.toString(), MODEL, "127.0.0.1", 0, null, Dtype.AUTO,
                Device.CPU, null, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofSeconds(20), 20 << 20,
                20L << 20, MediaConfig.defaults().withAllowPrivateMediaUrls(true));
        server = RetinaServer.start(config, ServingOptions.defaults().withMaxNumWaiting(1), new LlavaBackendLoader());
        base = "http://127.0.0.1:" + server.port();

        images = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        // Held until the test releases it, then answers bytes that are no image (so the held request ends in 422).
        images.createContext("/held.png", ex -> {
            entered.countDown();
            try {
                release.await(20, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            byte[] body = "this is not a png".getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().add("Content-Type", "image/png");
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(body);
            }
        });
        images.setExecutor(java.util.concurrent.Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "e2e-held-images");
            t.setDaemon(true);
            return t;
        }));
        images.start();
        client = OpenAIOkHttpClient.builder().baseUrl(base + "/v1").apiKey("none").maxRetries(0)
                .timeout(Duration.ofSeconds(60)).build();
    }

    @AfterAll
    static void stop() {
        release.countDown();
        if (images != null) images.stop(0);
        if (server != null) server.close();
        background.shutdownNow();
    }

    static ChatCompletionCreateParams withImage(String url) {
        return ChatCompletionCreateParams.builder().model(MODEL)
                .addUserMessageOfArrayOfContentParts(List.of(
                        ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(url).build()).build()),
                        ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text("What is it?")
                                .build())))
                .temperature(0.0).maxCompletionTokens(2).build();
    }

    static ChatCompletionCreateParams text(long maxTokens) {
        return ChatCompletionCreateParams.builder().model(MODEL).addUserMessage("Hello").temperature(0.0)
                .maxCompletionTokens(maxTokens).build();
    }

    /** Starts a request whose image fetch is held, and returns once the image server has it. */
    static CompletableFuture<ChatCompletion> slowRequest() throws Exception {
        entered = new CountDownLatch(1);
        release = new CountDownLatch(1);
        String url = "http://127.0.0.1:" + images.getAddress().getPort() + "/held.png";
        CompletableFuture<ChatCompletion> slow = CompletableFuture.supplyAsync(
                () -> client.chat().completions().create(withImage(url)), background);
        assertTrue(entered.await(20, TimeUnit.SECONDS), "the slow request never fetched its image");
        return slow;
    }

    static Throwable failureOf(CompletableFuture<?> f) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        return e.getCause();
    }

    @Test
    @Order(1)
    void queueFullIsRateLimitedAndTheHeldImageIsUnprocessable() throws Exception {
        CompletableFuture<ChatCompletion> slow = slowRequest();
        RateLimitException full = assertThrows(RateLimitException.class,
                () -> client.chat().completions().create(text(2)));
        assertEquals(429, full.statusCode());
        release.countDown();
        // What the image server finally sent is no image: 422, with the content part named.
        UnprocessableEntityException bad = (UnprocessableEntityException) failureOf(slow);
        assertEquals("messages[0].content[0].image_url", bad.param().orElse(null));
        assertTrue(bad.code().orElse("").startsWith("image_"), bad.code().toString());
        // Once the slow one is gone the queue has room again.
        assertTrue(client.chat().completions().create(text(2)).choices().size() == 1);
    }

    @Test
    @Order(2)
    void undecodableDataUrlImageIsUnprocessable() {
        String url = "data:image/png;base64," + Base64.getEncoder().encodeToString(new byte[] {(byte) 0x89, 'P', 'N',
                'G', 1, 2, 3});
        UnprocessableEntityException e = assertThrows(UnprocessableEntityException.class,
                () -> client.chat().completions().create(withImage(url)));
        assertEquals(422, e.statusCode());
        assertEquals("messages[0].content[0].image_url", e.param().orElse(null));
    }

    @Test
    @Order(3)
    void tooLongARequestIsBadRequestWithContextLengthExceeded() {
        BadRequestException e = assertThrows(BadRequestException.class,
                () -> client.chat().completions().create(text(10_000_000)));
        assertEquals("context_length_exceeded", e.code().orElse(null));
        assertEquals("max_completion_tokens", e.param().orElse(null));
        assertTrue(e.getMessage().contains("maximum context length"), e.getMessage());
    }

    @Test
    @Order(4)
    void drainingRefusesNewRequestsWith503WhileTheOneInFlightFinishes() throws Exception {
        CompletableFuture<ChatCompletion> slow = slowRequest();
        CompletableFuture<Boolean> drained = CompletableFuture.supplyAsync(() -> server.drain(Duration.ofSeconds(20)),
                background);
        HttpClient http = HttpClient.newHttpClient();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (http.send(HttpRequest.newBuilder(URI.create(base + "/ready")).build(),
                HttpResponse.BodyHandlers.discarding()).statusCode() != 503) {
            assertTrue(System.nanoTime() < deadline, "/ready never turned 503");
            Thread.sleep(20);
        }
        InternalServerException e = assertThrows(InternalServerException.class,
                () -> client.chat().completions().create(text(2)));
        assertEquals(503, e.statusCode());
        assertTrue(e.headers().values("Retry-After").size() == 1, "Retry-After tells the client when to come back");
        release.countDown();
        assertTrue(failureOf(slow) instanceof UnprocessableEntityException, "the request in flight was answered");
        assertTrue(drained.get(30, TimeUnit.SECONDS), "drain ends once nothing is in flight");
    }
}

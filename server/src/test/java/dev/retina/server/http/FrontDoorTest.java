package dev.retina.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.config.ServingOptions;
import dev.retina.server.protocol.Json;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The whole per-connection pipeline ({@link ApiChannelInitializer}) on Netty's EmbeddedChannel: CORS, auth, 413,
 * 415, request ids, admission, timeouts. Requests go in as bytes and responses come out as bytes, so the codec is
 * exercised as a client would see it.
 */
class FrontDoorTest {
    private static final int MAX_BODY = 2048;
    private final ObjectMapper mapper = Json.newMapper();
    private final ExecutorService executor = Executors.newFixedThreadPool(2);
    private final CompletableFuture<ApiResponse> slow = new CompletableFuture<>();
    private final List<Route> routes = List.of(
            new Route(HttpMethod.POST, "/v1/chat/completions", r -> CompletableFuture.completedFuture(
                    ApiResponse.ok(java.util.Map.of("ok", true)))),
            new Route(HttpMethod.POST, "/v1/completions", r -> slow),
            new Route(HttpMethod.GET, "/v1/models", r -> CompletableFuture.completedFuture(ApiResponse.ok(java.util.Map.of("object", "list")))),
            new Route(HttpMethod.POST, "/tokenize", r -> CompletableFuture.completedFuture(ApiResponse.ok(java.util.Map.of("count", 1)))),
            new Route(HttpMethod.GET, "/health", r -> CompletableFuture.completedFuture(new ApiResponse(200, null))),
            new Route(HttpMethod.GET, "/metrics", r -> CompletableFuture.completedFuture(
                    ApiResponse.raw(200, "text/plain", "m 1\n".getBytes(StandardCharsets.UTF_8)))));
    private EmbeddedChannel channel;
    private final AdmissionControl admission = new AdmissionControl(1);

    @AfterEach
    void tearDown() {
        slow.cancel(true);
        if (channel != null) channel.finishAndReleaseAll();
        executor.shutdownNow();
    }

    private void open(ServingOptions options) {
        channel = new EmbeddedChannel(new ApiChannelInitializer(MAX_BODY, routes, executor, mapper, options, admission, null));
    }

    record Reply(int status, FullHttpResponse head, JsonNode json, String text) {
        String header(CharSequence name) {
            return head.headers().get(name);
        }
    }

    private static FullHttpRequest req(HttpMethod method, String uri, String body, String... headers) {
        FullHttpRequest r = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, method, uri,
                Unpooled.copiedBuffer(body == null ? "" : body, StandardCharsets.UTF_8));
        if (body != null) r.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json");
        for (int i = 0; i < headers.length; i += 2) r.headers().set(headers[i], headers[i + 1]);
        HttpUtil.setContentLength(r, r.content().readableBytes());
        return r;
    }

    /** Encodes {@code request} to bytes, feeds them in, and decodes the response bytes that come out. */
    private Reply exchange(FullHttpRequest request) throws Exception {
        EmbeddedChannel client = new EmbeddedChannel(new HttpClientCodec(), new HttpObjectAggregator(1 << 20));
        client.writeOutbound(request);
        Object bytes;
        while ((bytes = client.readOutbound()) != null) channel.writeInbound(bytes);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (System.nanoTime() < deadline) {
            channel.runPendingTasks();
            channel.runScheduledPendingTasks();
            Object out;
            while ((out = channel.readOutbound()) != null) client.writeInbound(out);
            FullHttpResponse response = client.readInbound();
            if (response != null) {
                String text = response.content().toString(StandardCharsets.UTF_8);
                JsonNode json = text.startsWith("{") ? mapper.readTree(text) : null;
                response.release();
                client.finishAndReleaseAll();
                return new Reply(response.status().code(), response, json, text);
            }
            Thread.sleep(1);
        }
        client.finishAndReleaseAll();
        fail("no response");
        return null;
    }

    private static void assertOpenAiError(Reply r, int status, String type, String code) {
        assertEquals(status, r.status(), r.text());
        assertNotNull(r.json(), "error body must be JSON: " + r.text());
        JsonNode e = r.json().get("error");
        assertEquals(type, e.get("type").asText());
        assertEquals(code, e.get("code").asText());
        assertTrue(e.has("param") && e.has("message"), r.text());
        assertFalse(e.get("message").asText().contains("Exception"), "no exception text: " + r.text());
    }

    @Test
    void corsPreflightIsAnsweredWithAllowHeadersAndNeedsNoKey() throws Exception {
        open(ServingOptions.defaults().withApiKeys(List.of("sk-secret"))
                .withCors(List.of("https://app.example"), List.of("GET", "POST"), List.of("Authorization", "Content-Type")));
        Reply r = exchange(req(HttpMethod.OPTIONS, "/v1/chat/completions", null,
                "Origin", "https://app.example", "Access-Control-Request-Method", "POST",
                "Access-Control-Request-Headers", "authorization,content-type"));
        assertTrue(r.status() == 200 || r.status() == 204, "preflight status " + r.status());
        assertEquals("https://app.example", r.header("Access-Control-Allow-Origin"));
        assertTrue(r.header("Access-Control-Allow-Methods").contains("POST"));
        assertTrue(r.header("Access-Control-Allow-Headers").toLowerCase().contains("authorization"));

        // Actual request from that origin: answered with the CORS header, still needs the key.
        Reply denied = exchange(req(HttpMethod.GET, "/v1/models", null, "Origin", "https://app.example"));
        assertEquals(401, denied.status());
        assertEquals("https://app.example", denied.header("Access-Control-Allow-Origin"));
    }

    @Test
    void anyOriginByDefault() throws Exception {
        open(ServingOptions.defaults());
        Reply r = exchange(req(HttpMethod.GET, "/v1/models", null, "Origin", "http://localhost:3000"));
        assertEquals(200, r.status());
        assertEquals("*", r.header("Access-Control-Allow-Origin"));
    }

    @Test
    void wrongOrMissingKeyIs401InOpenAiShapeOnEveryRouteButTheProbes() throws Exception {
        open(ServingOptions.defaults().withApiKeys(List.of("sk-one", "sk-two")));
        Reply missing = exchange(req(HttpMethod.GET, "/v1/models", null));
        assertOpenAiError(missing, 401, "invalid_request_error", "invalid_api_key");
        assertEquals("Bearer", missing.header(HttpHeaderNames.WWW_AUTHENTICATE));
        assertOpenAiError(exchange(req(HttpMethod.GET, "/v1/models", null, "Authorization", "Bearer sk-on")),
                401, "invalid_request_error", "invalid_api_key");
        assertOpenAiError(exchange(req(HttpMethod.GET, "/v1/models", null, "Authorization", "sk-one")),
                401, "invalid_request_error", "invalid_api_key");
        assertOpenAiError(exchange(req(HttpMethod.POST, "/tokenize", "{}")), 401, "invalid_request_error",
                "invalid_api_key");
        assertEquals(200, exchange(req(HttpMethod.GET, "/v1/models", null, "Authorization", "Bearer sk-two")).status());
        assertEquals(200, exchange(req(HttpMethod.GET, "/v1/models", null, "authorization", "bearer sk-one")).status());
        assertEquals(200, exchange(req(HttpMethod.GET, "/health", null)).status());
        assertOpenAiError(exchange(req(HttpMethod.GET, "/metrics", null)), 401, "invalid_request_error",
                "invalid_api_key");
        assertOpenAiError(exchange(req(HttpMethod.GET, "/version", null)), 401, "invalid_request_error",
                "invalid_api_key");
        assertEquals(200, exchange(req(HttpMethod.GET, "/metrics", null, "Authorization", "Bearer sk-one")).status());
    }

    @Test
    void keyComparisonIsByDigestOverEveryKey() {
        ApiKeyAuthHandler auth = new ApiKeyAuthHandler(List.of("a", "a-much-longer-key"), mapper);
        assertTrue(auth.authorized("Bearer a"));
        assertTrue(auth.authorized("Bearer a-much-longer-key"));
        assertFalse(auth.authorized("Bearer a-much-longer-kez"));
        assertFalse(auth.authorized("Bearer "));
        assertFalse(auth.authorized("Basic a"));
        assertFalse(auth.authorized(null));
    }

    @Test
    void bodyAboveTheLimitIs413WithErrorBody() throws Exception {
        open(ServingOptions.defaults());
        Reply r = exchange(req(HttpMethod.POST, "/v1/chat/completions", "{\"x\":\"" + "a".repeat(MAX_BODY) + "\"}"));
        assertOpenAiError(r, 413, "invalid_request_error", "request_too_large");
    }

    @Test
    void nonJsonContentTypeIs415AndJsonVariantsPass() throws Exception {
        open(ServingOptions.defaults());
        FullHttpRequest form = req(HttpMethod.POST, "/v1/chat/completions", "{}");
        form.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/x-www-form-urlencoded");
        assertOpenAiError(exchange(form), 415, "invalid_request_error", "unsupported_media_type");
        FullHttpRequest charset = req(HttpMethod.POST, "/v1/chat/completions", "{}");
        charset.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json; charset=utf-8");
        assertEquals(200, exchange(charset).status());
    }

    @Test
    void requestIdIsEchoedOrGenerated() throws Exception {
        open(ServingOptions.defaults().withRequestIdHeaders(true));
        assertEquals("abc-123", exchange(req(HttpMethod.GET, "/v1/models", null, "X-Request-Id", "abc-123"))
                .header("X-Request-Id"));
        String generated = exchange(req(HttpMethod.GET, "/v1/models", null)).header("X-Request-Id");
        assertNotNull(generated);
        assertDoesNotThrow(() -> java.util.UUID.fromString(generated));
        // Also on responses the pipeline writes itself (413).
        assertNotNull(exchange(req(HttpMethod.POST, "/v1/chat/completions", "{\"x\":\"" + "a".repeat(MAX_BODY) + "\"}"))
                .header("X-Request-Id"));
    }

    @Test
    void noRequestIdHeaderUnlessEnabled() throws Exception {
        open(ServingOptions.defaults());
        assertNull(exchange(req(HttpMethod.GET, "/v1/models", null, "X-Request-Id", "abc")).header("X-Request-Id"));
    }

    @Test
    void queueFullIs429WithRetryAfterAndDrainingIs503() throws Exception {
        open(ServingOptions.defaults().withMaxNumWaiting(1));
        // One request holds the only slot (its response never comes in this test).
        EmbeddedChannel first = channel;
        FullHttpRequest hold = req(HttpMethod.POST, "/v1/completions", "{}");
        EmbeddedChannel client = new EmbeddedChannel(new HttpClientCodec());
        client.writeOutbound(hold);
        Object bytes;
        while ((bytes = client.readOutbound()) != null) first.writeInbound(bytes);
        client.finishAndReleaseAll();
        assertEquals(1, admission.numInFlight());

        open(ServingOptions.defaults().withMaxNumWaiting(1)); // a second connection, same admission control
        Reply full = exchange(req(HttpMethod.POST, "/v1/chat/completions", "{}"));
        assertOpenAiError(full, 429, "rate_limit_error", "queue_full");
        assertEquals("1", full.header(HttpHeaderNames.RETRY_AFTER));
        assertEquals(200, exchange(req(HttpMethod.GET, "/v1/models", null)).status(), "only generation is bounded");

        first.close(); // the client of the first request goes away: its slot is freed
        assertEquals(0, admission.numInFlight());
        assertEquals(200, exchange(req(HttpMethod.POST, "/v1/chat/completions", "{}")).status());
        assertEquals(0, admission.numInFlight(), "the slot is released when the response ends");

        admission.startDraining();
        Reply draining = exchange(req(HttpMethod.POST, "/v1/chat/completions", "{}"));
        assertOpenAiError(draining, 503, "server_error", "draining");
        assertEquals("1", draining.header(HttpHeaderNames.RETRY_AFTER));
        first.finishAndReleaseAll();
    }

    @Test
    void requestOverTheTimeoutIs504AndCancelsTheWork() throws Exception {
        open(ServingOptions.defaults().withRequestTimeout(Duration.ofMillis(50)));
        long start = System.nanoTime();
        Reply r = exchange(req(HttpMethod.POST, "/v1/completions", "{}"));
        assertOpenAiError(r, 504, "server_error", "request_timeout");
        assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(50));
        assertEquals("close", r.header(HttpHeaderNames.CONNECTION));
        channel.runPendingTasks();
        assertTrue(slow.isCancelled(), "closing the connection must cancel the endpoint's future");
    }
}

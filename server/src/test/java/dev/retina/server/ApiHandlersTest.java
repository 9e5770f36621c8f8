package dev.retina.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.FinishReason;
import dev.retina.server.http.ApiRouter;
import dev.retina.server.http.JsonErrorAggregator;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ImageUrlPart;
import dev.retina.server.protocol.Json;
import dev.retina.server.protocol.MessageContent;
import dev.retina.server.protocol.TextPart;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** The HTTP surface on Netty's EmbeddedChannel: routes, status codes, OpenAI's body shapes, no sockets. */
class ApiHandlersTest {
    private static final int MAX_BODY = 4096;
    private static final Clock CLOCK = Clock.fixed(Instant.ofEpochSecond(1_700_000_000), ZoneOffset.UTC);
    private final ObjectMapper mapper = Json.newMapper();
    private final ExecutorService executor = RetinaServer.newRequestExecutor();
    private final ServedModel model = new ServedModel("tiny-llava", 1_690_000_000L);
    private final EmbeddedChannel channel = new EmbeddedChannel(new JsonErrorAggregator(MAX_BODY, mapper),
            new ApiRouter(RetinaServer.routes(model, mapper, CLOCK), executor, mapper));

    @AfterEach
    void tearDown() {
        executor.shutdownNow();
        channel.finishAndReleaseAll();
    }

    private FakeChatBackend load(FakeChatBackend backend) {
        model.markLoaded(new BackendLoader.LoadedModel(backend, "/models/tiny", 4096));
        return backend;
    }

    private static FullHttpRequest request(HttpMethod method, String uri, String body) {
        FullHttpRequest req = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, method, uri,
                Unpooled.copiedBuffer(body, StandardCharsets.UTF_8));
        HttpUtil.setContentLength(req, req.content().readableBytes());
        HttpUtil.setKeepAlive(req, true);
        return req;
    }

    private record Reply(int status, JsonNode json, FullHttpResponse raw) {
    }

    private Reply send(Object... inbound) throws Exception {
        channel.writeInbound(inbound);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (System.nanoTime() < deadline) {
            channel.runPendingTasks();
            FullHttpResponse response = channel.readOutbound();
            if (response != null) {
                String text = response.content().toString(StandardCharsets.UTF_8);
                JsonNode json = text.isEmpty() ? null : mapper.readTree(text);
                response.release();
                return new Reply(response.status().code(), json, response);
            }
            Thread.sleep(1);
        }
        throw new AssertionError("no response within 5 s");
    }

    private Reply post(String body) throws Exception {
        return send(request(HttpMethod.POST, "/v1/chat/completions", body));
    }

    private static String chat(String model, String messages) {
        return "{\"model\":\"" + model + "\",\"messages\":" + messages + "}";
    }

    private static final String HELLO = "[{\"role\":\"user\",\"content\":\"Hello\"}]";

    private static void assertError(Reply reply, int status, String param, String code) {
        assertEquals(status, reply.status(), () -> "body: " + reply.json());
        JsonNode error = reply.json().get("error");
        assertNotNull(error, "error body missing: " + reply.json());
        assertTrue(error.get("message").isTextual() && !error.get("message").asText().isEmpty());
        assertTrue(error.get("type").isTextual());
        assertTrue(error.has("param") && error.has("code"), "param and code must be present (maybe null)");
        if (param == null) assertTrue(error.get("param").isNull(), "param: " + error.get("param"));
        else assertEquals(param, error.get("param").asText());
        if (code == null) assertTrue(error.get("code").isNull(), "code: " + error.get("code"));
        else assertEquals(code, error.get("code").asText());
        assertEquals("application/json", reply.raw().headers().get(HttpHeaderNames.CONTENT_TYPE));
    }

    @Test
    void healthIs503UntilTheModelIsLoadedThen200() throws Exception {
        assertError(send(request(HttpMethod.GET, "/health", "")), 503, null, null);
        load(FakeChatBackend.fixed());
        Reply reply = send(request(HttpMethod.GET, "/health", ""));
        assertEquals(200, reply.status());
    }

    @Test
    void chatBeforeLoadIs503() throws Exception {
        assertError(post(chat("tiny-llava", HELLO)), 503, null, null);
    }

    @Test
    void chatCompletionHasOpenAiShape() throws Exception {
        FakeChatBackend backend = load(FakeChatBackend.fixed());
        Reply reply = post(chat("tiny-llava", HELLO));
        assertEquals(200, reply.status(), () -> reply.json().toString());
        JsonNode body = reply.json();
        assertTrue(body.get("id").asText().startsWith("chatcmpl-"));
        assertEquals("chat.completion", body.get("object").asText());
        assertEquals(1_700_000_000L, body.get("created").asLong());
        assertEquals("tiny-llava", body.get("model").asText());
        JsonNode choice = body.get("choices").get(0);
        assertEquals(0, choice.get("index").asInt());
        assertEquals("assistant", choice.at("/message/role").asText());
        assertEquals("Hello there", choice.at("/message/content").asText());
        assertEquals("stop", choice.get("finish_reason").asText());
        assertTrue(choice.has("logprobs") && choice.get("logprobs").isNull());
        assertEquals(7, body.at("/usage/prompt_tokens").asInt());
        assertEquals(2, body.at("/usage/completion_tokens").asInt());
        assertEquals(9, body.at("/usage/total_tokens").asInt());
        assertTrue(body.has("system_fingerprint") && body.get("system_fingerprint").isNull());
        assertEquals("Hello", ((MessageContent.Text) backend.requests.getFirst().messages().getFirst().content()).text());
    }

    @Test
    void requestFieldsBindIncludingPartsStopAndUnknownFields() throws Exception {
        FakeChatBackend backend = load(FakeChatBackend.fixed());
        Reply reply = post("""
                {"model":"tiny-llava","temperature":0,"max_completion_tokens":12,"stop":"\\n","seed":3,
                 "some_future_field":{"x":1},
                 "messages":[{"role":"user","content":[
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}},
                    {"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":"https://example.com/a.png"}]}]}""");
        assertEquals(200, reply.status(), () -> reply.json().toString());
        var req = backend.requests.getFirst();
        assertEquals(0.0, req.temperature());
        assertEquals(12, req.requestedMaxTokens());
        assertEquals(List.of("\n"), req.stop());
        assertEquals(3L, req.seed());
        var parts = ((MessageContent.Parts) req.messages().getFirst().content()).parts();
        assertEquals(new ImageUrlPart(new ImageUrlPart.ImageUrl("data:image/png;base64,AAAA", "low")), parts.get(0));
        assertEquals(new TextPart("What is this?"), parts.get(1));
        assertEquals("https://example.com/a.png", ((ImageUrlPart) parts.get(2)).imageUrl().url());
    }

    @Test
    void unknownRouteIs404AndWrongMethodIs405WithAllow() throws Exception {
        load(FakeChatBackend.fixed());
        assertError(send(request(HttpMethod.GET, "/v1/completions/nope", "")), 404, null, "not_found");
        Reply reply = send(request(HttpMethod.GET, "/v1/chat/completions", ""));
        assertError(reply, 405, null, "method_not_allowed");
        assertEquals("POST", reply.raw().headers().get(HttpHeaderNames.ALLOW));
        assertError(send(request(HttpMethod.POST, "/health", "")), 405, null, "method_not_allowed");
    }

    @Test
    void modelsListsTheServedModel() throws Exception {
        load(FakeChatBackend.fixed());
        Reply reply = send(request(HttpMethod.GET, "/v1/models?x=1", ""));
        assertEquals(200, reply.status());
        assertEquals("list", reply.json().get("object").asText());
        JsonNode card = reply.json().get("data").get(0);
        assertEquals("tiny-llava", card.get("id").asText());
        assertEquals("model", card.get("object").asText());
        assertEquals(4096, card.get("max_model_len").asInt());
        assertEquals(1, reply.json().get("data").size());
    }

    @Test
    void malformedBodiesAre400WithoutParserText() throws Exception {
        load(FakeChatBackend.fixed());
        for (String body : List.of("{\"model\": \"tiny-llava\", \"messages\": [", "", "[]", "\"hi\"", "{} {}", "null")) {
            Reply reply = post(body);
            assertError(reply, 400, null, null);
            String message = reply.json().at("/error/message").asText();
            assertFalse(message.contains("com.fasterxml") || message.contains("dev.retina"), message);
        }
    }

    @Test
    void missingOrEmptyMessagesAre400OnMessages() throws Exception {
        load(FakeChatBackend.fixed());
        assertError(post("{\"model\":\"tiny-llava\"}"), 400, "messages", null);
        assertError(post(chat("tiny-llava", "[]")), 400, "messages", null);
    }

    @Test
    void unknownModelIs404ModelNotFound() throws Exception {
        load(FakeChatBackend.fixed());
        Reply reply = post(chat("gpt-4o", HELLO));
        assertError(reply, 404, "model", "model_not_found");
        assertTrue(reply.json().at("/error/message").asText().contains("gpt-4o"));
    }

    @Test
    void invalidParametersNameTheParameter() throws Exception {
        FakeChatBackend backend = load(FakeChatBackend.fixed());
        assertError(post("{\"model\":\"tiny-llava\",\"temperature\":3,\"messages\":" + HELLO + "}"), 400, "temperature", null);
        assertError(post("{\"model\":\"tiny-llava\",\"max_tokens\":\"5\",\"messages\":" + HELLO + "}"), 400, "max_tokens", null);
        assertError(post("{\"model\":\"tiny-llava\",\"max_completion_tokens\":0,\"messages\":" + HELLO + "}"), 400,
                "max_completion_tokens", null);
        assertError(post("{\"model\":\"tiny-llava\",\"n\":0,\"messages\":" + HELLO + "}"), 400, "n", null);
        assertError(post("{\"model\":\"tiny-llava\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"messages\":" + HELLO + "}"),
                400, "stop", null);
        assertError(post(chat("tiny-llava", "[{\"role\":\"user\",\"content\":[{\"type\":\"audio\",\"x\":1}]}]")), 400,
                "messages[0].content[0].type", null);
        assertError(post(chat("tiny-llava", "[{\"role\":\"user\",\"content\":42}]")), 400, "messages[0].content", null);
        assertError(post(chat("tiny-llava", "[{\"role\":\"robot\",\"content\":\"hi\"}]")), 400, "messages[0].role", null);
        assertError(post(chat("tiny-llava", "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\"}]")), 400,
                "messages[1].content", null);
        assertError(post(chat("tiny-llava",
                "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"\"}}]}]")), 400,
                "messages[0].content[0].image_url", null);
        assertTrue(backend.requests.isEmpty(), "no invalid request may reach the backend");
    }

    @Test
    void bodyAboveTheLimitIs413WithErrorBody() throws Exception {
        load(FakeChatBackend.fixed());
        // Announced length above the limit: refused before the body is read.
        DefaultHttpRequest head = new DefaultHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/v1/chat/completions");
        HttpUtil.setContentLength(head, MAX_BODY + 1);
        assertError(send(head), 413, null, "request_too_large");
    }

    @Test
    void chunkedBodyGrowingPastTheLimitIs413() throws Exception {
        load(FakeChatBackend.fixed());
        DefaultHttpRequest head = new DefaultHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/v1/chat/completions");
        HttpUtil.setTransferEncodingChunked(head, true);
        channel.writeInbound(head);
        assertError(send(new DefaultHttpContent(Unpooled.wrappedBuffer(new byte[MAX_BODY + 10]))), 413, null,
                "request_too_large");
    }

    @Test
    void backendClientErrorsPassThroughAndInternalErrorsAreHidden() throws Exception {
        load(new FakeChatBackend(r -> {
            String text = ((MessageContent.Text) r.messages().getFirst().content()).text();
            return text.equals("bad image")
                    ? CompletableFuture.failedFuture(new ApiException(422, ApiException.INVALID_REQUEST,
                    "The image could not be decoded", "messages[0].content[0].image_url", "image_undecodable"))
                    : CompletableFuture.failedFuture(new IllegalStateException("secret /internal/path exploded"));
        }));
        assertError(post(chat("tiny-llava", "[{\"role\":\"user\",\"content\":\"bad image\"}]")), 422,
                "messages[0].content[0].image_url", "image_undecodable");
        Reply reply = post(chat("tiny-llava", HELLO));
        assertError(reply, 500, null, null);
        assertFalse(reply.json().toString().contains("secret"));
    }

    @Test
    void backendThrowingSynchronouslyIsAlso500() throws Exception {
        load(new FakeChatBackend(r -> {
            throw new IllegalStateException("boom");
        }));
        assertError(post(chat("tiny-llava", HELLO)), 500, null, null);
    }

    @Test
    void closingTheConnectionCancelsTheGeneration() throws Exception {
        FakeChatBackend backend = load(new FakeChatBackend(r -> new CompletableFuture<>()));
        channel.writeInbound(request(HttpMethod.POST, "/v1/chat/completions", chat("tiny-llava", HELLO)));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (backend.futures.isEmpty() && System.nanoTime() < deadline) Thread.sleep(1);
        assertEquals(1, backend.futures.size());
        channel.close();
        channel.runPendingTasks();
        while (!backend.futures.getFirst().isCancelled() && System.nanoTime() < deadline) Thread.sleep(1);
        assertTrue(backend.futures.getFirst().isCancelled(), "the backend's future must be cancelled");
    }

    @Test
    void lengthFinishReasonIsReported() throws Exception {
        load(new FakeChatBackend(r -> CompletableFuture.completedFuture(new ChatResult("abc", FinishReason.LENGTH, 3, 5))));
        assertEquals("length", post(chat("tiny-llava", HELLO)).json().at("/choices/0/finish_reason").asText());
    }
}

package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.errors.NotFoundException;
import com.openai.errors.UnauthorizedException;
import com.openai.errors.UnexpectedStatusCodeException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.models.Model;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import dev.retina.server.config.VlmConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Operations surface end to end on the llava15-336-mha fixture, with an API key: the OpenAI SDK for models
 * list/retrieve, auth and 413; plain HTTP for /tokenize, /detokenize, /ready, /version; then /metrics after traffic
 * must hold every Retina metric with values that match the traffic sent.
 */
class OperationsE2ETest {
    static final String CASE = "llava15-336-mha";
    static final String MODEL = "tiny-llava";
    static final String KEY = "sk-retina-test";
    static final int MAX_BODY = 256 * 1024;
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));

    static RetinaServer server;
    static OpenAIClient client;
    static HttpClient http;
    static String base;
    static final ObjectMapper mapper = new ObjectMapper();

    @BeforeAll
    static void boot() throws Exception {
        Path modelDir = FIXTURES.resolve("models").resolve(CASE);
        assumeTrue(Files.isRegularFile(modelDir.resolve("config.json")), "fixtures not present: " + modelDir);
        ServerConfig config = new ServerConfig(modelDir.toString(), MODEL, "127.0.0.1", 0, null, Dtype.AUTO, Device.CPU,
                null, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofSeconds(5), MAX_BODY, 20L << 20);
        server = RetinaServer.start(config, ServingOptions.defaults().withApiKeys(List.of(KEY)).withRequestIdHeaders(true),
                new LlavaBackendLoader());
        base = "http://127.0.0.1:" + server.port();
        client = OpenAIOkHttpClient.builder().baseUrl(base + "/v1").apiKey(KEY).maxRetries(0)
                .timeout(Duration.ofSeconds(120)).build();
        http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static HttpResponse<String> send(String method, String path, String json, boolean withKey) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(60));
        if (withKey) b.header("Authorization", "Bearer " + KEY);
        if (json != null) b.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(json));
        else b.method(method, HttpRequest.BodyPublishers.noBody());
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    static ChatCompletionCreateParams imageChat(String text, long maxTokens) throws Exception {
        String url = "data:image/png;base64," + Base64.getEncoder().encodeToString(
                Files.readAllBytes(FIXTURES.resolve("images").resolve("one.png")));
        return ChatCompletionCreateParams.builder().model(MODEL)
                .addUserMessageOfArrayOfContentParts(List.of(
                        ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(url).build()).build()),
                        ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text(text).build())))
                .temperature(0.0).maxCompletionTokens(maxTokens).build();
    }

    @Test
    void modelsListAndRetrieve() {
        List<Model> models = client.models().list().data();
        assertEquals(1, models.size());
        assertEquals(MODEL, models.get(0).id());
        Model one = client.models().retrieve(MODEL);
        assertEquals(MODEL, one.id());
        assertEquals("retina", one.ownedBy());
        NotFoundException e = assertThrows(NotFoundException.class, () -> client.models().retrieve("gpt-4o"));
        assertEquals(404, e.statusCode());
    }

    @Test
    void wrongKeyIsUnauthorizedAndOnlyTheProbesNeedNone() throws Exception {
        OpenAIClient wrong = OpenAIOkHttpClient.builder().baseUrl(base + "/v1").apiKey("sk-wrong").maxRetries(0).build();
        UnauthorizedException e = assertThrows(UnauthorizedException.class, () -> wrong.models().list());
        assertEquals(401, e.statusCode());
        assertEquals(200, send("GET", "/health", null, false).statusCode());
        HttpResponse<String> ready = send("GET", "/ready", null, false);
        assertEquals(200, ready.statusCode());
        assertEquals("ready", mapper.readTree(ready.body()).get("status").asText());
        assertEquals(401, send("GET", "/version", null, false).statusCode(), "only the probes are open");
        assertEquals(401, send("GET", "/metrics", null, false).statusCode(), "only the probes are open");
        assertFalse(mapper.readTree(send("GET", "/version", null, true).body()).get("version").asText().isBlank());
        assertEquals(401, send("POST", "/tokenize", "{\"prompt\":\"hi\"}", false).statusCode());
    }

    @Test
    void oversizedBodyIs413ThroughTheSdk() throws Exception {
        ChatCompletionCreateParams big = ChatCompletionCreateParams.builder().model(MODEL)
                .addUserMessage("x".repeat(MAX_BODY + 1)).maxCompletionTokens(1).build();
        UnexpectedStatusCodeException e = assertThrows(UnexpectedStatusCodeException.class,
                () -> client.chat().completions().create(big));
        assertEquals(413, e.statusCode());
    }

    @Test
    void tokenizeCountsImageTokensAndDetokenizeRoundTrips() throws Exception {
        HttpResponse<String> text = send("POST", "/tokenize", "{\"model\":\"" + MODEL + "\",\"prompt\":\"Hello world\"}", true);
        assertEquals(200, text.statusCode(), text.body());
        JsonNode t = mapper.readTree(text.body());
        assertEquals(t.get("tokens").size(), t.get("count").asInt());
        assertTrue(t.get("max_model_len").asInt() > 0);
        StringBuilder ids = new StringBuilder();
        for (JsonNode id : t.get("tokens")) ids.append(ids.isEmpty() ? "" : ",").append(id.asInt());
        HttpResponse<String> back = send("POST", "/detokenize", "{\"model\":\"" + MODEL + "\",\"tokens\":[" + ids + "]}", true);
        assertEquals(200, back.statusCode(), back.body());
        assertTrue(mapper.readTree(back.body()).get("prompt").asText().endsWith("Hello world"), back.body());

        String url = "data:image/png;base64," + Base64.getEncoder().encodeToString(
                Files.readAllBytes(FIXTURES.resolve("images").resolve("one.png")));
        String chat = "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\",\"content\":["
                + "{\"type\":\"image_url\",\"image_url\":{\"url\":\"" + url + "\"}},"
                + "{\"type\":\"text\",\"text\":\"What is shown in this image?\"}]}]}";
        HttpResponse<String> withImage = send("POST", "/tokenize", chat, true);
        assertEquals(200, withImage.statusCode(), withImage.body());
        JsonNode w = mapper.readTree(withImage.body());
        int numImageTokens = 0;
        for (JsonNode id : w.get("tokens")) if (id.asInt() == 676) numImageTokens++; // the fixture's image_token_id
        assertEquals(576, numImageTokens, "one image expands to 576 tokens");
        // The chat request with the same messages reports the same prompt length.
        ChatCompletion done = client.chat().completions().create(imageChat("What is shown in this image?", 2));
        assertEquals(w.get("count").asLong(), done.usage().orElseThrow().promptTokens());

        HttpResponse<String> badId = send("POST", "/detokenize", "{\"tokens\":[-5]}", true);
        assertEquals(400, badId.statusCode());
        assertEquals("tokens[0]", mapper.readTree(badId.body()).get("error").get("param").asText());
    }

    @Test
    void metricsAfterTrafficHoldEveryMetric() throws Exception {
        ChatCompletion c = client.chat().completions().create(imageChat("Describe it.", 3));
        long prompt = c.usage().orElseThrow().promptTokens();
        assertEquals(400, send("POST", "/v1/chat/completions", "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":"
                + "\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}]}",
                true).statusCode() / 100 * 100);

        HttpResponse<String> scrape = send("GET", "/metrics", null, true); // Prometheus scrapes with the bearer key
        assertEquals(200, scrape.statusCode());
        assertTrue(scrape.headers().firstValue("content-type").orElse("").startsWith("text/plain"));
        String m = scrape.body();
        for (String name : List.of("retina:num_requests_running", "retina:num_requests_waiting",
                "retina:kv_cache_usage_perc", "retina:prompt_tokens_total", "retina:generation_tokens_total",
                "retina:time_to_first_token_seconds_bucket", "retina:time_per_output_token_seconds_bucket",
                "retina:e2e_request_latency_seconds_bucket", "retina:request_queue_time_seconds_bucket",
                "retina:image_fetch_seconds_bucket", "retina:image_fetch_size_bytes_bucket",
                "retina:image_fetch_failures_total", "retina:image_decode_seconds_bucket",
                "retina:image_preprocess_seconds_bucket", "retina:images_per_request_bucket",
                "retina:request_success_total", "retina:encoder_cache_hit_ratio",
                "retina:vision_encoder_passes_total"))
            assertTrue(m.contains(name), "missing " + name);
        assertTrue(value(m, "retina:prompt_tokens_total") >= prompt, "prompt tokens counted");
        assertTrue(value(m, "retina:prompt_tokens_total") >= 576, "image tokens count as prompt tokens");
        assertTrue(value(m, "retina:generation_tokens_total") >= c.usage().orElseThrow().completionTokens());
        assertTrue(value(m, "retina:e2e_request_latency_seconds_count") >= 1);
        assertTrue(value(m, "retina:e2e_request_latency_seconds_sum") > 0);
        assertTrue(value(m, "retina:time_to_first_token_seconds_count") >= 1);
        assertTrue(value(m, "retina:image_fetch_seconds_count") >= 1);
        assertTrue(value(m, "retina:vision_encoder_passes_total") >= 1, "the image went through the vision tower");
        assertEquals(value(m, "retina:vision_encoder_passes_total"), value(m, "retina:vision_encoder_seconds_count"));
        assertTrue(value(m, "retina:vision_encoder_seconds_sum") > 0, "the vision tower's time is published");
        assertTrue(value(m, "retina:image_fetch_size_bytes_sum") >= Files.size(FIXTURES.resolve("images").resolve("one.png")));
        assertTrue(value(m, "retina:image_fetch_failures_total{reason=\"undecodable\"}")
                + value(m, "retina:image_fetch_failures_total{reason=\"not_an_image\"}") >= 1, "the bad image is counted");
        double kv = value(m, "retina:kv_cache_usage_perc");
        assertTrue(kv >= 0 && kv <= 1, "kv usage is a fraction");
        assertEquals(0, value(m, "retina:num_requests_running"), "nothing runs after the requests finished");
    }

    static double value(String exposition, String series) {
        Matcher matcher = Pattern.compile("(?m)^" + Pattern.quote(series) + "(?:\\{[^}]*})? ([0-9.eE+-]+)$").matcher(exposition);
        double sum = 0;
        boolean found = false;
        while (matcher.find()) {
            sum += Double.parseDouble(matcher.group(1));
            found = true;
        }
        assertTrue(found, "no series " + series);
        return sum;
    }
}

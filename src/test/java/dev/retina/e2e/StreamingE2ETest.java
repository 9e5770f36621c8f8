package dev.retina.e2e;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.retina.engine.EngineStats;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.EngineChatBackend;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.VlmConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Streaming, n, logprobs, completions and batch invariance through the real batching engine on CPU, with the
 * llava15-336-mha fixture and the OpenAI Java SDK. The KV cache is deliberately small.
 */
class StreamingE2ETest {
    static final String MODEL = "tiny-llava";
    static final List<String> IMAGES = List.of("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "one.png",
            "palette.png", "rgba.png", "tall.png", "wide.png", "coffee_jpeg.jpg");
    static RetinaServer server;
    static OpenAIClient client;

    @BeforeAll
    static void boot() throws Exception {
        Path modelDir = ChatCompletionE2ETest.FIXTURES.resolve("models").resolve(ChatCompletionE2ETest.CASE);
        assumeTrue(Files.isRegularFile(modelDir.resolve("config.json")), "fixtures not present");
        // 160 blocks of 16 = 2560 tokens: about four image requests (~600 tokens each) at once, so 32 preempt.
        ServerConfig config = new ServerConfig(modelDir.toString(), MODEL, "127.0.0.1", 0, null, Dtype.AUTO, Device.CPU,
                1024, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofSeconds(5), 20 << 20, 20L << 20,
                new EngineArgs(32, 2048, 16, 0.9, 1L << 30, 160));
        server = RetinaServer.start(config, new LlavaBackendLoader());
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey("none")
                .maxRetries(0).timeout(Duration.ofSeconds(120)).build();
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static EngineStats stats() {
        var backend = server.model().loaded().orElseThrow().backend();
        // The server wraps the backend for metrics (MeteredChatBackend); the engine's stats are the wrapped one's.
        if (backend instanceof dev.retina.server.metrics.MeteredChatBackend metered) backend = metered.delegate();
        return ((EngineChatBackend) backend).engineStats();
    }

    static ChatCompletionCreateParams.Builder ask(int image, long maxTokens) throws Exception {
        Path png = ChatCompletionE2ETest.FIXTURES.resolve("images").resolve(IMAGES.get(image % IMAGES.size()));
        return ChatCompletionE2ETest.ask(MODEL, ChatCompletionE2ETest.dataUrl(png).replace("image/png", png.toString().endsWith(".jpg") ? "image/jpeg" : "image/png"), maxTokens).toBuilder();
    }

    static String streamed(ChatCompletionCreateParams params, List<ChatCompletionChunk> chunks) {
        StringBuilder text = new StringBuilder();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(params)) {
            s.stream().forEach(c -> {
                chunks.add(c);
                for (var ch : c.choices()) ch.delta().content().ifPresent(text::append);
            });
        }
        return text.toString();
    }

    @Test
    void streamedTextEqualsNonStreamedAndEndsWithUsage() throws Exception {
        ChatCompletionCreateParams params = ask(0, 12).build();
        ChatCompletion whole = client.chat().completions().create(params);
        List<ChatCompletionChunk> chunks = new ArrayList<>();
        String text = streamed(params.toBuilder().streamOptions(ChatCompletionStreamOptions.builder()
                .includeUsage(true).build()).build(), chunks);
        assertEquals(whole.choices().getFirst().message().content().orElse(""), text);
        assertEquals("assistant", chunks.getFirst().choices().getFirst().delta().role().map(Object::toString)
                .orElse(null).toLowerCase());
        ChatCompletionChunk last = chunks.getLast();
        assertTrue(last.choices().isEmpty());
        assertEquals(whole.usage().orElseThrow().completionTokens(), last.usage().orElseThrow().completionTokens());
        assertEquals(whole.usage().orElseThrow().promptTokens(), last.usage().orElseThrow().promptTokens());
        assertTrue(chunks.get(chunks.size() - 2).choices().getFirst().finishReason().isPresent());
    }

    @Test
    void nThreeGivesThreeIndexedChoicesAndSeededSamplingRepeats() throws Exception {
        ChatCompletionCreateParams params = ask(1, 8).temperature(1.0).seed(7L).n(3).build();
        ChatCompletion a = client.chat().completions().create(params);
        assertEquals(List.of(0L, 1L, 2L), a.choices().stream().map(ChatCompletion.Choice::index).toList());
        ChatCompletion b = client.chat().completions().create(params);
        for (int i = 0; i < 3; i++)
            assertEquals(a.choices().get(i).message().content(), b.choices().get(i).message().content());
        assertEquals(24, a.usage().orElseThrow().completionTokens(), "3 choices x 8 tokens (random weights rarely hit EOS)");
    }

    @Test
    void logprobsHaveOpenAisShape() throws Exception {
        ChatCompletion c = client.chat().completions().create(ask(2, 5).logprobs(true).topLogprobs(3).build());
        var content = c.choices().getFirst().logprobs().orElseThrow().content().orElseThrow();
        assertEquals(c.usage().orElseThrow().completionTokens(), content.size());
        for (var t : content) {
            assertEquals(3, t.topLogprobs().size());
            assertTrue(t.logprob() <= 0);
            assertTrue(t.topLogprobs().getFirst().logprob() >= t.logprob() - 1e-4, "greedy picks the top token");
        }
    }

    @Test
    void completionsEndpointAnswersTextPrompts() {
        Completion c = client.completions().create(CompletionCreateParams.builder().model(MODEL)
                .prompt("The quick brown fox").maxTokens(6).temperature(0.0).build());
        assertEquals("text_completion", c._object_().toString());
        assertEquals(6, c.usage().orElseThrow().completionTokens());
        StringBuilder streamed = new StringBuilder();
        try (var s = client.completions().createStreaming(CompletionCreateParams.builder().model(MODEL)
                .prompt("The quick brown fox").maxTokens(6).temperature(0.0).build())) {
            s.stream().forEach(chunk -> chunk.choices().forEach(ch -> streamed.append(ch.text())));
        }
        assertEquals(c.choices().getFirst().text(), streamed.toString());
    }

    @Test
    void thirtyTwoConcurrentGreedyRequestsAnswerAsAlone() throws Exception {
        int numImages = 10;
        Map<Integer, String> alone = new TreeMap<>();
        List<ChatCompletionCreateParams> params = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            params.add(ask(i % numImages, 6 + i % 5).build());
        }
        for (int i = 0; i < 10; i++)
            alone.put(i, client.chat().completions().create(params.get(i)).choices().getFirst().message().content().orElse(""));
        List<CompletableFuture<String>> together = new ArrayList<>();
        for (ChatCompletionCreateParams p : params)
            together.add(CompletableFuture.supplyAsync(() -> client.chat().completions().create(p).choices().getFirst()
                    .message().content().orElse("")));
        for (int i = 0; i < 10; i++) assertEquals(alone.get(i), together.get(i).get(), "request " + i);
        for (int i = 10; i < 32; i++) together.get(i).get();
        // Preemption under concurrency is asserted in EngineBatchInvarianceTest (the engine driven directly): the
        // SDK's OkHttp dispatcher sends at most 5 requests per host at once, which this 160-block cache holds.
        // The last response arrives before the engine publishes its end-of-step stats: let the snapshot catch up.
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (stats().numFreeBlocks() != stats().numTotalBlocks() && System.nanoTime() < deadline) Thread.sleep(5);
        EngineStats s = stats();
        assertEquals(s.numTotalBlocks(), s.numFreeBlocks(), "all blocks are back in the pool");
    }
}

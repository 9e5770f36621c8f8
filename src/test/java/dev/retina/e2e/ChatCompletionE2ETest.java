package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.errors.OpenAIServiceException;
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
import dev.retina.server.config.VlmConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Boots Retina in-process on 127.0.0.1 with the llava15-336-mha fixture checkpoint and talks to it with the official
 * OpenAI Java SDK: the greedy answer for an image must equal what Hugging Face transformers produced.
 */
class ChatCompletionE2ETest {
    static final String CASE = "llava15-336-mha";
    static final String MODEL = "tiny-llava";
    static final String PROMPT = "What is shown in this image?";
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));

    static RetinaServer server;
    static HttpServer images;
    static OpenAIClient client;
    static JsonNode golden;

    @BeforeAll
    static void boot() throws Exception {
        Path modelDir = FIXTURES.resolve("models").resolve(CASE);
        assumeTrue(Files.isRegularFile(modelDir.resolve("config.json")), "fixtures not present: " + modelDir);
        golden = new ObjectMapper().readTree(FIXTURES.resolve("golden").resolve(CASE + ".json").toFile());
        ServerConfig config = new ServerConfig(modelDir.toString(), MODEL, "127.0.0.1", 0, null, Dtype.AUTO, Device.CPU,
                null, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofMillis(800), 20 << 20, 20L << 20,
                // The test's image server is on loopback, which image URLs may not reach by default.
                MediaConfig.defaults().withAllowPrivateMediaUrls(true));
        server = RetinaServer.start(config, new LlavaBackendLoader());

        images = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        byte[] png = Files.readAllBytes(imagePath(0));
        images.createContext("/ok.png", ex -> {
            ex.getResponseHeaders().add("Content-Type", "image/png");
            ex.sendResponseHeaders(200, png.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(png);
            }
        });
        images.createContext("/missing.png", ex -> {
            ex.sendResponseHeaders(404, -1);
            ex.close();
        });
        images.createContext("/stall.png", ex -> {
            try {
                Thread.sleep(5_000);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            ex.sendResponseHeaders(404, -1);
            ex.close();
        });
        images.setExecutor(java.util.concurrent.Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "e2e-images");
            t.setDaemon(true);
            return t;
        }));
        images.start();

        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey("unused")
                .maxRetries(0).timeout(Duration.ofSeconds(120)).build();
    }

    @AfterAll
    static void stop() {
        if (images != null) images.stop(0);
        if (server != null) server.close();
    }

    static Path imagePath(int prompt) {
        return FIXTURES.resolve("images").resolve(golden.get("prompts").get(prompt).get("image").asText() + ".png");
    }

    static ChatCompletionCreateParams ask(String model, String imageUrl, long maxTokens) {
        return ChatCompletionCreateParams.builder()
                .model(model)
                .addUserMessageOfArrayOfContentParts(List.of(
                        ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(imageUrl).build())
                                .build()),
                        ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text(PROMPT).build())))
                .temperature(0.0)
                .maxCompletionTokens(maxTokens)
                .build();
    }

    static String dataUrl(Path png) throws Exception {
        return "data:image/png;base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(png));
    }

    @Test
    void greedyAnswerForADataUrlImageEqualsTransformers() throws Exception {
        JsonNode prompt = golden.get("prompts").get(0);
        int numGreedy = prompt.get("greedy_tokens").size();
        ChatCompletion completion = client.chat().completions().create(ask(MODEL, dataUrl(imagePath(0)), numGreedy));
        var choice = completion.choices().getFirst();
        assertEquals(prompt.get("text_until_eos").asText(), choice.message().content().orElse(""),
                () -> "finish " + choice.finishReason() + ", usage " + completion.usage());
        boolean goldenHitsEos = false;
        for (JsonNode t : prompt.get("greedy_tokens")) goldenHitsEos |= t.asInt() == golden.get("eos_token_id").asInt();
        assertEquals(goldenHitsEos ? "stop" : "length", choice.finishReason().asString());
        assertEquals(prompt.get("input_ids").size(), completion.usage().orElseThrow().promptTokens(),
                "prompt_tokens counts the image tokens");
        assertEquals(MODEL, completion.model());
    }

    @Test
    void httpImageUrlGivesTheSameAnswer() throws Exception {
        JsonNode prompt = golden.get("prompts").get(0);
        String url = "http://127.0.0.1:" + images.getAddress().getPort() + "/ok.png";
        ChatCompletion completion = client.chat().completions().create(ask(MODEL, url, prompt.get("greedy_tokens").size()));
        assertEquals(prompt.get("text_until_eos").asText(), completion.choices().getFirst().message().content().orElse(""));
    }

    @Test
    void unknownModelIsNotFound() {
        assertThrows(NotFoundException.class,
                () -> client.chat().completions().create(ask("gpt-4o", dataUrl(imagePath(0)), 4)));
    }

    @Test
    void badDataUrlIsAClientError() {
        OpenAIServiceException e = assertThrows(OpenAIServiceException.class,
                () -> client.chat().completions().create(ask(MODEL, "data:image/png;base64,@@not-base64@@", 4)));
        assertTrue(e.statusCode() >= 400 && e.statusCode() < 500, "status " + e.statusCode());
    }

    @Test
    void missingHttpImageIsUnprocessable() {
        String url = "http://127.0.0.1:" + images.getAddress().getPort() + "/missing.png";
        UnprocessableEntityException e = assertThrows(UnprocessableEntityException.class,
                () -> client.chat().completions().create(ask(MODEL, url, 4)));
        assertEquals(422, e.statusCode());
    }

    @Test
    void fileUrlOutsideAnAllowedRootIsBadRequest() {
        BadRequestException e = assertThrows(BadRequestException.class,
                () -> client.chat().completions().create(ask(MODEL, "file:" + imagePath(0).toAbsolutePath(), 4)));
        assertTrue(e.getMessage().contains("messages[0].content[0].image_url"), e.getMessage());
    }

    @Test
    void stallingImageServerGives504() {
        String url = "http://127.0.0.1:" + images.getAddress().getPort() + "/stall.png";
        long start = System.nanoTime();
        OpenAIServiceException e = assertThrows(OpenAIServiceException.class,
                () -> client.chat().completions().create(ask(MODEL, url, 4)));
        assertEquals(504, e.statusCode());
        assertTrue(System.nanoTime() - start < 4_000_000_000L, "the fetch timeout (0.8 s) must cut the stall short");
    }
}

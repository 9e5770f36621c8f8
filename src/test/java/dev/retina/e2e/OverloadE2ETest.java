package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
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
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Overload on a deliberately small server: the demo model with 40 KV blocks (640 tokens, just over its 512-token
 * context) and at most 24 requests waiting. 100 requests arrive at once. Each gets either its answer, equal to the
 * same request's greedy answer when sent alone, or 429 with Retry-After; none hangs. The KV cache runs out, so
 * sequences are preempted (counted in /metrics) and resume without changing a single output.
 */
class OverloadE2ETest {
    static RetinaServer server;
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @BeforeAll
    static void boot() throws Exception {
        ServerConfig config = ServerConfig.defaults(ServerConfig.DEMO_MODEL)
                .withEngine(new EngineArgs(64, 2048, 16, 0.9, 1L << 30, 40));
        ServingOptions d = ServingOptions.defaults();
        ServingOptions options = new ServingOptions(d.apiKeys(), d.allowedOrigins(), d.allowedMethods(),
                d.allowedHeaders(), 24, null, false, false, null, null, "assistant", false);
        server = RetinaServer.start(config, options, new LlavaBackendLoader());
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static HttpResponse<String> ask(String image, String question) throws Exception {
        String body = "{\"model\": \"demo\", \"temperature\": 0, \"max_tokens\": 48, \"ignore_eos\": true, \"messages\": "
                + "[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"" + image
                + "\"}}, {\"type\": \"text\", \"text\": \"" + question + "\"}]}]}";
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/v1/chat/completions"))
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(120))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void aBurstGetsAnswersOr429AndPreemptionChangesNoOutput() throws Exception {
        List<String> images = new ArrayList<>();
        for (String f : List.of("red-circle-blue-square.png", "three-triangles.png"))
            images.add("data:image/png;base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(
                    Path.of(System.getProperty("retina.root", "..")).resolve("examples/images").resolve(f))));
        String[] questions = {"Describe the image.", "What color is the circle?", "How many triangles are there?"};
        List<String> solo = new ArrayList<>();
        for (int p = 0; p < 6; p++) {
            HttpResponse<String> r = ask(images.get(p % 2), questions[p % 3]);
            assertEquals(200, r.statusCode(), r.body());
            solo.add(JSON.readTree(r.body()).at("/choices/0/message/content").asText());
        }
        ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
        List<Future<HttpResponse<String>>> burst = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            int p = i % 6;
            burst.add(pool.submit(() -> ask(images.get(p % 2), questions[p % 3])));
        }
        int answered = 0, refused = 0;
        for (int i = 0; i < burst.size(); i++) {
            HttpResponse<String> r = burst.get(i).get(120, TimeUnit.SECONDS); // never a hang
            if (r.statusCode() == 429) {
                refused++;
                assertTrue(r.headers().firstValue("Retry-After").isPresent(), "429 without Retry-After");
                continue;
            }
            assertEquals(200, r.statusCode(), r.body());
            JsonNode answer = JSON.readTree(r.body());
            assertEquals(solo.get(i % 6), answer.at("/choices/0/message/content").asText(), "request " + i);
            assertEquals(48, answer.at("/usage/completion_tokens").asInt());
            answered++;
        }
        pool.shutdown();
        String metrics = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/metrics"))
                .build(), HttpResponse.BodyHandlers.ofString()).body();
        double preemptions = 0;
        for (String line : metrics.split("\n"))
            if (line.startsWith("retina:num_preemptions_total")) preemptions += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        System.out.printf("overload: 100 at once -> %d answered (all equal to their solo greedy answers), %d got 429; "
                + "%.0f preemptions%n", answered, refused, preemptions);
        assertEquals(100, answered + refused);
        assertTrue(refused > 0 && answered >= 24, answered + " answered, " + refused + " refused");
        assertTrue(preemptions > 0, "the KV cache never ran out: the test proves nothing about preemption");
    }
}

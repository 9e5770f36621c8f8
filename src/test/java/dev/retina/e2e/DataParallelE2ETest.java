package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --data-parallel-size 2} on the CPU with the demo model: two engine replicas in one process behind the
 * least-outstanding-work router. Concurrent requests spread over both replicas and each answer equals the greedy
 * answer; clients that hang up free both replicas' KV caches and stop their generation; a drain lets streams on both
 * replicas finish and refuses new work.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DataParallelE2ETest {
    static RetinaServer server;
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll
    static void boot() throws Exception {
        server = RetinaServer.start(ServerConfig.defaults(ServerConfig.DEMO_MODEL)
                .withEngine(EngineArgs.defaults().withDataParallelSize(2)), new LlavaBackendLoader());
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static String body(boolean stream, int maxTokens, boolean ignoreEos) {
        return "{\"model\": \"demo\", \"temperature\": 0, \"max_tokens\": " + maxTokens + ", \"ignore_eos\": " + ignoreEos
                + ", \"stream\": " + stream + ", \"messages\": [{\"role\": \"user\", \"content\": \"Describe the image.\"}]}";
    }

    static HttpResponse<String> post(String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/v1/chat/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** /metrics as name{labels} -> value. */
    static Map<String, Double> metrics() throws Exception {
        String text = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/metrics"))
                .build(), HttpResponse.BodyHandlers.ofString()).body();
        Map<String, Double> m = new TreeMap<>();
        for (String line : text.split("\n")) {
            if (line.startsWith("#") || line.isBlank()) continue;
            int space = line.lastIndexOf(' ');
            m.put(line.substring(0, space), Double.parseDouble(line.substring(space + 1)));
        }
        return m;
    }

    static double replica(Map<String, Double> m, String name, int r) {
        return m.getOrDefault("retina:" + name + "{replica=\"" + r + "\"}", Double.NaN);
    }

    @Test
    @Order(1)
    void concurrentRequestsSpreadOverBothReplicasAndEqualTheGreedyAnswer() throws Exception {
        String solo = JSON.readTree(post(body(false, 24, false)).body()).at("/choices/0/message/content").asText();
        Map<String, Double> before = metrics();
        ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
        List<Future<HttpResponse<String>>> answers = new ArrayList<>();
        for (int i = 0; i < 8; i++) answers.add(clients.submit(() -> post(body(false, 24, false))));
        for (Future<HttpResponse<String>> f : answers) {
            HttpResponse<String> r = f.get();
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(solo, JSON.readTree(r.body()).at("/choices/0/message/content").asText());
        }
        clients.shutdown();
        Map<String, Double> after = metrics();
        double r0 = replica(after, "replica_requests_routed_total", 0) - replica(before, "replica_requests_routed_total", 0);
        double r1 = replica(after, "replica_requests_routed_total", 1) - replica(before, "replica_requests_routed_total", 1);
        assertEquals(8, r0 + r1, after.toString());
        System.out.printf("data parallel: 8 concurrent requests routed %d / %d%n", (long) r0, (long) r1);
        assertTrue(r0 >= 2 && r1 >= 2, "both replicas took work: " + r0 + " / " + r1);
        for (int r = 0; r < 2; r++)
            assertTrue(after.containsKey("retina:replica_kv_cache_usage_perc{replica=\"" + r + "\"}"), after.toString());
    }

    @Test
    @Order(2)
    void clientsHangingUpFreeBothReplicas() throws Exception {
        byte[] payload = body(true, 400, true).getBytes(StandardCharsets.UTF_8);
        ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
        List<Future<String>> firstLines = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            firstLines.add(clients.submit(() -> HangUpClient.streamThenHangUp(server.port(), payload, 300, true)));
        }
        for (Future<String> f : firstLines) assertTrue(f.get().contains(" 200 "), f.get());
        clients.shutdown();
        Map<String, Double> m = metrics();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline && (replica(m, "replica_num_requests_running", 0) > 0
                || replica(m, "replica_num_requests_running", 1) > 0 || replica(m, "replica_kv_cache_usage_perc", 0) > 0
                || replica(m, "replica_kv_cache_usage_perc", 1) > 0)) {
            Thread.sleep(50);
            m = metrics();
        }
        for (int r = 0; r < 2; r++) {
            assertEquals(0.0, replica(m, "replica_num_requests_running", r), m.toString());
            assertEquals(0.0, replica(m, "replica_kv_cache_usage_perc", r), m.toString());
        }
        double generated = m.get("retina:generation_tokens_total");
        Thread.sleep(500);
        assertEquals(generated, metrics().get("retina:generation_tokens_total"), "generation continued after hang-up");
    }

    @Test
    @Order(3)
    void aRepeatedImageGoesToTheReplicaThatEncodedItAndHitsItsEncoderCache() throws Exception {
        byte[] png = Files.readAllBytes(Path.of(System.getProperty("retina.root", "..")).resolve("examples/images/red-circle-blue-square.png"));
        String image = "{\"model\": \"demo\", \"temperature\": 0, \"max_tokens\": 8, \"messages\": [{\"role\": \"user\", "
                + "\"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,"
                + Base64.getEncoder().encodeToString(png) + "\"}}, {\"type\": \"text\", \"text\": \"What color is the circle?\"}]}]}";
        ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
        double passes0 = metrics().get("retina:vision_encoder_passes_total");
        Future<HttpResponse<String>> x = clients.submit(() -> post(body(false, 450, true)));  // replica 0 (tie)
        awaitRunning(0, 1);
        HttpResponse<String> first = post(image);                                         // replica 1, least loaded
        assertEquals(200, first.statusCode(), first.body());
        Future<HttpResponse<String>> y = clients.submit(() -> post(body(false, 450, true)));  // replica 1
        awaitRunning(1, 1);
        HttpResponse<String> second = post(image); // a tie: without affinity replica 0, which never saw the image
        assertEquals(200, second.statusCode(), second.body());
        assertEquals(JSON.readTree(first.body()).at("/choices/0/message/content").asText(),
                JSON.readTree(second.body()).at("/choices/0/message/content").asText());
        assertEquals(passes0 + 1, metrics().get("retina:vision_encoder_passes_total"),
                "the second request's image came from replica 1's encoder cache");
        assertEquals(200, x.get().statusCode());
        assertEquals(200, y.get().statusCode());
        clients.shutdown();
    }

    private static void awaitRunning(int replica, int atLeast) throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline && replica(metrics(), "replica_num_requests_running", replica) < atLeast)
            Thread.sleep(5);
        assertTrue(replica(metrics(), "replica_num_requests_running", replica) >= atLeast, "replica " + replica + " busy");
    }

    @Test
    @Order(4)
    void aDrainLetsStreamsOnBothReplicasFinishAndRefusesNewWork() throws Exception {
        // Last (@Order): it leaves the server draining.
        ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
        List<Future<HttpResponse<String>>> streams = new ArrayList<>();
        for (int i = 0; i < 4; i++) streams.add(clients.submit(() -> post(body(true, 120, true))));
        Map<String, Double> m = metrics();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline && (replica(m, "replica_num_requests_running", 0) < 1
                || replica(m, "replica_num_requests_running", 1) < 1)) {
            Thread.sleep(10);
            m = metrics();
        }
        assertTrue(replica(m, "replica_num_requests_running", 0) >= 1 && replica(m, "replica_num_requests_running", 1) >= 1,
                "both replicas running: " + m);
        assertTrue(server.drain(Duration.ofSeconds(60)), "in-flight requests finished within the grace period");
        for (Future<HttpResponse<String>> f : streams) {
            HttpResponse<String> r = f.get();
            assertEquals(200, r.statusCode());
            assertTrue(r.body().strip().endsWith("data: [DONE]"), r.body());
            assertTrue(r.body().contains("\"finish_reason\":\"length\""), r.body());
        }
        clients.shutdown();
        HttpResponse<String> refused = post(body(false, 4, false));
        assertEquals(503, refused.statusCode(), refused.body());
        assertTrue(refused.headers().firstValue("Retry-After").isPresent());
    }
}

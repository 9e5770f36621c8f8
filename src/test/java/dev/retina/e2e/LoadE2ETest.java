package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A bounded load test on loopback against the demo model: 1,000 concurrent streaming clients, each sending request
 * after request until the time is up (CI: 20 s; {@code -Dretina.loadSeconds=180} for the documented run). Every
 * stream must arrive whole and well-formed (role chunk, content chunks, one finish_reason, [DONE]) with the same text
 * as that prompt's non-streamed greedy answer; no request may be lost. Resident memory is read before and after (the
 * server runs in this JVM, so RSS covers libtorch's and Netty's native memory).
 */
class LoadE2ETest {
    static final int CLIENTS = 1000;
    static final ObjectMapper JSON = new ObjectMapper();
    static RetinaServer server;
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    static final String[] QUESTIONS = {"What color is the circle?", "Is the circle left or right of the square?",
            "Describe the image.", "How many squares are there?"};

    @BeforeAll
    static void boot() throws Exception {
        server = RetinaServer.start(ServerConfig.defaults(ServerConfig.DEMO_MODEL), new LlavaBackendLoader());
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static String body(String imageUrl, String question, boolean stream) throws Exception {
        return "{\"model\": \"demo\", \"temperature\": 0, \"max_tokens\": 16, \"stream\": " + stream
                + ", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": "
                + JSON.writeValueAsString(imageUrl) + "}}, {\"type\": \"text\", \"text\": "
                + JSON.writeValueAsString(question) + "}]}]}";
    }

    static long rssKb() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status")))
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("\\D", ""));
        return -1;
    }

    /** One streamed request over a raw socket: the concatenated content, or a description of what was wrong. */
    static String stream(byte[] payload) throws Exception {
        try (Socket s = new Socket("127.0.0.1", server.port())) {
            s.setSoTimeout(120_000);
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Connection: close\r\nContent-Length: " + payload.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(payload);
            out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
            String status = in.readLine();
            if (status == null || !status.startsWith("HTTP/1.1 200")) return "BAD status " + status;
            StringBuilder text = new StringBuilder();
            int finishes = 0;
            boolean role = false, done = false;
            for (String line; (line = in.readLine()) != null; ) {
                if (!line.startsWith("data: ")) continue;
                String data = line.substring(6);
                if (data.equals("[DONE]")) {
                    done = true;
                    continue;
                }
                if (done) return "BAD data after [DONE]";
                JsonNode chunk = JSON.readTree(data);
                JsonNode choice = chunk.at("/choices/0");
                if (choice.isMissingNode()) continue;
                role |= choice.at("/delta/role").asText().equals("assistant");
                text.append(choice.at("/delta/content").asText(""));
                if (!choice.path("finish_reason").isNull() && !choice.path("finish_reason").isMissingNode()) finishes++;
            }
            if (!done || !role || finishes != 1) return "BAD stream: done=" + done + " role=" + role + " finishes=" + finishes;
            return text.toString();
        }
    }

    @Test
    void aThousandStreamingClientsLoseNothingAndGetTheGreedyText() throws Exception {
        int seconds = Integer.getInteger("retina.loadSeconds", 20);
        List<String> images = new ArrayList<>();
        for (String f : List.of("red-circle-blue-square.png", "three-triangles.png"))
            images.add("data:image/png;base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(
                    Path.of(System.getProperty("retina.root", "..")).resolve("examples/images").resolve(f))));
        // The reference: each prompt's non-streamed greedy answer, one request at a time.
        List<byte[]> payloads = new ArrayList<>();
        List<String> expected = new ArrayList<>();
        for (String image : images)
            for (String q : QUESTIONS) {
                HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port()
                                + "/v1/chat/completions")).header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body(image, q, false))).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertEquals(200, r.statusCode(), r.body());
                expected.add(JSON.readTree(r.body()).at("/choices/0/message/content").asText());
                payloads.add(body(image, q, true).getBytes(StandardCharsets.UTF_8));
            }
        // Round 1 warms up (heap size, Netty's buffer pools, allocator arenas); round 2 is measured against it.
        AtomicInteger sent = new AtomicInteger(), ok = new AtomicInteger();
        ConcurrentLinkedQueue<String> bad = new ConcurrentLinkedQueue<>();
        run(payloads, expected, Math.max(5, seconds / 4), sent, ok, bad);
        long[] before = memory();
        int warmupRequests = sent.get();
        long start = System.nanoTime();
        run(payloads, expected, seconds, sent, ok, bad);
        double elapsed = (System.nanoTime() - start) / 1e9;
        long[] after = memory();
        int measured = sent.get() - warmupRequests;
        System.out.printf("load: %d clients: %d warm-up requests, then %d in %.0f s (%.1f req/s); %d of %d complete and "
                        + "equal to greedy, %d bad; off-heap resident memory (RSS - committed heap) %d MB -> %d MB, "
                        + "RSS %d MB -> %d MB%n", CLIENTS, warmupRequests, measured, elapsed, measured / elapsed,
                ok.get(), sent.get(), bad.size(), before[0] / 1024, after[0] / 1024, before[1] / 1024, after[1] / 1024);
        assertTrue(bad.isEmpty(), bad.size() + " bad, e.g. " + bad.stream().limit(5).toList());
        assertEquals(sent.get(), ok.get());
        assertTrue(measured >= CLIENTS, "every client got at least one request through: " + measured);
        // The memory bound holds for the dedicated run (-Dretina.loadSeconds, this test alone in its JVM): inside the
        // whole suite, other tests' servers allocate and free native memory in the same process and RSS moves by
        // hundreds of MB for reasons of theirs. The CI run still reports the figure.
        if (System.getProperty("retina.loadSeconds") != null)
            assertTrue(after[0] - before[0] < 100 * 1024, "off-heap memory grew by " + (after[0] - before[0]) / 1024 + " MB");
    }

    /** {off-heap resident KB (RSS minus the committed Java heap), RSS KB}, after a GC. */
    static long[] memory() throws Exception {
        System.gc();
        Thread.sleep(500);
        long rss = rssKb();
        long heap = java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getCommitted() / 1024;
        return new long[] {rss - heap, rss};
    }

    static void run(List<byte[]> payloads, List<String> expected, int seconds, AtomicInteger sent, AtomicInteger ok,
                    ConcurrentLinkedQueue<String> bad) throws Exception {
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
        List<Future<?>> clients = new ArrayList<>();
        for (int c = 0; c < CLIENTS; c++) {
            int client = c;
            clients.add(pool.submit(() -> {
                for (int i = 0; System.nanoTime() < deadline; i++) {
                    int p = (client + i) % payloads.size();
                    sent.incrementAndGet();
                    try {
                        String text = stream(payloads.get(p));
                        if (text.equals(expected.get(p))) ok.incrementAndGet();
                        else bad.add("prompt " + p + ": " + text + " (expected " + expected.get(p) + ")");
                    } catch (Exception e) {
                        bad.add("prompt " + p + ": " + e);
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : clients) f.get(seconds + 300L, TimeUnit.SECONDS);
        pool.shutdown();
    }
}

package dev.retina.e2e;

import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * SIGTERM on a real {@code retina serve} process (the demo model): admission stops at once (/ready 503, a new chat
 * request 503 with Retry-After), the stream in flight runs to its end, and the process exits 0 well within
 * {@code --drain-timeout}.
 */
class SigtermDrainE2ETest {
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static HttpResponse<String> get(String url) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static HttpRequest chat(String base, boolean stream, int maxTokens) {
        String body = "{\"model\": \"demo\", \"temperature\": 0, \"max_tokens\": " + maxTokens + ", \"ignore_eos\": true, "
                + "\"stream\": " + stream + ", \"messages\": [{\"role\": \"user\", \"content\": \"Describe the image.\"}]}";
        return HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build();
    }

    @Test
    void sigtermDrainsInFlightStreamsRefusesNewOnesAndExitsZero() throws Exception {
        int port = freePort();
        String java = ProcessHandle.current().info().command().orElse("java");
        Path log = Files.createTempFile("retina-sigterm", ".log");
        List<String> cmd = new ArrayList<>(List.of(java, "-Dai.djl.offline=true", "-Dai.djl.default_engine=PyTorch",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "dev.retina.server.Main", "serve", "--host", "127.0.0.1", "--port", String.valueOf(port),
                "--drain-timeout", "30"));
        Process server = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        String base = "http://127.0.0.1:" + port;
        try {
            boolean up = false;
            for (int i = 0; i < 240 && !up; i++) {
                try {
                    up = get(base + "/ready").statusCode() == 200;
                } catch (java.io.IOException e) {
                    Thread.sleep(500);
                }
                if (!up) Thread.sleep(250);
                assertTrue(server.isAlive(), Files.readString(log));
            }
            assertTrue(up, "server never became ready:\n" + Files.readString(log));

            // A long stream: 400 tokens, EOS ignored. Read it line by line on another thread.
            HttpResponse<java.io.InputStream> stream = HTTP.send(chat(base, true, 400),
                    HttpResponse.BodyHandlers.ofInputStream());
            assertEquals(200, stream.statusCode());
            BufferedReader reader = new BufferedReader(new InputStreamReader(stream.body(), StandardCharsets.UTF_8));
            String first = reader.readLine();
            assertTrue(first != null && first.startsWith("data: "), String.valueOf(first));
            CompletableFuture<List<String>> rest = CompletableFuture.supplyAsync(() -> {
                List<String> lines = new ArrayList<>();
                try {
                    for (String line; (line = reader.readLine()) != null; ) lines.add(line);
                } catch (java.io.IOException e) {
                    lines.add("IOException " + e.getMessage());
                }
                return lines;
            });

            server.destroy(); // SIGTERM
            long sigterm = System.nanoTime();
            // Admission stops at once while the stream is still running.
            int ready = 0, refused = 0;
            String retryAfter = null;
            for (int i = 0; i < 40 && (ready != 503 || refused != 503); i++) {
                ready = get(base + "/ready").statusCode();
                HttpResponse<String> r = HTTP.send(chat(base, false, 4), HttpResponse.BodyHandlers.ofString());
                refused = r.statusCode();
                retryAfter = r.headers().firstValue("Retry-After").orElse(null);
                if (ready != 503 || refused != 503) Thread.sleep(25);
            }
            assertEquals(503, ready, "/ready during the drain");
            assertEquals(503, refused, "a new request during the drain");
            assertTrue(retryAfter != null, "503 carries Retry-After");

            List<String> lines = rest.get(60, TimeUnit.SECONDS);
            String all = String.join("\n", lines);
            assertTrue(all.contains("\"finish_reason\":\"length\""), "the stream ran to its end:\n" + all);
            assertEquals("data: [DONE]", lines.stream().filter(l -> !l.isBlank()).reduce((a, b) -> b).orElse(""));
            assertTrue(server.waitFor(60, TimeUnit.SECONDS), "the process exits after the drain");
            assertEquals(0, server.exitValue(), Files.readString(log));
            System.out.printf("SIGTERM to exit: %.1f s (drain timeout 30 s)%n", (System.nanoTime() - sigterm) / 1e9);
        } finally {
            server.destroyForcibly();
        }
    }
}

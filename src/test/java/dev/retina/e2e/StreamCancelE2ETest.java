package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** A client that hangs up mid-stream: its KV blocks go back to the pool at once and the server keeps serving. */
class StreamCancelE2ETest {
    static final String MODEL = "tiny-llava";
    static final ObjectMapper JSON = new ObjectMapper();
    static RetinaServer server;

    @BeforeAll
    static void boot() throws Exception {
        Path modelDir = ChatCompletionE2ETest.FIXTURES.resolve("models").resolve(ChatCompletionE2ETest.CASE);
        assumeTrue(Files.isRegularFile(modelDir.resolve("config.json")), "fixtures not present");
        ServerConfig config = new ServerConfig(modelDir.toString(), MODEL, "127.0.0.1", 0, null, Dtype.AUTO, Device.CPU,
                1024, 0L, LoadFormat.AUTO, VlmConfig.defaults(), Duration.ofSeconds(5), 20 << 20, 20L << 20,
                new EngineArgs(8, 1024, 16, 0.9, 1L << 30, 128));
        server = RetinaServer.start(config, new LlavaBackendLoader());
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

    static String body(boolean stream, int maxTokens) throws Exception {
        Path png = ChatCompletionE2ETest.FIXTURES.resolve("images").resolve("astronaut.png");
        ObjectNode req = JSON.createObjectNode().put("model", MODEL).put("stream", stream)
                .put("max_tokens", maxTokens).put("temperature", 0.0).put("ignore_eos", true);
        ObjectNode msg = req.putArray("messages").addObject().put("role", "user");
        var content = msg.putArray("content");
        content.addObject().put("type", "image_url").putObject("image_url")
                .put("url", ChatCompletionE2ETest.dataUrl(png));
        content.addObject().put("type", "text").put("text", ChatCompletionE2ETest.PROMPT);
        return JSON.writeValueAsString(req);
    }

    @Test
    void closingTheStreamMidwayFreesItsBlocksAndTheNextRequestCompletes() throws Exception {
        int total = stats().numTotalBlocks();
        // 400 tokens take this model several seconds on CPU; we hang up after three chunks.
        byte[] payload = body(true, 400).getBytes(StandardCharsets.UTF_8);
        int chunks = 0;
        int busyBlocks;
        long hungUp;
        try (Socket socket = new Socket("127.0.0.1", server.port())) {
            OutputStream out = socket.getOutputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + payload.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(payload);
            out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
            String status = in.readLine();
            assertTrue(status.startsWith("HTTP/1.1 200"), status);
            for (String line; chunks < 3 && (line = in.readLine()) != null; )
                if (line.startsWith("data: {")) chunks++;
            EngineStats during = stats();
            busyBlocks = total - during.numFreeBlocks();
            assertEquals(1, during.numRunning(), "the request is running while we read: " + during);
            hungUp = System.nanoTime();
        }
        assertEquals(3, chunks);
        assertTrue(busyBlocks >= 591 / 16, "the running request held its prompt's blocks: " + busyBlocks);

        EngineStats after = stats();
        long deadline = hungUp + 3_000_000_000L;
        while ((after.numRunning() > 0 || after.numFreeBlocks() != total) && System.nanoTime() < deadline) {
            Thread.sleep(10);
            after = stats();
        }
        double seconds = (System.nanoTime() - hungUp) / 1e9;
        assertEquals(0, after.numRunning(), "aborted, not run to 400 tokens: " + after);
        assertEquals(total, after.numFreeBlocks(), "every block is back " + seconds + " s after the hang-up");
        // The rest of the 400 tokens would take seconds (≥ 5 ms a step here); an abort lands within a step or two.
        System.out.printf("blocks freed %.3f s after the hang-up%n", seconds);
        assertTrue(seconds < 1.0, "freed only after " + seconds + " s: the request ran on instead of aborting");

        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        HttpResponse<String> next = http.send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + server.port() + "/v1/chat/completions"))
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofString(body(false, 4))).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, next.statusCode(), next.body());
        JsonNode answer = JSON.readTree(next.body());
        assertEquals("length", answer.at("/choices/0/finish_reason").asText());
        assertEquals(4, answer.at("/usage/completion_tokens").asInt());
        EngineStats end = stats();
        long endDeadline = System.nanoTime() + 3_000_000_000L;
        while (end.numFreeBlocks() != total && System.nanoTime() < endDeadline) {
            Thread.sleep(10);
            end = stats();
        }
        assertEquals(total, end.numFreeBlocks());
    }
}

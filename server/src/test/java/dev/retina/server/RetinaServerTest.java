package dev.retina.server;

import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

import static org.junit.jupiter.api.Assertions.*;

/** The server over a real socket (127.0.0.1, free port) with a fake backend: codec, keep-alive, limits. */
class RetinaServerTest {
    @Test
    void servesOverASocket() throws Exception {
        ServerConfig config = ServerConfig.defaults("tiny");
        try (RetinaServer server = RetinaServer.start(config,
                c -> new BackendLoader.LoadedModel(FakeChatBackend.fixed(), "/models/tiny", 2048))) {
            HttpClient client = HttpClient.newHttpClient();
            String base = "http://127.0.0.1:" + server.port();
            assertEquals(200, client.send(HttpRequest.newBuilder(URI.create(base + "/health")).build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode());
            HttpResponse<String> chat = client.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(
                            "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, chat.statusCode(), chat.body());
            assertTrue(chat.body().contains("\"content\":\"Hello there\""), chat.body());
            HttpResponse<String> big = client.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .POST(HttpRequest.BodyPublishers.ofByteArray(new byte[config.maxRequestBytes() + 1])).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(413, big.statusCode());
            assertTrue(big.body().contains("\"code\":\"request_too_large\""), big.body());
        }
    }
}

package dev.retina.e2e;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Everything Retina logs while serving requests that carry an API key (right and wrong) and a secret in the body: no
 * line holds the key, the wrong key, or the body's text (docs/SECURITY.md, point 9).
 */
class NoSecretsInLogsE2ETest {
    static final String KEY = "sk-retina-secret-key-0123456789";
    static final String WRONG = "sk-wrong-secret-key-9876543210";
    static final String BODY_SECRET = "my-password-is-hunter2";

    @Test
    void noKeyAndNoRequestBodyReachesTheLogs() throws Exception {
        LoggerContext ctx = (LoggerContext) LoggerFactory.getILoggerFactory();
        Logger root = ctx.getLogger(Logger.ROOT_LOGGER_NAME);
        ListAppender<ILoggingEvent> captured = new ListAppender<>();
        captured.setContext(ctx);
        captured.start();
        root.addAppender(captured);
        ServingOptions options = ServingOptions.defaults().withApiKeys(List.of(KEY));
        try (RetinaServer server = RetinaServer.start(ServerConfig.defaults(ServerConfig.DEMO_MODEL), options,
                new LlavaBackendLoader())) {
            HttpClient http = HttpClient.newHttpClient();
            String base = "http://127.0.0.1:" + server.port();
            String body = "{\"model\": \"demo\", \"max_tokens\": 4, \"user\": \"u1\", \"messages\": [{\"role\": \"user\", "
                    + "\"content\": \"" + BODY_SECRET + "\"}]}";
            for (String key : List.of(KEY, WRONG)) {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                        .header("Authorization", "Bearer " + key).header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
                assertEquals(key.equals(KEY) ? 200 : 401, r.statusCode(), r.body());
            }
            HttpResponse<String> bad = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .header("Authorization", "Bearer " + KEY).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\": \"demo\", \"messages\": \"" + BODY_SECRET
                            + "\"}")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(400, bad.statusCode());
        } finally {
            root.detachAppender(captured);
        }
        List<String> lines = captured.list.stream().map(e -> e.getFormattedMessage()
                + (e.getThrowableProxy() == null ? "" : " " + e.getThrowableProxy().getMessage())).toList();
        assertTrue(lines.stream().anyMatch(l -> l.contains("POST /v1/chat/completions")), "the access log ran: " + lines);
        for (String line : lines) {
            assertFalse(line.contains(KEY), "the key is logged: " + line);
            assertFalse(line.contains(WRONG), "a wrong key is logged: " + line);
            assertFalse(line.contains(BODY_SECRET), "the request body is logged: " + line);
        }
    }
}

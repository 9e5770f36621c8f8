package dev.retina.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.RetinaServer;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ServerConfig;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad input against the running server (the demo model, real sockets): each case gets the right 4xx in OpenAI's error
 * shape, with a message that helps and leaks nothing internal (no class names, stack frames or file paths), and the
 * server still answers a normal request afterwards. The table is in docs/RELIABILITY.md.
 */
class BadInputE2ETest {
    static RetinaServer server;
    static int port;
    static final ObjectMapper JSON = new ObjectMapper();
    static String png1x1;
    static String png64;

    @BeforeAll
    static void boot() throws Exception {
        server = RetinaServer.start(ServerConfig.defaults(ServerConfig.DEMO_MODEL), new LlavaBackendLoader());
        port = server.port();
        png1x1 = dataUrl(new BufferedImage(1, 1, BufferedImage.TYPE_INT_RGB));
        png64 = dataUrl(new BufferedImage(64, 64, BufferedImage.TYPE_INT_RGB));
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static String dataUrl(BufferedImage image) throws Exception {
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(image, "png", png);
        return "data:image/png;base64," + Base64.getEncoder().encodeToString(png.toByteArray());
    }

    /** One case: a raw HTTP request and the status (and optional error code or param) it must get. */
    record Case(String name, String method, String path, String contentType, byte[] body, int status, String expect) {
    }

    static Case chat(String name, String body, int status, String expect) {
        return new Case(name, "POST", "/v1/chat/completions", "application/json",
                body.getBytes(StandardCharsets.UTF_8), status, expect);
    }

    static String user(String content) {
        return "{\"model\": \"demo\", \"max_tokens\": 4, \"messages\": [{\"role\": \"user\", \"content\": " + content + "}]}";
    }

    static String withField(String field) {
        return "{\"model\": \"demo\", \"max_tokens\": 4, " + field
                + ", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    }

    static String image(String url) {
        return user("[{\"type\": \"image_url\", \"image_url\": {\"url\": \"" + url + "\"}}, "
                + "{\"type\": \"text\", \"text\": \"What color is the circle?\"}]");
    }

    static List<Case> cases() {
        List<Case> c = new ArrayList<>();
        c.add(chat("malformed JSON", "{\"model\":", 400, null));
        c.add(chat("truncated in a string", "{\"model\": \"demo\", \"messages\": [{\"role\": \"us", 400, null));
        c.add(chat("a JSON array body", "[]", 400, null));
        c.add(chat("empty body", "", 400, null));
        c.add(chat("JSON null body", "null", 400, null));
        c.add(chat("messages missing", "{\"model\": \"demo\"}", 400, "messages"));
        c.add(chat("messages a string", "{\"model\": \"demo\", \"messages\": \"hi\"}", 400, "messages"));
        c.add(chat("messages empty", "{\"model\": \"demo\", \"messages\": []}", 400, "messages"));
        c.add(chat("model a number", "{\"model\": 7, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, null));
        c.add(chat("unknown model", "{\"model\": \"gpt-9\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
                404, "model_not_found"));
        c.add(chat("max_tokens negative", withField("\"max_completion_tokens\": -5"), 400, "max_completion_tokens"));
        c.add(chat("max_tokens zero", withField("\"max_completion_tokens\": 0"), 400, "max_completion_tokens"));
        c.add(chat("max_tokens absurd", withField("\"max_completion_tokens\": 1000000000000"), 400, null));
        c.add(chat("max_tokens a word", withField("\"max_completion_tokens\": \"ten\""), 400, null));
        c.add(chat("n zero", withField("\"n\": 0"), 400, "n"));
        c.add(chat("n absurd", withField("\"n\": 100000"), 400, "n"));
        c.add(chat("top_logprobs 50", withField("\"logprobs\": true, \"top_logprobs\": 50"), 400, "top_logprobs"));
        c.add(chat("top_logprobs without logprobs", withField("\"top_logprobs\": 3"), 400, "top_logprobs"));
        c.add(chat("temperature negative", withField("\"temperature\": -1"), 400, "temperature"));
        c.add(chat("temperature 1e400", withField("\"temperature\": 1e400"), 400, null));
        c.add(chat("top_p above 1", withField("\"top_p\": 2"), 400, "top_p"));
        c.add(chat("presence_penalty 5", withField("\"presence_penalty\": 5"), 400, "presence_penalty"));
        c.add(chat("frequency_penalty -3", withField("\"frequency_penalty\": -3"), 400, "frequency_penalty"));
        c.add(chat("repetition_penalty 0", withField("\"repetition_penalty\": 0"), 400, "repetition_penalty"));
        c.add(chat("seed a fraction", withField("\"seed\": 1.5"), 400, null));
        c.add(chat("stream a word", withField("\"stream\": \"yes\""), 400, null));
        c.add(chat("stop a number", withField("\"stop\": 123"), 400, null));
        c.add(chat("logit_bias key not an id", withField("\"logit_bias\": {\"abc\": 1}"), 400, "logit_bias"));
        c.add(chat("response_format xml", withField("\"response_format\": {\"type\": \"xml\"}"), 400, "response_format"));
        c.add(chat("unknown role", "{\"model\": \"demo\", \"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}",
                400, null));
        c.add(chat("unknown content part type", user("[{\"type\": \"audio\", \"audio\": \"x\"}]"), 400, null));
        c.add(chat("image in a system message", "{\"model\": \"demo\", \"messages\": [{\"role\": \"system\", \"content\": "
                + "[{\"type\": \"image_url\", \"image_url\": {\"url\": \"" + png64 + "\"}}]}, "
                + "{\"role\": \"user\", \"content\": \"hi\"}]}", 400, null));
        c.add(chat("image_url without url", user("[{\"type\": \"image_url\", \"image_url\": {}}]"), 400, null));
        c.add(chat("invalid base64", image("data:image/png;base64,%%%not-base64%%%"), 400, null));
        c.add(chat("data URL of text", image("data:text/plain;base64," + Base64.getEncoder().encodeToString(
                "hello".getBytes(StandardCharsets.UTF_8))), 422, "image_not_an_image"));
        c.add(chat("PNG bytes said to be JPEG", image(png64.replace("image/png", "image/jpeg")), 200, null));
        c.add(chat("zero-byte image", image("data:image/png;base64,"), 422, "image_not_an_image"));
        c.add(chat("1x1 image", image(png1x1), 200, null));
        c.add(chat("1 MB URL", image("https://example.com/" + "a".repeat(1 << 20)), 400, null));
        c.add(chat("private-address URL", image("http://127.0.0.1:9/x.png"), 400, null));
        c.add(chat("file: URL, no allowed path", image("file:///etc/passwd"), 400, null));
        c.add(chat("five images, limit four", user("[" + String.join(", ", java.util.Collections.nCopies(5,
                "{\"type\": \"image_url\", \"image_url\": {\"url\": \"" + png64 + "\"}}")) + "]"), 400, null));
        c.add(chat("empty string content", user("\"\""), 200, null));
        c.add(chat("1 MB string content", user("\"" + "word ".repeat(200_000) + "\""), 400,
                "context_length_exceeded"));
        c.add(chat("tool_choice naming no tool", withField("\"tools\": [{\"type\": \"function\", \"function\": "
                + "{\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}], \"tool_choice\": {\"type\": \"function\", "
                + "\"function\": {\"name\": \"g\"}}"), 400, "tool_choice"));
        c.add(chat("auto tools without a tools template", withField("\"tools\": [{\"type\": \"function\", "
                + "\"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}]"), 400, "tool_choice"));
        c.add(new Case("non-UTF-8 bytes", "POST", "/v1/chat/completions", "application/json",
                new byte[] {'{', '"', 'm', (byte) 0xC3, (byte) 0x28, (byte) 0xFF, '"', ':', '1', '}'}, 400, null));
        c.add(new Case("wrong content type", "POST", "/v1/chat/completions", "text/plain",
                user("\"hi\"").getBytes(StandardCharsets.UTF_8), 415, null));
        c.add(new Case("body over the limit", "POST", "/v1/chat/completions", "application/json",
                new byte[21 << 20], 413, null));
        c.add(new Case("GET on a POST route", "GET", "/v1/chat/completions", null, new byte[0], 405, null));
        c.add(new Case("unknown path", "GET", "/v1/nothing", null, new byte[0], 404, null));
        c.add(new Case("completions prompt an object", "POST", "/v1/completions", "application/json",
                "{\"model\": \"demo\", \"prompt\": {\"a\": 1}}".getBytes(StandardCharsets.UTF_8), 400, "prompt"));
        c.add(new Case("completions over the context", "POST", "/v1/completions", "application/json",
                ("{\"model\": \"demo\", \"prompt\": \"" + "word ".repeat(2000) + "\"}").getBytes(StandardCharsets.UTF_8),
                400, "context_length_exceeded"));
        c.add(new Case("tokenize with neither prompt nor messages", "POST", "/tokenize", "application/json",
                "{\"model\": \"demo\"}".getBytes(StandardCharsets.UTF_8), 400, null));
        c.add(new Case("detokenize an id past the vocabulary", "POST", "/detokenize", "application/json",
                "{\"model\": \"demo\", \"tokens\": [99999999]}".getBytes(StandardCharsets.UTF_8), 400, null));
        return c;
    }

    @TestFactory
    Stream<DynamicTest> everyBadInputGetsTheRight4xxInOpenAisShape() {
        List<Case> cases = cases();
        assertTrue(cases.size() >= 40, cases.size() + " cases");
        return cases.stream().map(c -> DynamicTest.dynamicTest(c.name(), () -> check(c)));
    }

    static void check(Case c) throws Exception {
        Response r = send(c);
        assertEquals(c.status(), r.status, c.name() + ": " + r.body);
        if (c.status() == 200) return;
        JsonNode error = JSON.readTree(r.body).get("error");
        assertTrue(error != null && error.hasNonNull("message") && error.has("type") && error.has("param")
                && error.has("code"), c.name() + ": not OpenAI's error shape: " + r.body);
        String message = error.get("message").asText();
        assertFalse(message.isBlank(), c.name());
        assertTrue(message.length() < 2000, c.name() + ": a message of " + message.length() + " characters");
        String lower = message.toLowerCase(Locale.ROOT);
        for (String leak : List.of("exception", "dev.retina", "java.", "\tat ", "/work/", "/tmp/", "netty", "djl"))
            assertFalse(lower.contains(leak), c.name() + ": the message leaks '" + leak + "': " + message);
        if (c.expect() != null)
            assertTrue(r.body.contains(c.expect()), c.name() + ": expected '" + c.expect() + "' in " + r.body);
    }

    record Response(int status, String body) {
    }

    /** Sends one request on its own connection and reads one response (Content-Length or chunked not needed here). */
    static Response send(Case c) throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(60_000);
            StringBuilder head = new StringBuilder(c.method() + " " + c.path() + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + "Connection: close\r\n");
            if (c.contentType() != null) head.append("Content-Type: ").append(c.contentType()).append("\r\n");
            if (c.method().equals("POST")) head.append("Content-Length: ").append(c.body().length).append("\r\n");
            head.append("\r\n");
            OutputStream out = s.getOutputStream();
            out.write(head.toString().getBytes(StandardCharsets.ISO_8859_1));
            try {
                out.write(c.body());
                out.flush();
            } catch (java.io.IOException e) {
                // The server may answer (413) and close before the whole body is written.
            }
            return read(s.getInputStream());
        }
    }

    static Response read(InputStream in) throws Exception {
        String all = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        int status = Integer.parseInt(all.substring(9, 12));
        int split = all.indexOf("\r\n\r\n");
        return new Response(status, split < 0 ? "" : all.substring(split + 4));
    }

    @Test
    void headersOverTheLimitGet431AndPipelinedRequestsAreAnsweredInOrder() throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(30_000);
            s.getOutputStream().write(("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + "a".repeat(64 << 10)
                    + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
            Response r = read(s.getInputStream());
            assertEquals(431, r.status, r.body);
        }
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(30_000);
            // The slow request first: answered out of order, the quick ones behind it would overtake it.
            String body = "{\"model\": \"demo\", \"max_tokens\": 32, \"ignore_eos\": true, \"messages\": "
                    + "[{\"role\": \"user\", \"content\": \"hi\"}]}";
            String one = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body;
            String tok = "{\"model\": \"demo\", \"prompt\": \"one\"}";
            String two = "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                    + tok.length() + "\r\n\r\n" + tok;
            String three = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            s.getOutputStream().write((one + two + three).getBytes(StandardCharsets.UTF_8));
            String all = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int first = all.indexOf("chat.completion"), second = all.indexOf("\"tokens\""), third = all.indexOf("\"object\":\"list\"");
            assertTrue(all.split("HTTP/1.1 200", -1).length - 1 == 3, all);
            assertTrue(first >= 0 && second > first && third > second, "answered in order: " + all);
        }
    }

    @Test
    void afterTheTableANormalRequestIsAnswered() throws Exception {
        for (Case c : cases()) {
            try {
                send(c);
            } catch (Exception ignored) {
                // the table's own test reports these
            }
        }
        Response r = send(chat("normal", image(png64), 200, null));
        assertEquals(200, r.status, r.body);
        assertTrue(JSON.readTree(r.body).at("/choices/0/message/content").isTextual(), r.body);
    }
}

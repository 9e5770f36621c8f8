package dev.retina.server;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatRequestValidator;
import dev.retina.server.protocol.Json;
import dev.retina.templates.ChatTemplate;
import dev.retina.templates.ChatTemplateException;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageException;
import dev.retina.vision.ImageFetcher;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Jazzer fuzz targets for what a client controls byte for byte: the chat request body (JSON binding and validation),
 * {@code data:} URL decoding, image decoding, and chat-template rendering of arbitrary messages. Each may only fail
 * with the error a client is meant to get (ApiException, a Jackson error, ImageException, ChatTemplateException);
 * anything else (a NullPointerException, an ArithmeticException, a hang, an OutOfMemoryError) is a finding.
 * A plain test run replays the seeds in src/test/resources/dev/retina/server/InputFuzzTestInputs (findings land there
 * as regression cases); {@code JAZZER_FUZZ=1} fuzzes one target per run for its maxDuration
 * ({@code -Dtest=InputFuzzTest#chatRequestBody}; .ci/run fuzzes each briefly).
 */
class InputFuzzTest {
    static final ObjectMapper MAPPER = Json.newMapper();
    static final ImageFetcher FETCHER = new ImageFetcher(Duration.ofSeconds(1), 1 << 20);
    static final ChatTemplate TEMPLATE = ChatTemplate.builtin("llava");

    @FuzzTest(maxDuration = "15s")
    void chatRequestBody(byte[] body) {
        try { // the server's own binding (ChatCompletionsHandler.parse), then validation
            ChatCompletionRequest req = ChatCompletionsHandler.parse(MAPPER, body, ChatCompletionRequest.class);
            if (req != null) ChatRequestValidator.validate(req, "demo");
        } catch (ApiException e) {
            // the 400 a client gets
        }
    }

    @FuzzTest(maxDuration = "15s")
    void dataUrl(String url) {
        try {
            FETCHER.fetch("data:" + url);
        } catch (ImageException e) {
            // 400 or 422
        }
    }

    @FuzzTest(maxDuration = "15s")
    void imageBytes(byte[] bytes) {
        try {
            ImageDecoder.decode(bytes);
        } catch (ImageException e) {
            // 422: not an image
        }
    }

    @FuzzTest(maxDuration = "15s")
    void templateMessages(FuzzedDataProvider data) {
        List<Map<String, Object>> messages = new ArrayList<>();
        int n = data.consumeInt(0, 6);
        for (int i = 0; i < n; i++) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("role", data.pickValue(List.of("system", "user", "assistant", "tool", data.consumeString(8))));
            m.put("content", data.consumeString(64));
            messages.add(m);
        }
        try {
            TEMPLATE.render(messages, data.consumeBoolean(), Map.of("bos_token", "<s>", "eos_token", "</s>"));
        } catch (ChatTemplateException e) {
            // raise_exception(): the 400 a client gets
        }
    }
}

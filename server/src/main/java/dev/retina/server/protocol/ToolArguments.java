package dev.retina.server.protocol;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.util.Map;

/**
 * A tool call's {@code arguments}: OpenAI sends them as JSON text, HF chat templates read them as a mapping
 * ({@code tool_call.arguments | tojson}), so the text is parsed once on the way in. Stateless.
 */
public final class ToolArguments {
    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).build();

    private ToolArguments() {
    }

    /** Whether {@code text} is exactly one JSON object. */
    public static boolean isObject(String text) {
        try {
            JsonNode node = MAPPER.readTree(text);
            return node != null && node.isObject();
        } catch (JsonProcessingException e) {
            return false;
        }
    }

    /** The arguments as the template sees them (key order kept); the text must be a JSON object. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parse(String text) {
        try {
            return MAPPER.readValue(text, Map.class);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("tool call arguments are not a JSON object", e);
        }
    }
}

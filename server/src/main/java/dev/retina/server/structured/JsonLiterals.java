package dev.retina.server.structured;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/** Compact JSON texts of names and values, as the automaton expects them to be spelled. */
final class JsonLiterals {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private JsonLiterals() {
    }

    static String quote(String s) {
        return MAPPER.getNodeFactory().textNode(s).toString();
    }

    static String compact(JsonNode value) {
        try {
            return MAPPER.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(e);
        }
    }
}

package dev.retina.server.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ChatCompletionChunk.ToolCallDelta;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Hermes-style parsing for auto tool choice, and the streamed shape of a required call. */
class ToolCallParserTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Map<String, JsonNode> TOOLS = Map.of("f", JSON.createObjectNode());

    @Test
    void hermesBlocksBecomeCallsAndTheRestStaysContent() {
        StructuredRequest auto = new StructuredRequest(null, false, StructuredRequest.ToolMode.AUTO, null, TOOLS);
        var parsed = ToolCallParser.parse(auto,
                "Sure. <tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}</tool_call> <tool_call>{\"name\": \"g\"}</tool_call>");
        assertEquals(1, parsed.calls().size(), "unknown function g is not a call");
        assertEquals("f", parsed.calls().getFirst().function().name());
        assertEquals("{\"x\":1}", parsed.calls().getFirst().function().arguments());
        assertEquals("Sure.  <tool_call>{\"name\": \"g\"}</tool_call>", parsed.content());
        var mixed = ToolCallParser.parse(auto, "<tool_call>not json</tool_call><tool_call>{\"name\": \"f\", "
                + "\"arguments\": {}}</tool_call>");
        assertEquals(1, mixed.calls().size(), "a block that is not JSON does not hide the next one");
        assertEquals("<tool_call>not json</tool_call>", mixed.content());
        assertNull(ToolCallParser.parse(auto, "no calls here"));
        assertNull(ToolCallParser.parse(auto, "<tool_call>{\"name\": \"f\", \"argu"), "cut short: content");
    }

    @Test
    void requiredCallStreamsHeadThenArgumentsWithoutTheWrapperBrace() {
        StructuredRequest required = new StructuredRequest(JSON.createObjectNode(), false,
                StructuredRequest.ToolMode.REQUIRED, null, TOOLS);
        ToolCallParser.Streamer s = new ToolCallParser.Streamer(required);
        List<ToolCallDelta> deltas = new ArrayList<>();
        for (String piece : List.of("{\"na", "me\": \"f\", \"argu", "ments\": {\"x\"", ": 1}", "}"))
            deltas.addAll(s.append(piece));
        assertEquals("f", deltas.getFirst().function().name());
        StringBuilder args = new StringBuilder();
        for (ToolCallDelta d : deltas.subList(1, deltas.size())) args.append(d.function().arguments());
        assertEquals("{\"x\": 1}", args.toString());
    }
}

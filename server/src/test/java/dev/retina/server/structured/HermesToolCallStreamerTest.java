package dev.retina.server.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ChatCompletionChunk.ToolCallDelta;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Streamed auto tool calls give what the non-streamed parse gives, wherever the chunk boundaries fall. */
class HermesToolCallStreamerTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final StructuredRequest AUTO = new StructuredRequest(null, false, StructuredRequest.ToolMode.AUTO, null,
            Map.<String, JsonNode>of("f", JSON.createObjectNode(), "g", JSON.createObjectNode()));
    static final String TEXT = "Let me look. <tool_call>{\"name\": \"f\", \"arguments\": {\"x\": \"<b>\"}}</tool_call>\n"
            + "<tool_call> {\"name\": \"g\", \"arguments\": {}} </tool_call>";

    record Result(String content, List<ToolCallDelta> calls) {
    }

    static Result stream(List<String> chunks) {
        HermesToolCallStreamer s = new HermesToolCallStreamer(AUTO);
        StringBuilder content = new StringBuilder();
        List<ToolCallDelta> calls = new ArrayList<>();
        for (String chunk : chunks) {
            HermesToolCallStreamer.Delta d = s.append(chunk);
            assertFalse(d.content().contains("<tool_call") || d.content().contains("</"), chunks + " leaked " + d);
            content.append(d.content());
            calls.addAll(d.toolCalls());
        }
        content.append(s.finish().content());
        return new Result(content.toString(), calls);
    }

    @Test
    void everyTwoWaySplitAndCharByCharGiveTheNonStreamedCalls() {
        var expected = ToolCallParser.parse(AUTO, TEXT);
        assertEquals(2, expected.calls().size());
        List<List<String>> splits = new ArrayList<>();
        for (int i = 0; i <= TEXT.length(); i++) splits.add(List.of(TEXT.substring(0, i), TEXT.substring(i)));
        splits.add(TEXT.chars().mapToObj(c -> String.valueOf((char) c)).toList());
        for (List<String> chunks : splits) {
            Result r = stream(chunks);
            assertEquals(expected.content(), r.content().strip(), chunks.toString());
            assertEquals(2, r.calls().size(), chunks.toString());
            for (int k = 0; k < 2; k++) {
                assertEquals(k, r.calls().get(k).index());
                assertEquals(expected.calls().get(k).function().name(), r.calls().get(k).function().name());
                assertEquals(expected.calls().get(k).function().arguments(), r.calls().get(k).function().arguments());
            }
        }
    }

    @Test
    void aHeldPrefixOrAnUnclosedBlockComesBackAtTheEnd() {
        assertEquals("a <tool_ca", stream(List.of("a <", "tool_ca")).content());
        Result unclosed = stream(List.of("a", "<tool_call>{\"name\": \"f\""));
        assertEquals("a<tool_call>{\"name\": \"f\"", unclosed.content());
        assertEquals(0, unclosed.calls().size());
    }
}

package dev.retina.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ChatCompletionChunk.FunctionDelta;
import dev.retina.server.protocol.ChatCompletionChunk.ToolCallDelta;

import java.util.ArrayList;
import java.util.List;

/**
 * Streams one choice of a {@code tool_choice: "auto"} answer: finds Hermes-style
 * {@code <tool_call>{"name": ..., "arguments": ...}</tool_call>} blocks in the text as it grows. Text outside the
 * blocks goes out as content at once, except a tail that could still become {@code <tool_call>} (so a tag split
 * across chunks never leaks); from the opening tag on, text is held until the closing tag, and the block then goes
 * out as one tool-call delta (index, id, type, name and the whole arguments). A block that does not parse, or names
 * no tool of the request, goes out as content, as {@link ToolCallParser#parse} leaves it in the message. Used by one
 * thread at a time (the request's output drain).
 */
public final class HermesToolCallStreamer {
    static final String OPEN = "<tool_call>";
    static final String CLOSE = "</tool_call>";
    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** What one append or the finish lets out: content ("" when none) and tool-call deltas (empty when none). */
    public record Delta(String content, List<ToolCallDelta> toolCalls) {
    }

    private final StructuredRequest request;
    private final StringBuilder held = new StringBuilder();
    private boolean inBlock;
    private boolean afterCall; // whitespace right after a call is dropped, as the non-streamed message strips it
    private int numCalls;

    public HermesToolCallStreamer(StructuredRequest request) {
        this.request = request;
    }

    public Delta append(String text) {
        held.append(text);
        StringBuilder content = new StringBuilder();
        List<ToolCallDelta> calls = new ArrayList<>();
        while (true) {
            if (!inBlock) {
                int open = held.indexOf(OPEN);
                if (open < 0) {
                    int keep = partialTagLength();
                    content(content, held.substring(0, held.length() - keep));
                    held.delete(0, held.length() - keep);
                    break;
                }
                content(content, held.substring(0, open));
                held.delete(0, open + OPEN.length());
                inBlock = true;
            } else {
                int close = held.indexOf(CLOSE);
                if (close < 0) break;
                String body = held.substring(0, close);
                held.delete(0, close + CLOSE.length());
                inBlock = false;
                ToolCallDelta call = call(body);
                if (call != null) {
                    calls.add(call);
                    afterCall = true;
                } else {
                    content(content, OPEN + body + CLOSE);
                }
            }
        }
        return new Delta(content.toString(), calls);
    }

    /** The choice ended: whatever is held (a partial tag, an unclosed block) is content after all. */
    public Delta finish() {
        StringBuilder content = new StringBuilder();
        content(content, (inBlock ? OPEN : "") + held);
        held.setLength(0);
        inBlock = false;
        return new Delta(content.toString(), List.of());
    }

    /** Whether any call went out (the choice then ends with finish_reason tool_calls). */
    public boolean anyCall() {
        return numCalls > 0;
    }

    private void content(StringBuilder out, String text) {
        if (afterCall) {
            text = text.stripLeading();
            if (text.isEmpty()) return;
            afterCall = false;
        }
        out.append(text);
    }

    /** The longest tail of the held text that is a proper prefix of the opening tag. */
    private int partialTagLength() {
        for (int n = Math.min(OPEN.length() - 1, held.length()); n > 0; n--)
            if (OPEN.startsWith(held.substring(held.length() - n))) return n;
        return 0;
    }

    private ToolCallDelta call(String body) {
        try {
            JsonNode call = MAPPER.readTree(body.strip());
            String name = call == null ? null : call.path("name").asText(null);
            if (name == null || !request.tools().containsKey(name)) return null;
            JsonNode args = call.has("arguments") ? call.get("arguments") : call.path("parameters");
            if (!args.isObject()) return null;
            return new ToolCallDelta(numCalls++, ToolCallParser.newCallId(), "function",
                    new FunctionDelta(name, MAPPER.writeValueAsString(args)));
        } catch (Exception e) {
            return null; // not JSON: the block stays content
        }
    }
}

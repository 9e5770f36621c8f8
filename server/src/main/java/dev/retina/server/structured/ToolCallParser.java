package dev.retina.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ChatCompletionChunk.FunctionDelta;
import dev.retina.server.protocol.ChatCompletionChunk.ToolCallDelta;
import dev.retina.server.protocol.ChatCompletionResponse.ToolCall;

import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Turns generated text into OpenAI tool calls. Forced calls (named: the text is the arguments object; required: it
 * is {@code {"name": ..., "arguments": ...}}) always parse, since decoding was constrained. With tool_choice auto, a
 * tools-aware template asks for Hermes-style {@code <tool_call>{"name": ..., "arguments": ...}</tool_call>}; each
 * such block that parses (and names a tool) becomes a call; the text outside those blocks stays content, as
 * {@link HermesToolCallStreamer} streams it.
 */
public final class ToolCallParser {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Pattern HERMES = Pattern.compile("<tool_call>\\s*(\\{.*?})\\s*</tool_call>", Pattern.DOTALL);
    private static final Pattern REQUIRED_HEAD = Pattern.compile("^\\{\"name\": ?\"([A-Za-z0-9_-]+)\", ?\"arguments\": ?");

    private ToolCallParser() {
    }

    /** A message's content (null when nothing but calls) and its calls (empty when none). */
    public record Parsed(String content, List<ToolCall> calls) {
    }

    public static String newCallId() {
        return "call_" + UUID.randomUUID().toString().replace("-", "").substring(0, 24);
    }

    /** The calls in a finished output, or null when the text holds none (it is then plain content). */
    public static Parsed parse(StructuredRequest request, String text) {
        try {
            switch (request.toolMode()) {
                case NAMED -> {
                    JsonNode args = MAPPER.readTree(text);
                    return new Parsed(null, List.of(ToolCall.function(newCallId(), request.namedTool(),
                            MAPPER.writeValueAsString(args))));
                }
                case REQUIRED -> {
                    JsonNode call = MAPPER.readTree(text);
                    return new Parsed(null, List.of(ToolCall.function(newCallId(), call.path("name").asText(),
                            MAPPER.writeValueAsString(call.get("arguments")))));
                }
                case AUTO -> {
                    List<ToolCall> calls = new ArrayList<>();
                    Matcher m = HERMES.matcher(text);
                    StringBuilder content = new StringBuilder();
                    int last = 0;
                    while (m.find()) {
                        JsonNode call = readOrNull(m.group(1)); // a block that is not JSON stays content
                        String name = call == null ? null : call.path("name").asText(null);
                        if (name == null || !request.tools().containsKey(name)) continue;
                        JsonNode args = call.has("arguments") ? call.get("arguments") : call.path("parameters");
                        if (!args.isObject()) continue;
                        calls.add(ToolCall.function(newCallId(), name, MAPPER.writeValueAsString(args)));
                        content.append(text, last, m.start());
                        last = m.end();
                    }
                    if (calls.isEmpty()) return null;
                    content.append(text.substring(last));
                    String rest = content.toString().strip();
                    return new Parsed(rest.isEmpty() ? null : rest, calls);
                }
                default -> {
                    return null;
                }
            }
        } catch (Exception e) {
            return null; // cut short (max_tokens) or not a call: the text stays content
        }
    }

    private static JsonNode readOrNull(String json) {
        try {
            return MAPPER.readTree(json);
        } catch (Exception e) {
            return null;
        }
    }

    /**
     * Streams one choice's forced call as OpenAI does: a first delta with id, type and name, then argument
     * fragments. For "required" the head {@code {"name": "f", "arguments": } is held until complete and the closing
     * brace of the wrapper is never sent (the last byte is always held back until the next text or the end).
     */
    public static final class Streamer {
        private final StructuredRequest request;
        private final StringBuilder pending = new StringBuilder();
        private boolean started;

        public Streamer(StructuredRequest request) {
            this.request = request;
        }

        public List<ToolCallDelta> append(String text) {
            List<ToolCallDelta> out = new ArrayList<>();
            if (request.toolMode() == StructuredRequest.ToolMode.NAMED) {
                if (!started) {
                    started = true;
                    out.add(new ToolCallDelta(0, newCallId(), "function", new FunctionDelta(request.namedTool(), "")));
                }
                if (!text.isEmpty()) out.add(new ToolCallDelta(0, null, null, new FunctionDelta(null, text)));
                return out;
            }
            pending.append(text);
            if (!started) {
                Matcher m = REQUIRED_HEAD.matcher(pending);
                if (!m.find()) return out;
                started = true;
                out.add(new ToolCallDelta(0, newCallId(), "function", new FunctionDelta(m.group(1), "")));
                pending.delete(0, m.end());
            }
            if (pending.length() > 1) {
                String fragment = pending.substring(0, pending.length() - 1);
                pending.delete(0, pending.length() - 1);
                out.add(new ToolCallDelta(0, null, null, new FunctionDelta(null, fragment)));
            }
            return out;
        }

        /** Whether the call's head went out (so the choice ends with finish_reason tool_calls). */
        public boolean started() {
            return started;
        }
    }
}

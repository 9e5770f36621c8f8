package dev.retina.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A chat request's {@code response_format}, {@code tools} and {@code tool_choice}, checked (400s name the
 * parameter) and turned into the JSON schema its output is constrained to, if any:
 * <ul>
 *   <li>{@code response_format} {@code json_object}: any JSON object; {@code json_schema}: its {@code schema}.
 *   <li>{@code tool_choice} a named function: that function's {@code parameters} (the output is the arguments);
 *       {@code "required"}: {@code {"name": <one of the tools>, "arguments": <its parameters>}} (one call).
 *   <li>{@code "auto"} (the default with tools) and {@code "none"}: unconstrained.
 * </ul>
 * Immutable.
 */
public record StructuredRequest(JsonNode schema, boolean anyObject, ToolMode toolMode, String namedTool,
                                Map<String, JsonNode> tools) {
    public enum ToolMode { NONE, AUTO, REQUIRED, NAMED }

    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Pattern FUNCTION_NAME = Pattern.compile("[A-Za-z0-9_-]{1,64}");
    public static final StructuredRequest NONE = new StructuredRequest(null, false, ToolMode.NONE, null, Map.of());

    /** Whether decoding is constrained. */
    public boolean constrained() {
        return anyObject || schema != null;
    }

    /** Whether the output is a tool call to parse into {@code tool_calls}. */
    public boolean forcedToolCall() {
        return toolMode == ToolMode.REQUIRED || toolMode == ToolMode.NAMED;
    }

    /** The automaton of the constrained output; null when unconstrained. */
    public JsonAutomaton automaton() {
        if (anyObject) return JsonAutomaton.anyObject();
        return schema == null ? null : new JsonAutomaton(JsonSchemaCompiler.compile(schema));
    }

    /** What identifies the automaton (for caching compiled constraints across requests). */
    public String cacheKey() {
        return anyObject ? "json_object" : String.valueOf(schema);
    }

    /** The tools as the chat template sees them (HF's {@code tools} argument: the request's tool objects). */
    public List<Object> templateTools(JsonNode toolsNode) {
        if (toolsNode == null || toolsNode.isNull()) return null;
        return MAPPER.convertValue(toolsNode, List.class);
    }

    public static StructuredRequest of(ChatCompletionRequest req) {
        Map<String, JsonNode> tools = tools(req.tools());
        ToolMode mode = ToolMode.NONE;
        String named = null;
        JsonNode choice = req.toolChoice();
        if (choice != null && !choice.isNull()) {
            if (tools.isEmpty()) throw ApiException.badRequest("tool_choice is only allowed when tools are given", "tool_choice");
            if (choice.isTextual()) {
                mode = switch (choice.asText()) {
                    case "none" -> ToolMode.NONE;
                    case "auto" -> ToolMode.AUTO;
                    case "required" -> ToolMode.REQUIRED;
                    default -> throw ApiException.badRequest("tool_choice must be 'none', 'auto', 'required' or "
                            + "{\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice");
                };
            } else {
                named = choice.path("function").path("name").asText(null);
                if (!"function".equals(choice.path("type").asText()) || named == null)
                    throw ApiException.badRequest("tool_choice must name a function: {\"type\": \"function\", "
                            + "\"function\": {\"name\": ...}}", "tool_choice");
                if (!tools.containsKey(named))
                    throw ApiException.badRequest("tool_choice names '" + ApiException.truncate(named)
                            + "', which is not among the tools", "tool_choice");
                mode = ToolMode.NAMED;
            }
        } else if (!tools.isEmpty()) {
            mode = ToolMode.AUTO;
        }
        JsonNode format = req.responseFormat();
        String type = format == null || format.isNull() ? "text" : format.path("type").asText("");
        if (!type.equals("text") && (mode == ToolMode.REQUIRED || mode == ToolMode.NAMED))
            throw ApiException.badRequest("response_format cannot be combined with a forced tool_choice",
                    "response_format");
        switch (type) {
            case "text" -> {
                return switch (mode) {
                    case NAMED -> new StructuredRequest(parameters(tools.get(named)), false, mode, named, tools);
                    case REQUIRED -> new StructuredRequest(requiredSchema(tools), false, mode, null, tools);
                    default -> new StructuredRequest(null, false, mode, null, tools);
                };
            }
            case "json_object" -> {
                return new StructuredRequest(null, true, mode, null, tools);
            }
            case "json_schema" -> {
                JsonNode js = format.get("json_schema");
                if (js == null || !js.isObject())
                    throw ApiException.badRequest("response_format.json_schema is required for type json_schema",
                            "response_format.json_schema");
                if (!js.path("name").isTextual() || !FUNCTION_NAME.matcher(js.path("name").asText()).matches())
                    throw ApiException.badRequest("response_format.json_schema.name is required (a-z, A-Z, 0-9, _ "
                            + "and -, at most 64)", "response_format.json_schema.name");
                JsonNode schema = js.has("schema") ? js.get("schema") : MAPPER.createObjectNode();
                compiles(schema, "response_format.json_schema.schema");
                return new StructuredRequest(schema, false, mode, null, tools);
            }
            default -> throw ApiException.badRequest("response_format.type must be 'text', 'json_object' or "
                    + "'json_schema'", "response_format.type");
        }
    }

    private static Map<String, JsonNode> tools(JsonNode node) {
        if (node == null || node.isNull()) return Map.of();
        if (!node.isArray()) throw ApiException.badRequest("tools must be a list", "tools");
        Map<String, JsonNode> out = new LinkedHashMap<>();
        for (int i = 0; i < node.size(); i++) {
            JsonNode t = node.get(i);
            String at = "tools[" + i + "]";
            if (!"function".equals(t.path("type").asText()))
                throw ApiException.badRequest(at + ".type must be 'function'", at + ".type");
            JsonNode fn = t.get("function");
            String name = fn == null ? null : fn.path("name").asText(null);
            if (name == null || !FUNCTION_NAME.matcher(name).matches())
                throw ApiException.badRequest(at + ".function.name is required (a-z, A-Z, 0-9, _ and -, at most 64)",
                        at + ".function.name");
            if (out.containsKey(name))
                throw ApiException.badRequest("two tools are named '" + name + "'", at + ".function.name");
            compiles(parameters(fn), at + ".function.parameters");
            out.put(name, fn);
        }
        return out;
    }

    /** A function's parameters schema; without one, any object (OpenAI: a function that takes no parameters). */
    static JsonNode parameters(JsonNode function) {
        JsonNode p = function.get("parameters");
        return p == null || p.isNull() ? MAPPER.createObjectNode().put("type", "object") : p;
    }

    private static JsonNode requiredSchema(Map<String, JsonNode> tools) {
        ArrayNode anyOf = MAPPER.createArrayNode();
        for (Map.Entry<String, JsonNode> e : tools.entrySet()) {
            ObjectNode call = anyOf.addObject().put("type", "object");
            ObjectNode props = call.putObject("properties");
            props.putObject("name").put("const", e.getKey());
            props.set("arguments", parameters(e.getValue()));
            call.putArray("required").add("name").add("arguments");
            call.put("additionalProperties", false);
        }
        ObjectNode schema = MAPPER.createObjectNode();
        schema.set("anyOf", anyOf);
        return schema;
    }

    private static void compiles(JsonNode schema, String param) {
        try {
            JsonSchemaCompiler.compile(schema);
        } catch (JsonSchemaCompiler.UnsupportedSchemaException e) {
            throw ApiException.badRequest(e.getMessage(), param);
        }
    }

    /** The names of the tools, in order. */
    public List<String> toolNames() {
        return new ArrayList<>(tools.keySet());
    }
}

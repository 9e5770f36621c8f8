package dev.retina.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import dev.retina.server.structured.SchemaNode.Property;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Compiles a JSON schema into the {@link SchemaNode}s the automaton walks. The subset, chosen so that every text the
 * automaton accepts validates:
 * <ul>
 *   <li>{@code type}: object, array, string, number, integer, boolean, null, or a list of them; no type: any value.
 *   <li>objects: {@code properties}, {@code required}, {@code additionalProperties} (false, true or absent). Objects
 *       with properties are closed: only the listed properties, in listed order, each optional one may be left out.
 *       An object without properties takes any keys and values, unless additionalProperties is false ({@code {}}).
 *   <li>arrays: {@code items} (one schema), {@code minItems}, {@code maxItems}.
 *   <li>strings: {@code minLength}, {@code maxLength} (in code points; an escape counts as one).
 *   <li>{@code enum} and {@code const} of any JSON values (spelled compactly), {@code anyOf}, {@code oneOf} (generated
 *       as anyOf: valid when the alternatives do not overlap).
 *   <li>annotations ignored: title, description, default, examples, $schema, $id, $comment, deprecated, readOnly,
 *       writeOnly.
 * </ul>
 * Anything else (pattern, format, $ref, allOf, not, minimum, ...) is refused with {@link UnsupportedSchemaException}
 * naming the keyword and where it is.
 */
public final class JsonSchemaCompiler {
    private static final Set<String> SUPPORTED = Set.of("type", "properties", "required", "additionalProperties",
            "items", "minItems", "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf");
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema",
            "$id", "$comment", "deprecated", "readOnly", "writeOnly");
    private static final Set<String> TYPES = Set.of("object", "array", "string", "number", "integer", "boolean", "null");
    /** Enum sizes beyond this are refused (literal candidates are tracked per state). */
    static final int MAX_ENUM = 256;

    private JsonSchemaCompiler() {
    }

    /** Thrown for a schema outside the subset; {@code keyword} is what to name in the 400. */
    public static final class UnsupportedSchemaException extends IllegalArgumentException {
        private final String keyword;

        UnsupportedSchemaException(String keyword, String message) {
            super(message);
            this.keyword = keyword;
        }

        public String keyword() { return keyword; }
    }

    public static SchemaNode compile(JsonNode schema) {
        return compile(schema, "schema");
    }

    private static SchemaNode compile(JsonNode schema, String at) {
        if (schema == null || schema.isBoolean() && schema.asBoolean()) return new SchemaNode.AnyValue(0);
        if (!schema.isObject()) throw new UnsupportedSchemaException("type", at + " must be a JSON object");
        for (Iterator<String> it = schema.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!SUPPORTED.contains(k) && !ANNOTATIONS.contains(k) && !k.equals("$defs") && !k.equals("definitions"))
                throw new UnsupportedSchemaException(k, "The JSON schema keyword '" + k + "' (at " + at
                        + ") is not supported for structured output; supported: " + String.join(", ", SUPPORTED.stream().sorted().toList()));
        }
        if (schema.has("const")) return literals(List.of(schema.get("const")), at);
        if (schema.has("enum")) {
            JsonNode e = schema.get("enum");
            if (!e.isArray() || e.isEmpty()) throw new UnsupportedSchemaException("enum", at + ".enum must be a non-empty array");
            if (e.size() > MAX_ENUM) throw new UnsupportedSchemaException("enum", at + ".enum has more than " + MAX_ENUM + " values");
            List<JsonNode> values = new ArrayList<>();
            e.forEach(values::add);
            return literals(values, at);
        }
        for (String combinator : List.of("anyOf", "oneOf")) {
            if (!schema.has(combinator)) continue;
            JsonNode alts = schema.get(combinator);
            if (!alts.isArray() || alts.isEmpty())
                throw new UnsupportedSchemaException(combinator, at + "." + combinator + " must be a non-empty array");
            if (schema.has("type") || schema.has("properties"))
                throw new UnsupportedSchemaException(combinator, at + ": " + combinator
                        + " beside type or properties is not supported; put them in each alternative");
            List<SchemaNode> nodes = new ArrayList<>();
            for (int i = 0; i < alts.size(); i++) nodes.add(compile(alts.get(i), at + "." + combinator + "[" + i + "]"));
            return new SchemaNode.AnyOfNode(nodes);
        }
        JsonNode type = schema.get("type");
        if (type == null) return new SchemaNode.AnyValue(0);
        if (type.isArray()) {
            List<SchemaNode> nodes = new ArrayList<>();
            for (JsonNode t : type) nodes.add(ofType(t.asText(), schema, at));
            if (nodes.isEmpty()) throw new UnsupportedSchemaException("type", at + ".type must not be empty");
            return nodes.size() == 1 ? nodes.getFirst() : new SchemaNode.AnyOfNode(nodes);
        }
        return ofType(type.asText(), schema, at);
    }

    private static SchemaNode ofType(String type, JsonNode schema, String at) {
        if (!TYPES.contains(type))
            throw new UnsupportedSchemaException("type", "Unknown type '" + type + "' at " + at + ".type");
        return switch (type) {
            case "object" -> object(schema, at);
            case "array" -> new SchemaNode.ArrayNode(compile(schema.get("items"), at + ".items"),
                    natural(schema, "minItems", 0, at), natural(schema, "maxItems", SchemaNode.UNBOUNDED, at));
            case "string" -> new SchemaNode.StringNode(natural(schema, "minLength", 0, at),
                    natural(schema, "maxLength", SchemaNode.UNBOUNDED, at));
            case "number" -> new SchemaNode.NumberNode(false);
            case "integer" -> new SchemaNode.NumberNode(true);
            case "boolean" -> new SchemaNode.LiteralNode(List.of("true", "false"));
            default -> new SchemaNode.LiteralNode(List.of("null"));
        };
    }

    private static SchemaNode object(JsonNode schema, String at) {
        JsonNode additional = schema.get("additionalProperties");
        if (additional != null && !additional.isBoolean())
            throw new UnsupportedSchemaException("additionalProperties", at + ".additionalProperties: only true or "
                    + "false is supported");
        JsonNode props = schema.get("properties");
        Set<String> required = new LinkedHashSet<>();
        JsonNode req = schema.get("required");
        if (req != null) {
            if (!req.isArray()) throw new UnsupportedSchemaException("required", at + ".required must be an array");
            req.forEach(r -> required.add(r.asText()));
        }
        if (props == null || props.isEmpty()) {
            if (!required.isEmpty())
                throw new UnsupportedSchemaException("required", at + ".required names properties that "
                        + at + ".properties does not declare");
            boolean closed = additional != null && !additional.asBoolean();
            return new SchemaNode.ObjectNode(List.of(), !closed, 0);
        }
        if (!props.isObject()) throw new UnsupportedSchemaException("properties", at + ".properties must be an object");
        List<Property> properties = new ArrayList<>();
        Set<String> declared = new HashSet<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = props.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            declared.add(e.getKey());
            properties.add(new Property(e.getKey(), compile(e.getValue(), at + ".properties." + e.getKey()),
                    required.contains(e.getKey())));
        }
        for (String r : required)
            if (!declared.contains(r))
                throw new UnsupportedSchemaException("required", at + ".required names '" + r
                        + "', which " + at + ".properties does not declare");
        return new SchemaNode.ObjectNode(properties, false, 0);
    }

    private static SchemaNode literals(List<JsonNode> values, String at) {
        List<String> texts = new ArrayList<>();
        for (JsonNode v : values) {
            String t = JsonLiterals.compact(v);
            if (!texts.contains(t)) texts.add(t);
        }
        return new SchemaNode.LiteralNode(texts);
    }

    private static int natural(JsonNode schema, String keyword, int absent, String at) {
        JsonNode v = schema.get(keyword);
        if (v == null) return absent;
        if (!v.canConvertToInt() || v.asInt() < 0)
            throw new UnsupportedSchemaException(keyword, at + "." + keyword + " must be a non-negative integer");
        return v.asInt();
    }
}

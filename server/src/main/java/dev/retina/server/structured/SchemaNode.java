package dev.retina.server.structured;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A compiled JSON schema (the subset {@link JsonSchemaCompiler} documents), as the {@link JsonAutomaton} walks it.
 * Nodes compare by identity: automaton states hold them, and a state's equality must stay cheap.
 */
public sealed interface SchemaNode {
    /** No bound on a string's length or an array's size. */
    int UNBOUNDED = Integer.MAX_VALUE;

    /**
     * An object. Closed ({@code free == false}): only {@code properties}, in their listed order, each at most once;
     * required ones may not be skipped. Free: any string keys, values {@link AnyValue} one level deeper.
     */
    final class ObjectNode implements SchemaNode {
        final List<Property> properties;
        final boolean free;
        final int depth; // free objects only: nesting depth of their values

        ObjectNode(List<Property> properties, boolean free, int depth) {
            this.properties = List.copyOf(properties);
            this.free = free;
            this.depth = depth;
        }

        /** Whether a required property sits at an index in [from, to). */
        boolean requiredBetween(int from, int to) {
            for (int i = from; i < to && i < properties.size(); i++) if (properties.get(i).required) return true;
            return false;
        }
    }

    /** One declared property; {@code key} is its JSON-encoded name with quotes, as UTF-8. */
    final class Property {
        final String name;
        final byte[] key;
        final SchemaNode schema;
        final boolean required;

        Property(String name, SchemaNode schema, boolean required) {
            this.name = name;
            this.key = JsonLiterals.quote(name).getBytes(StandardCharsets.UTF_8);
            this.schema = schema;
            this.required = required;
        }
    }

    final class ArrayNode implements SchemaNode {
        final SchemaNode items;
        final int minItems;
        final int maxItems;

        ArrayNode(SchemaNode items, int minItems, int maxItems) {
            this.items = items;
            this.minItems = minItems;
            this.maxItems = maxItems;
        }

        /** Counts above this are all alike to the automaton (so states repeat and cache). */
        int countCap() { return maxItems == UNBOUNDED ? minItems : maxItems; }
    }

    /** A string of {@code minLength..maxLength} code points (an escape counts as one). */
    final class StringNode implements SchemaNode {
        final int minLength;
        final int maxLength;

        StringNode(int minLength, int maxLength) {
            this.minLength = minLength;
            this.maxLength = maxLength;
        }

        int lengthCap() { return maxLength == UNBOUNDED ? minLength : maxLength; }
    }

    final class NumberNode implements SchemaNode {
        final boolean integer;

        NumberNode(boolean integer) { this.integer = integer; }
    }

    /** One of a fixed set of JSON texts (true, false, null, enum values, const), compact as Jackson writes them. */
    final class LiteralNode implements SchemaNode {
        final List<byte[]> literals;

        LiteralNode(List<String> literals) {
            this.literals = literals.stream().map(s -> s.getBytes(StandardCharsets.UTF_8)).toList();
        }
    }

    /** Any of the alternatives (anyOf, oneOf, a type list). */
    final class AnyOfNode implements SchemaNode {
        final List<SchemaNode> alternatives;

        AnyOfNode(List<SchemaNode> alternatives) { this.alternatives = List.copyOf(alternatives); }
    }

    /** Any JSON value (json_object's values, a schema without a type); objects and arrays nest at most so deep. */
    final class AnyValue implements SchemaNode {
        final int depth;

        AnyValue(int depth) { this.depth = depth; }
    }
}

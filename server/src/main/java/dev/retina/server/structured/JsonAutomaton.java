package dev.retina.server.structured;

import dev.retina.server.structured.SchemaNode.AnyOfNode;
import dev.retina.server.structured.SchemaNode.AnyValue;
import dev.retina.server.structured.SchemaNode.ArrayNode;
import dev.retina.server.structured.SchemaNode.LiteralNode;
import dev.retina.server.structured.SchemaNode.NumberNode;
import dev.retina.server.structured.SchemaNode.ObjectNode;
import dev.retina.server.structured.SchemaNode.StringNode;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * A byte-level pushdown automaton for JSON texts matching a {@link SchemaNode}. A configuration is an immutable
 * stack of frames ({@link Stack}); a state is the list of live configurations (more than one only where the
 * schema is ambiguous, e.g. anyOf alternatives with a common prefix). Immutable states make trie walks cheap to
 * branch and let results be cached per state.
 *
 * <p>Text shape: compact JSON, except that one space may follow each {@code :} and {@code ,} (bounded, so a model
 * cannot run away in whitespace). No whitespace elsewhere, none before the value and none after it. Strings: any
 * UTF-8 except control bytes, with JSON escapes (u-escapes included). Numbers: JSON grammar, at most
 * {@value #MAX_NUMBER_CHARS} characters; integers have no fraction or exponent.
 */
public final class JsonAutomaton {
    static final int MAX_NUMBER_CHARS = 24;
    /** Nesting allowed inside a free (json_object) value. */
    static final int MAX_FREE_DEPTH = 6;

    /** A configuration: the frame on top and the rest below; {@link #DONE} once the whole value is complete. */
    record Stack(Frame top, Stack rest) {
        static final Stack DONE = new Stack(null, null);

        Stack push(Frame f) { return new Stack(f, this); }
    }

    /** One open construct. Frames are records over node identities and small ints, so equality is cheap. */
    sealed interface Frame permits Value, Obj, Key, Arr, Str, Num, Lit {
        /** Consumes byte {@code b} (0..255) with {@code rest} below; adds each resulting configuration to out. */
        void step(JsonAutomaton a, int b, Stack rest, List<Stack> out);

        /** Whether this construct may end here (a number or a literal that another byte could still extend). */
        default boolean canEnd() { return false; }
    }

    private final SchemaNode root;
    private final AnyValue[] anyByDepth = new AnyValue[MAX_FREE_DEPTH + 2];
    private final ObjectNode[] freeObjects = new ObjectNode[MAX_FREE_DEPTH + 2];
    private final ArrayNode[] freeArrays = new ArrayNode[MAX_FREE_DEPTH + 2];
    private final StringNode freeString = new StringNode(0, SchemaNode.UNBOUNDED);
    private final NumberNode freeNumber = new NumberNode(false);
    private final LiteralNode constants = new LiteralNode(List.of("true", "false", "null"));

    public JsonAutomaton(SchemaNode root) {
        this.root = root;
        for (int d = 0; d < anyByDepth.length; d++) {
            anyByDepth[d] = new AnyValue(d);
            freeObjects[d] = new ObjectNode(List.of(), true, d);
        }
        for (int d = 0; d < anyByDepth.length - 1; d++) freeArrays[d] = new ArrayNode(anyByDepth[d + 1], 0, SchemaNode.UNBOUNDED);
    }

    /** The automaton of json_object: any JSON object. */
    public static JsonAutomaton anyObject() {
        return new JsonAutomaton(new ObjectNode(List.of(), true, 0));
    }

    public List<Stack> initial() {
        return List.of(Stack.DONE.push(new Value(root, false)));
    }

    /** The state after byte {@code b}; empty when no configuration accepts it. */
    public List<Stack> step(List<Stack> state, int b) {
        List<Stack> out = new ArrayList<>(2);
        for (Stack s : state) stepStack(s, b, out);
        if (out.size() > 1) dedup(out);
        return out;
    }

    public List<Stack> step(List<Stack> state, byte[] bytes) {
        for (int i = 0; i < bytes.length && !state.isEmpty(); i++) state = step(state, bytes[i] & 0xFF);
        return state;
    }

    /** Whether some configuration holds a complete value. */
    public static boolean isComplete(List<Stack> state) {
        for (Stack s : state) if (accepting(s)) return true;
        return false;
    }

    private static boolean accepting(Stack s) {
        while (s != Stack.DONE) {
            if (!s.top().canEnd()) return false;
            s = s.rest();
        }
        return true;
    }

    private void stepStack(Stack s, int b, List<Stack> out) {
        if (s == Stack.DONE) return;
        s.top().step(this, b, s.rest(), out);
        if (s.top().canEnd()) stepStack(s.rest(), b, out); // the construct ends; b belongs to the one below
    }

    private static void dedup(List<Stack> out) {
        for (int i = out.size() - 1; i > 0; i--) {
            Stack s = out.get(i);
            for (int j = 0; j < i; j++) {
                if (out.get(j).equals(s)) {
                    out.remove(i);
                    break;
                }
            }
        }
    }

    /** Starts a value of {@code node} with byte b. */
    private void start(SchemaNode node, int b, Stack rest, List<Stack> out) {
        switch (node) {
            case ObjectNode o -> {
                if (b == '{') out.add(rest.push(new Obj(o, 0, Obj.OPEN)));
            }
            case ArrayNode a -> {
                if (b == '[') out.add(rest.push(new Arr(a, 0, Arr.OPEN)));
            }
            case StringNode s -> {
                if (b == '"') out.add(rest.push(new Str(s, 0, 0)));
            }
            case NumberNode n -> {
                int phase = b == '-' ? Num.MINUS : b == '0' ? Num.ZERO : b >= '1' && b <= '9' ? Num.INT : -1;
                if (phase >= 0) out.add(rest.push(new Num(n, phase, 1)));
            }
            case LiteralNode l -> {
                BitSet c = new BitSet();
                for (int i = 0; i < l.literals.size(); i++) if ((l.literals.get(i)[0] & 0xFF) == b) c.set(i);
                if (!c.isEmpty()) out.add(rest.push(new Lit(l, c, 1)));
            }
            case AnyOfNode a -> {
                for (SchemaNode alt : a.alternatives) start(alt, b, rest, out);
            }
            case AnyValue v -> {
                if (b == '{') {
                    if (v.depth < MAX_FREE_DEPTH) start(freeObjects[v.depth], b, rest, out);
                } else if (b == '[') {
                    if (v.depth < MAX_FREE_DEPTH) start(freeArrays[v.depth], b, rest, out);
                } else if (b == '"') {
                    start(freeString, b, rest, out);
                } else if (b == '-' || (b >= '0' && b <= '9')) {
                    start(freeNumber, b, rest, out);
                } else {
                    start(constants, b, rest, out);
                }
            }
        }
    }

    /** A value yet to start; {@code space}: one space may come first. */
    record Value(SchemaNode node, boolean space) implements Frame {
        public void step(JsonAutomaton a, int b, Stack rest, List<Stack> out) {
            if (b == ' ' && space) out.add(rest.push(new Value(node, false)));
            else a.start(node, b, rest, out);
        }
    }

    /** An object after '{' (OPEN), after a member (MEMBER), after ',' (COMMA, COMMA_SPACE), or after a key. */
    record Obj(ObjectNode node, int next, int phase) implements Frame {
        static final int OPEN = 0, MEMBER = 1, COMMA = 2, COMMA_SPACE = 3, AFTER_KEY = 4;

        public void step(JsonAutomaton a, int b, Stack rest, List<Stack> out) {
            switch (phase) {
                case OPEN, MEMBER -> {
                    if (b == '}' && !node.requiredBetween(next, Integer.MAX_VALUE)) out.add(rest);
                    else if (phase == OPEN && b == '"') startKey(a, rest, out);
                    else if (phase == MEMBER && b == ',' && (node.free || next < node.properties.size()))
                        out.add(rest.push(new Obj(node, next, COMMA)));
                }
                case COMMA, COMMA_SPACE -> {
                    if (b == ' ' && phase == COMMA) out.add(rest.push(new Obj(node, next, COMMA_SPACE)));
                    else if (b == '"') startKey(a, rest, out);
                }
                case AFTER_KEY -> {
                    if (b != ':') return;
                    SchemaNode value = node.free ? a.anyByDepth[node.depth + 1] : node.properties.get(next - 1).schema;
                    out.add(rest.push(new Obj(node, next, MEMBER)).push(new Value(value, true)));
                }
                default -> throw new IllegalStateException("object phase " + phase);
            }
        }

        /** After a key's opening quote: a free key is any string; a closed one is a remaining property's name. */
        private void startKey(JsonAutomaton a, Stack rest, List<Stack> out) {
            if (node.free) {
                out.add(rest.push(new Obj(node, 0, AFTER_KEY)).push(new Str(a.freeString, 0, 0)));
                return;
            }
            BitSet candidates = new BitSet();
            for (int i = next; i < node.properties.size(); i++) {
                candidates.set(i);
                if (node.properties.get(i).required) break; // a required property may not be skipped
            }
            if (!candidates.isEmpty()) out.add(rest.push(new Key(node, candidates, 1)));
        }
    }

    /** A closed object's key being spelled: candidates are property indices, {@code pos} bytes of it matched. */
    record Key(ObjectNode node, BitSet candidates, int pos) implements Frame {
        public void step(JsonAutomaton a, int b, Stack rest, List<Stack> out) {
            BitSet next = new BitSet();
            for (int i = candidates.nextSetBit(0); i >= 0; i = candidates.nextSetBit(i + 1)) {
                byte[] key = node.properties.get(i).key;
                if ((key[pos] & 0xFF) != b) continue;
                if (pos + 1 == key.length) out.add(rest.push(new Obj(node, i + 1, Obj.AFTER_KEY)));
                else next.set(i);
            }
            if (!next.isEmpty()) out.add(rest.push(new Key(node, next, pos + 1)));
        }
    }

    record Arr(ArrayNode node, int count, int phase) implements Frame {
        static final int OPEN = 0, ITEM = 1, COMMA = 2, COMMA_SPACE = 3;

        public void step(JsonAutomaton a, int b, Stack rest, List<Stack> out) {
            switch (phase) {
                case OPEN -> {
                    if (b == ']') {
                        if (node.minItems == 0) out.add(rest);
                    } else if (node.maxItems > 0) {
                        a.start(node.items, b, rest.push(item()), out);
                    }
                }
                case ITEM -> {
                    if (b == ']' && count >= node.minItems) out.add(rest);
                    else if (b == ',' && count < node.maxItems) out.add(rest.push(new Arr(node, count, COMMA)));
                }
                case COMMA, COMMA_SPACE -> {
                    if (b == ' ' && phase == COMMA) out.add(rest.push(new Arr(node, count, COMMA_SPACE)));
                    else a.start(node.items, b, rest.push(item()), out);
                }
                default -> throw new IllegalStateException("array phase " + phase);
            }
        }

        /** The frame below the next item: one more item, counted up to the cap. */
        private Arr item() {
            return new Arr(node, Math.min(count + 1, node.countCap()), ITEM);
        }
    }

    /**
     * Inside a string: {@code length} code points so far (capped), {@code escape} 0 none, 1 after a backslash, 2..5
     * hex digits of a u-escape; {@code utf8} the continuation bytes still due (low 2 bits) and the range of the next
     * one (above: 0 80-BF, 1 A0-BF, 2 80-9F, 3 90-BF, 4 80-8F), so only well-formed UTF-8 gets through (a stray byte
     * would decode to U+FFFD and break length limits and the text itself).
     */
    record Str(StringNode node, int length, int escape, int utf8) implements Frame {
        Str(StringNode node, int length, int escape) {
            this(node, length, escape, 0);
        }

        public void step(JsonAutomaton a, int b, Stack rest, List<Stack> out) {
            if (utf8 != 0) {
                int range = utf8 >> 2;
                int lo = range == 1 ? 0xA0 : range == 3 ? 0x90 : 0x80;
                int hi = range == 2 ? 0x9F : range == 4 ? 0x8F : 0xBF;
                if (b >= lo && b <= hi) out.add(rest.push(new Str(node, length, 0, (utf8 & 3) - 1)));
            } else if (escape == 0) {
                if (b == '"') {
                    if (length >= node.minLength) out.add(rest);
                } else if (b == '\\') {
                    if (length < node.maxLength) out.add(rest.push(new Str(node, length, 1)));
                } else if (b >= 0x20 && b < 0x80) {
                    if (length < node.maxLength) out.add(rest.push(grow()));
                } else if (b >= 0xC2 && b <= 0xF4 && length < node.maxLength) {
                    int due = b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
                    int range = b == 0xE0 ? 1 : b == 0xED ? 2 : b == 0xF0 ? 3 : b == 0xF4 ? 4 : 0;
                    Str grown = grow();
                    out.add(rest.push(new Str(node, grown.length, 0, range << 2 | due)));
                }
            } else if (escape == 1) {
                if (b == 'u') out.add(rest.push(new Str(node, length, 2)));
                else if ("\"\\/bfnrt".indexOf(b) >= 0) out.add(rest.push(grow()));
            } else if (Character.digit(b, 16) >= 0 && b < 0x80) {
                out.add(rest.push(escape == 5 ? grow() : new Str(node, length, escape + 1)));
            }
        }

        private Str grow() {
            return new Str(node, Math.min(length + 1, node.lengthCap()), 0);
        }
    }

    /** A number: phase of the JSON number grammar and characters so far. */
    record Num(NumberNode node, int phase, int numChars) implements Frame {
        static final int MINUS = 0, ZERO = 1, INT = 2, DOT = 3, FRAC = 4, E = 5, E_SIGN = 6, EXP = 7;

        public void step(JsonAutomaton a, int b, Stack rest, List<Stack> out) {
            if (numChars >= MAX_NUMBER_CHARS) return;
            boolean digit = b >= '0' && b <= '9';
            int next = switch (phase) {
                case MINUS -> b == '0' ? ZERO : digit ? INT : -1;
                case ZERO, INT -> digit && phase == INT ? INT : fractionOrExponent(b);
                case DOT, FRAC -> digit ? FRAC : phase == FRAC ? exponent(b) : -1;
                case E -> b == '+' || b == '-' ? E_SIGN : digit ? EXP : -1;
                case E_SIGN, EXP -> digit ? EXP : -1;
                default -> -1;
            };
            if (next >= 0) out.add(rest.push(new Num(node, next, numChars + 1)));
        }

        private int fractionOrExponent(int b) {
            if (node.integer) return -1;
            return b == '.' ? DOT : exponent(b);
        }

        private int exponent(int b) {
            return !node.integer && (b == 'e' || b == 'E') ? E : -1;
        }

        public boolean canEnd() { return phase == ZERO || phase == INT || phase == FRAC || phase == EXP; }
    }

    /** A literal being spelled: candidates are literal indices, {@code pos} bytes matched. */
    record Lit(LiteralNode node, BitSet candidates, int pos) implements Frame {
        public void step(JsonAutomaton a, int b, Stack rest, List<Stack> out) {
            BitSet next = new BitSet();
            for (int i = candidates.nextSetBit(0); i >= 0; i = candidates.nextSetBit(i + 1)) {
                byte[] lit = node.literals.get(i);
                if (pos < lit.length && (lit[pos] & 0xFF) == b) next.set(i);
            }
            if (!next.isEmpty()) out.add(rest.push(new Lit(node, next, pos + 1)));
        }

        public boolean canEnd() {
            for (int i = candidates.nextSetBit(0); i >= 0; i = candidates.nextSetBit(i + 1))
                if (node.literals.get(i).length == pos) return true;
            return false;
        }
    }
}

package dev.retina.templates;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Map;

/**
 * Writes values the way Python's {@code json.dumps(x, ensure_ascii=False)} does, which is what transformers'
 * {@code tojson} filter calls: {@code ", "} and {@code ": "} separators without indent ({@code ","} with it),
 * non-ASCII kept, control characters escaped, floats in Python's repr. Any thread.
 */
final class PythonJson {
    private PythonJson() {}

    /** {@code indent} < 0 means none (one line); otherwise that many spaces per level, as json.dumps. */
    static String dumps(Object value, int indent) {
        StringBuilder out = new StringBuilder();
        write(out, value, indent, 0);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value, int indent, int depth) {
        switch (value) {
            case null -> out.append("null");
            case CharSequence s -> writeString(out, s.toString());
            case Boolean b -> out.append(b ? "true" : "false");
            case Double d -> out.append(pythonFloat(d));
            case Float f -> out.append(pythonFloat(f.doubleValue()));
            case BigDecimal d -> out.append(pythonFloat(d.doubleValue()));
            case Number n -> out.append(n.toString());
            case Map<?, ?> map -> {
                if (map.isEmpty()) {
                    out.append("{}");
                    return;
                }
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    separate(out, first, indent, depth + 1);
                    first = false;
                    writeKey(out, e.getKey());
                    out.append(": ");
                    write(out, e.getValue(), indent, depth + 1);
                }
                close(out, indent, depth);
                out.append('}');
            }
            case Iterable<?> it -> {
                if (!it.iterator().hasNext()) {
                    out.append("[]");
                    return;
                }
                out.append('[');
                boolean first = true;
                for (Object item : it) {
                    separate(out, first, indent, depth + 1);
                    first = false;
                    write(out, item, indent, depth + 1);
                }
                close(out, indent, depth);
                out.append(']');
            }
            default -> {
                if (value.getClass().isArray()) {
                    int n = Array.getLength(value);
                    java.util.List<Object> items = new java.util.ArrayList<>(n);
                    for (int i = 0; i < n; i++) {
                        items.add(Array.get(value, i));
                    }
                    write(out, items, indent, depth);
                } else {
                    // Python would raise "not JSON serializable"; a string is the useful answer for a template.
                    writeString(out, value.toString());
                }
            }
        }
    }

    private static void separate(StringBuilder out, boolean first, int indent, int depth) {
        if (!first) {
            out.append(indent < 0 ? ", " : ",");
        }
        if (indent >= 0) {
            out.append('\n').repeat(' ', indent * depth);
        }
    }

    private static void close(StringBuilder out, int indent, int depth) {
        if (indent >= 0) {
            out.append('\n').repeat(' ', indent * depth);
        }
    }

    /** Python converts keys: str as is, bool to true/false, None to null, numbers to their repr. */
    private static void writeKey(StringBuilder out, Object key) {
        String s = switch (key) {
            case null -> "null";
            case Boolean b -> b ? "true" : "false";
            case Double d -> pythonFloat(d);
            case Float f -> pythonFloat(f.doubleValue());
            default -> key.toString();
        };
        writeString(out, s);
    }

    private static void writeString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** Python's float repr: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
    static String pythonFloat(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == 0) {
            return (1 / d < 0) ? "-0.0" : "0.0";
        }
        // Double.toString gives the shortest digits that round-trip (JDK 19+), like Python's repr.
        BigDecimal exact = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        BigInteger unscaled = exact.unscaledValue().abs();
        String digits = unscaled.toString();
        int exponent = digits.length() - 1 - exact.scale(); // d = 0.digits * 10^(exponent+1)
        String sign = d < 0 ? "-" : "";
        if (exponent < -4 || exponent >= 16) {
            String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
            String exp = String.format("%02d", Math.abs(exponent));
            return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + exp;
        }
        String plain = exact.abs().toPlainString();
        if (!plain.contains(".")) {
            plain = plain + ".0";
        }
        return sign + plain;
    }
}

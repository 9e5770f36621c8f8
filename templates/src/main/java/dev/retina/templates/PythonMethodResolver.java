package dev.retina.templates;

import com.hubspot.jinjava.objects.SafeString;
import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Python's str and dict methods inside template expressions ({@code message['role'].upper()},
 * {@code content.strip()}, {@code message.get('tool_calls')}), which jinja2 gets for free from Python and Jinjava
 * lacks (its strings are java.lang.String, whose {@code upper} does not exist, so the call renders empty).
 * Consulted before Jinjava's own resolvers; anything not handled here falls through to them. Any thread.
 */
final class PythonMethodResolver extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (base == null || method == null) {
            return null;
        }
        Object[] args = params == null ? new Object[0] : params;
        String name = method.toString();
        Object result;
        if (base instanceof String || base instanceof SafeString) {
            result = stringMethod(base.toString(), name, args);
        } else if (base instanceof Map<?, ?> map) {
            result = mapMethod(map, name, args);
        } else {
            return null;
        }
        if (result == NOT_HANDLED) {
            return null;
        }
        context.setPropertyResolved(true);
        return result;
    }

    private static final Object NOT_HANDLED = new Object();
    private static final java.util.regex.Pattern INDEX = java.util.regex.Pattern.compile("-?\\d{1,9}");

    private static Object stringMethod(String s, String name, Object[] args) {
        return switch (name) {
            case "upper" -> s.toUpperCase(Locale.ROOT);
            case "lower" -> s.toLowerCase(Locale.ROOT);
            case "strip" -> strip(s, arg(args, 0), true, true);
            case "lstrip" -> strip(s, arg(args, 0), true, false);
            case "rstrip" -> strip(s, arg(args, 0), false, true);
            case "startswith" -> matchesAny(args, p -> s.startsWith(p));
            case "endswith" -> matchesAny(args, p -> s.endsWith(p));
            case "split" -> split(s, arg(args, 0), args.length > 1 ? toInt(args[1]) : -1);
            case "replace" -> replace(s, str(args[0]), str(args[1]), args.length > 2 ? toInt(args[2]) : -1);
            case "title" -> title(s);
            case "capitalize" -> s.isEmpty() ? s
                    : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            case "join" -> join(s, args[0]);
            case "find" -> (long) s.indexOf(str(args[0]));
            case "count" -> count(s, str(args[0]));
            case "isdigit" -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
            case "isspace" -> !s.isEmpty() && s.chars().allMatch(PythonMethodResolver::isPySpace);
            default -> NOT_HANDLED;
        };
    }

    private static Object mapMethod(Map<?, ?> map, String name, Object[] args) {
        return switch (name) {
            case "get" -> args.length == 0 ? NOT_HANDLED
                    : containsKey(map, args[0]) ? map.get(args[0]) : (args.length > 1 ? args[1] : null);
            case "items" -> args.length == 0 ? new ArrayList<>(map.entrySet()) : NOT_HANDLED;
            case "keys" -> args.length == 0 ? new ArrayList<>(map.keySet()) : NOT_HANDLED;
            case "values" -> args.length == 0 ? new ArrayList<>(map.values()) : NOT_HANDLED;
            default -> NOT_HANDLED;
        };
    }

    /** Immutable maps (Map.of) throw on a null key where Python's dict.get just misses. */
    private static boolean containsKey(Map<?, ?> map, Object key) {
        try {
            return map.containsKey(key);
        } catch (NullPointerException | ClassCastException e) {
            return false;
        }
    }

    private static String arg(Object[] args, int i) {
        return args.length > i && args[i] != null ? args[i].toString() : null;
    }

    private static String str(Object o) {
        return o == null ? "None" : o.toString();
    }

    private static int toInt(Object o) {
        return o instanceof Number n ? n.intValue() : Integer.parseInt(o.toString());
    }

    /** str.startswith accepts one prefix or a tuple of them (a list in Jinjava). */
    private static boolean matchesAny(Object[] args, java.util.function.Predicate<String> test) {
        if (args.length == 0) {
            throw new IllegalArgumentException("startswith/endswith takes at least 1 argument");
        }
        if (args[0] instanceof Collection<?> options) {
            for (Object o : options) {
                if (test.test(str(o))) {
                    return true;
                }
            }
            return false;
        }
        return test.test(str(args[0]));
    }

    /** Python's str.isspace(): Unicode whitespace, including NBSP and the separators Java leaves out. */
    static boolean isPySpace(int c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
    }

    private static String strip(String s, String chars, boolean left, boolean right) {
        int start = 0;
        int end = s.length();
        if (left) {
            while (start < end && stripped(s.charAt(start), chars)) {
                start++;
            }
        }
        if (right) {
            while (end > start && stripped(s.charAt(end - 1), chars)) {
                end--;
            }
        }
        return s.substring(start, end);
    }

    private static boolean stripped(char c, String chars) {
        return chars == null ? isPySpace(c) : chars.indexOf(c) >= 0;
    }

    /** str.split: no separator splits on whitespace runs and drops empty pieces; a separator keeps them. */
    private static List<String> split(String s, String sep, int maxSplit) {
        List<String> parts = new ArrayList<>();
        if (sep == null) {
            int i = 0;
            int n = s.length();
            while (true) {
                while (i < n && isPySpace(s.charAt(i))) {
                    i++;
                }
                if (i >= n) {
                    break;
                }
                if (maxSplit >= 0 && parts.size() == maxSplit) {
                    parts.add(strip(s.substring(i), null, false, true));
                    break;
                }
                int j = i;
                while (j < n && !isPySpace(s.charAt(j))) {
                    j++;
                }
                parts.add(s.substring(i, j));
                i = j;
            }
            return parts;
        }
        if (sep.isEmpty()) {
            throw new IllegalArgumentException("empty separator");
        }
        int from = 0;
        while (maxSplit < 0 || parts.size() < maxSplit) {
            int at = s.indexOf(sep, from);
            if (at < 0) {
                break;
            }
            parts.add(s.substring(from, at));
            from = at + sep.length();
        }
        parts.add(s.substring(from));
        return parts;
    }

    private static String replace(String s, String old, String replacement, int count) {
        if (count < 0) {
            return s.replace(old, replacement);
        }
        StringBuilder out = new StringBuilder();
        int from = 0;
        for (int done = 0; done < count && !old.isEmpty(); done++) {
            int at = s.indexOf(old, from);
            if (at < 0) {
                break;
            }
            out.append(s, from, at).append(replacement);
            from = at + old.length();
        }
        return out.append(s.substring(from)).toString();
    }

    /** str.title: a letter after a non-letter starts a word (so "they're" gives "They'Re", as Python does). */
    private static String title(String s) {
        StringBuilder out = new StringBuilder(s.length());
        boolean previousCased = false;
        for (int i = 0; i < s.length(); ) {
            int c = s.codePointAt(i);
            i += Character.charCount(c);
            if (Character.isLetter(c)) {
                out.appendCodePoint(previousCased ? Character.toLowerCase(c) : Character.toTitleCase(c));
                previousCased = true;
            } else {
                out.appendCodePoint(c);
                previousCased = false;
            }
        }
        return out.toString();
    }

    private static String join(String sep, Object items) {
        StringBuilder out = new StringBuilder();
        Iterator<?> it = items instanceof Iterable<?> iterable ? iterable.iterator() : List.of(items).iterator();
        while (it.hasNext()) {
            out.append(str(it.next()));
            if (it.hasNext()) {
                out.append(sep);
            }
        }
        return out.toString();
    }

    private static long count(String s, String sub) {
        if (sub.isEmpty()) {
            return s.length() + 1L;
        }
        long n = 0;
        for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) {
            n++;
        }
        return n;
    }

    /** {@code s[0]}, {@code s[-1]}: Python indexes strings by character; other property access is Jinjava's. */
    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        // Jinjava hands the index over as its string spelling ("0", "-1").
        if ((base instanceof String || base instanceof SafeString) && property != null
                && INDEX.matcher(property.toString()).matches()) {
            String s = base.toString();
            int index = Integer.parseInt(property.toString());
            int i = index < 0 ? s.length() + index : index;
            context.setPropertyResolved(true);
            if (i < 0 || i >= s.length()) {
                throw new IllegalArgumentException("string index out of range");
            }
            return String.valueOf(s.charAt(i));
        }
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {}

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}

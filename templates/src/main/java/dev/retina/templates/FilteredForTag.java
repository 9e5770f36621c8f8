package dev.retina.templates;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.JinjavaInterpreter.InterpreterScopeClosable;
import com.hubspot.jinjava.lib.tag.ForTag;
import com.hubspot.jinjava.tree.TagNode;
import com.hubspot.jinjava.tree.parse.TagToken;
import com.hubspot.jinjava.util.ObjectTruthValue;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.commons.lang3.tuple.Pair;

/**
 * Jinjava's {@code for} plus jinja2's loop filter, {@code {% for m in messages if m.role != 'system' %}}, which
 * Jinjava would otherwise read as part of the iterable and get wrong silently. As in jinja2, {@code loop.*} counts
 * only the items that pass. (jinja2 does not allow an unparenthesised {@code x if c else y} as the iterable, so a
 * top-level {@code if} in the expression is always the filter.)
 */
final class FilteredForTag extends ForTag {
    private static final long serialVersionUID = 1L;

    @Override
    public String interpretUnchecked(TagNode tagNode, JinjavaInterpreter interpreter) {
        Pair<List<String>, String> varsAndExpression = getLoopVarsAndExpression((TagToken) tagNode.getMaster());
        String expression = varsAndExpression.getRight();
        int at = topLevelIf(expression);
        if (at < 0) {
            return super.interpretUnchecked(tagNode, interpreter);
        }
        List<String> loopVars = varsAndExpression.getLeft();
        Object collection = interpreter.resolveELExpression(expression.substring(0, at), tagNode.getLineNumber());
        String condition = expression.substring(at + 4);
        List<Object> kept = new ArrayList<>();
        for (Iterator<?> it = iterate(collection); it.hasNext(); ) {
            Object item = it.next();
            try (InterpreterScopeClosable scope = interpreter.enterScope()) {
                bind(interpreter, loopVars, item);
                if (ObjectTruthValue.evaluate(interpreter.resolveELExpression(condition, tagNode.getLineNumber()))) {
                    kept.add(item);
                }
            }
        }
        return renderForCollection(tagNode, interpreter, loopVars, kept);
    }

    private static Iterator<?> iterate(Object collection) {
        if (collection instanceof Map<?, ?> map) {
            return map.keySet().iterator(); // jinja2 iterates a dict's keys
        }
        if (collection instanceof Iterable<?> iterable) {
            return iterable.iterator();
        }
        return collection == null ? List.of().iterator() : List.of(collection).iterator();
    }

    /** Binds the loop variables for the filter the way ForTag binds them for the body (entries, lists). */
    private static void bind(JinjavaInterpreter interpreter, List<String> loopVars, Object item) {
        if (loopVars.size() == 1) {
            interpreter.getContext().put(loopVars.get(0), item);
            return;
        }
        for (int i = 0; i < loopVars.size(); i++) {
            Object value = null;
            if (item instanceof Map.Entry<?, ?> entry) {
                value = i == 0 ? entry.getKey() : i == 1 ? entry.getValue() : null;
            } else if (item instanceof List<?> list && i < list.size()) {
                value = list.get(i);
            }
            interpreter.getContext().put(loopVars.get(i), value);
        }
    }

    /** Index of " if " outside quotes and brackets, or -1. */
    static int topLevelIf(String expression) {
        int depth = 0;
        char quote = 0;
        for (int i = 0; i < expression.length(); i++) {
            char c = expression.charAt(i);
            if (quote != 0) {
                if (c == '\\') {
                    i++;
                } else if (c == quote) {
                    quote = 0;
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == '(' || c == '[' || c == '{') {
                depth++;
            } else if (c == ')' || c == ']' || c == '}') {
                depth--;
            } else if (depth == 0 && Character.isWhitespace(c) && expression.startsWith("if", i + 1)
                    && i + 3 < expression.length() && Character.isWhitespace(expression.charAt(i + 3))) {
                return i;
            }
        }
        return -1;
    }
}

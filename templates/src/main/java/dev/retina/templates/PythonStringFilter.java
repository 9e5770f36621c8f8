package dev.retina.templates;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.StringFilter;

/** jinja2's {@code |string}: Python's str(), so booleans become {@code True}/{@code False}, not Java's spelling. */
final class PythonStringFilter extends StringFilter {
    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
        if (var instanceof Boolean b) {
            return b ? "True" : "False";
        }
        return super.filter(var, interpreter, args);
    }
}

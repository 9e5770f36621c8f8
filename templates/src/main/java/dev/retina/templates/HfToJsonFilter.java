package dev.retina.templates;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.objects.SafeString;
import java.util.Map;

/**
 * transformers' {@code tojson}: {@code json.dumps(x, ensure_ascii=False, indent=indent)}, replacing Jinjava's own
 * (which uses Jackson's compact spacing). Tool schemas reach the prompt through it, so spacing changes tokens.
 */
final class HfToJsonFilter implements Filter {
    @Override
    public String getName() {
        return "tojson";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
        Object indentArg = kwargs.containsKey("indent") ? kwargs.get("indent") : (args.length > 0 ? args[0] : null);
        int indent = indentArg == null ? -1 : ((Number) toNumber(indentArg)).intValue();
        return new SafeString(PythonJson.dumps(unwrap(var), indent));
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
        int indent = args.length > 0 && args[0] != null ? Integer.parseInt(args[0]) : -1;
        return new SafeString(PythonJson.dumps(unwrap(var), indent));
    }

    private static Object unwrap(Object var) {
        return var instanceof SafeString s ? s.toString() : var;
    }

    private static Object toNumber(Object o) {
        return o instanceof Number n ? n : Long.parseLong(o.toString());
    }
}

package dev.retina.templates;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.InterpreterFactory;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import com.google.common.collect.SetMultimap;
import jinjava.javax.el.CompositeELResolver;

/**
 * The one Jinjava environment configured like transformers' jinja2 sandbox: trim_blocks, lstrip_blocks,
 * {@code raise_exception}, {@code strftime_now}, HF's {@code tojson}, Python string methods, the
 * {@code generation} tag, and Python's spelling of booleans. Shared by all templates; Jinjava is thread-safe for
 * rendering once configured.
 */
final class HfJinjava {
    static final HfJinjava INSTANCE = new HfJinjava();

    final Jinjava jinjava;
    final JinjavaConfig config;
    /** Parent of every render's context: holds the tags, filters and functions, read-only while rendering. */
    private final Context baseContext;

    private HfJinjava() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonMethodResolver());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                // jinja2's keep_trailing_newline=False drops one newline from the source; ChatTemplate does that.
                .withKeepTrailingNewline(true)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        // jinja2's behaviour where Jinjava kept its legacy one (precedence, whitespace control,
                        // backslashes, None loop values, map iteration, Python-style printing of lists/dicts).
                        .withEvaluateMapKeys(true)
                        .withIterateOverMapKeys(true)
                        .withUsePyishObjectMapper(true)
                        .withUseNaturalOperatorPrecedence(true)
                        .withParseWhitespaceControlStrictly(true)
                        .withAllowAdjacentTextNodes(true)
                        .withUseTrimmingForNotesAndExpressions(true)
                        .withKeepNullableLoopValues(true)
                        .withHandleBackslashInQuotesOnly(true)
                        .build())
                .withElResolver(resolver)
                .withInterperterFactory(new PythonInterpreterFactory())
                .withMaxOutputSize(64L << 20)
                .build();
        jinjava = new Jinjava(config);
        baseContext = new SharedBaseContext();
        // Functions go to Jinjava's global context too: each interpreter's expression resolver maps them from there.
        for (ELFunctionDefinition function : List.of(
                new ELFunctionDefinition("", "raise_exception", HfJinjava.class, "raiseException", String.class),
                new ELFunctionDefinition("", "strftime_now", HfJinjava.class, "strftimeNow", String.class))) {
            jinjava.registerFunction(function);
            baseContext.registerFunction(function);
        }
        baseContext.registerFilter(new HfToJsonFilter());
        baseContext.registerFilter(new PythonStringFilter());
        baseContext.registerTag(new GenerationTag());
        baseContext.registerTag(new FilteredForTag()); // replaces Jinjava's "for"
    }

    /**
     * A fresh interpreter over {@code bindings}. Jinjava's own render path copies every tag, filter and function
     * into a new root context per call (~100+ us); a child of one shared base context costs almost nothing.
     */
    JinjavaInterpreter newInterpreter(Map<String, ?> bindings) {
        Context context = new Context(baseContext, bindings, config.getDisabled());
        return config.getInterpreterFactory().newInstance(jinjava, context, config);
    }

    /**
     * The shared root context. Jinjava propagates its bookkeeping (resolved names, dependencies) from child contexts
     * up to the root; dropping it here keeps the shared root unchanged by renders, so concurrent renders are safe
     * and nothing accumulates.
     */
    private static final class SharedBaseContext extends Context {
        SharedBaseContext() {
            super(null, null, null);
        }

        @Override
        public void addResolvedExpression(String expression) {}

        @Override
        public void addResolvedValue(String value) {}

        @Override
        public void addResolvedFunction(String function) {}

        @Override
        public void addDependency(String type, String identification) {}

        @Override
        public void addDependencies(SetMultimap<String, String> dependencies) {}
    }

    /** Thrown by the template's {@code raise_exception(msg)}; ChatTemplate turns it into ChatTemplateException. */
    static final class RaisedException extends RuntimeException {
        RaisedException(String message) {
            super(message, null, false, false);
        }
    }

    public static Object raiseException(String message) {
        throw new RaisedException(message);
    }

    /** Python's strftime for the directives chat templates use (%d %b %Y %m %H %M %S %B %A %a %y). */
    public static String strftimeNow(String format) {
        ZonedDateTime now = ZonedDateTime.now();
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) {
                out.append(c);
                continue;
            }
            char d = format.charAt(++i);
            String pattern = switch (d) {
                case 'd' -> "dd";
                case 'b' -> "MMM";
                case 'B' -> "MMMM";
                case 'Y' -> "yyyy";
                case 'y' -> "yy";
                case 'm' -> "MM";
                case 'H' -> "HH";
                case 'M' -> "mm";
                case 'S' -> "ss";
                case 'A' -> "EEEE";
                case 'a' -> "EEE";
                default -> null;
            };
            if (pattern == null) {
                out.append(d == '%' ? "%" : "%" + d);
            } else {
                out.append(now.format(DateTimeFormatter.ofPattern(pattern, Locale.ENGLISH)));
            }
        }
        return out.toString();
    }

    /** An interpreter that prints booleans as Python does ({@code True}/{@code False}). */
    static final class PythonInterpreter extends JinjavaInterpreter {
        PythonInterpreter(Jinjava application, Context context, JinjavaConfig config) {
            super(application, context, config);
        }

        PythonInterpreter(JinjavaInterpreter orig) {
            super(orig);
        }

        @Override
        public String getAsString(Object object) {
            if (object instanceof Boolean b) {
                return b ? "True" : "False";
            }
            return super.getAsString(object);
        }
    }

    private static final class PythonInterpreterFactory implements InterpreterFactory {
        @Override
        public JinjavaInterpreter newInstance(JinjavaInterpreter orig) {
            return new PythonInterpreter(orig);
        }

        @Override
        public JinjavaInterpreter newInstance(Jinjava application, Context context, JinjavaConfig renderConfig) {
            return new PythonInterpreter(application, context, renderConfig);
        }
    }
}

package dev.retina.templates;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.tree.Node;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * A Hugging Face chat template, parsed once and rendered with transformers' jinja2 semantics
 * ({@code apply_chat_template(..., tokenize=False)}). Immutable; {@link #render} may be called from any thread.
 */
public final class ChatTemplate {
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Loops or filters over a message's content, or indexing into it: the template expects OpenAI's list of parts.
     * vLLM walks the jinja2 AST for the same question; a regex over the source finds the forms in use.
     */
    private static final Pattern OPENAI_CONTENT = Pattern.compile(
            "\\bfor\\s+\\w+(?:\\s*,\\s*\\w+)*\\s+in\\s+\\w+(?:\\[\\s*['\"]content['\"]\\s*\\]|\\.content)(?!\\w)"
                    + "|(?:\\[\\s*['\"]content['\"]\\s*\\]|\\.content)\\s*\\|\\s*(?:selectattr|rejectattr|map|first|last)\\b"
                    + "|(?:\\[\\s*['\"]content['\"]\\s*\\]|\\.content)\\s*\\[\\s*-?\\d+\\s*\\]");

    private final String source;
    private final Node root;
    private final ContentFormat contentFormat;

    private ChatTemplate(String source) {
        this.source = source;
        // jinja2 (keep_trailing_newline=False) drops a single trailing newline of the source.
        String body = source.endsWith("\n") ? source.substring(0, source.length() - 1) : source;
        HfJinjava env = HfJinjava.INSTANCE;
        JinjavaInterpreter parser = env.newInterpreter(Map.of());
        JinjavaInterpreter.pushCurrent(parser);
        try {
            this.root = parser.parse(body);
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        throwOnFatal(parser.getErrorsCopy(), "chat template does not parse");
        this.contentFormat = OPENAI_CONTENT.matcher(source).find() ? ContentFormat.OPENAI : ContentFormat.STRING;
    }

    /** Parses a template; throws ChatTemplateException on a syntax error. */
    public static ChatTemplate fromString(String source) {
        return new ChatTemplate(source);
    }

    public static ChatTemplate fromFile(Path file) {
        try {
            return fromString(Files.readString(file, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The checkpoint's own template, looked up as transformers 5 does: {@code chat_template.jinja}, then
     * {@code chat_template.json}, then {@code tokenizer_config.json}'s {@code chat_template} (a string, or a list of
     * named templates of which "default" is used).
     */
    public static Optional<ChatTemplate> fromCheckpoint(Path modelDir) {
        try {
            Path jinja = modelDir.resolve("chat_template.jinja");
            if (Files.isRegularFile(jinja)) {
                return Optional.of(fromFile(jinja));
            }
            Path json = modelDir.resolve("chat_template.json");
            if (Files.isRegularFile(json)) {
                Optional<String> s = templateField(JSON.readTree(json.toFile()).get("chat_template"));
                if (s.isPresent()) {
                    return s.map(ChatTemplate::fromString);
                }
            }
            Path config = modelDir.resolve("tokenizer_config.json");
            if (Files.isRegularFile(config)) {
                return templateField(JSON.readTree(config.toFile()).get("chat_template")).map(ChatTemplate::fromString);
            }
            return Optional.empty();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Optional<String> templateField(JsonNode node) {
        if (node == null || node.isNull()) {
            return Optional.empty();
        }
        if (node.isTextual()) {
            return Optional.of(node.asText());
        }
        if (node.isArray()) {
            for (JsonNode named : node) {
                if ("default".equals(named.path("name").asText())) {
                    return Optional.of(named.path("template").asText());
                }
            }
        }
        return Optional.empty();
    }

    /** A template shipped with Retina: {@code builtin("llava")} is {@code template_llava.jinja}. */
    public static ChatTemplate builtin(String name) {
        String resource = "template_" + name + ".jinja";
        try (InputStream in = ChatTemplate.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalArgumentException("no built-in chat template named '" + name + "'");
            }
            return fromString(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public String source() {
        return source;
    }

    public ContentFormat contentFormat() {
        return contentFormat;
    }

    /**
     * Renders the prompt text. {@code messages} are maps with "role" and "content" (a string or a list of part
     * maps, as {@link #contentFormat()} says); {@code extraContext} carries {@code bos_token}, {@code eos_token},
     * {@code tools} and anything else the template reads. Throws ChatTemplateException when the template raises
     * or fails.
     */
    public String render(List<Map<String, Object>> messages, boolean addGenerationPrompt,
                         Map<String, Object> extraContext) {
        Map<String, Object> bindings = new HashMap<>(extraContext);
        bindings.put("messages", messages);
        bindings.put("add_generation_prompt", addGenerationPrompt);
        JinjavaInterpreter interpreter = HfJinjava.INSTANCE.newInterpreter(bindings);
        String output;
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            output = interpreter.render(root, false);
        } catch (HfJinjava.RaisedException e) {
            throw new ChatTemplateException(e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new ChatTemplateException("chat template failed: " + e.getMessage(), e);
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        throwOnFatal(interpreter.getErrorsCopy(), "chat template failed");
        return output;
    }

    /** Jinjava records errors and carries on; the first fatal one (a raise_exception first of all) is the answer. */
    private static void throwOnFatal(List<TemplateError> errors, String what) {
        TemplateError firstFatal = null;
        for (TemplateError error : errors) {
            for (Throwable t = error.getException(); t != null; t = t.getCause()) {
                if (t instanceof HfJinjava.RaisedException raised) {
                    throw new ChatTemplateException(raised.getMessage(), raised);
                }
            }
            if (firstFatal == null && error.getSeverity() == TemplateError.ErrorType.FATAL) {
                firstFatal = error;
            }
        }
        if (firstFatal != null) {
            throw new ChatTemplateException(what + " (line " + firstFatal.getLineno() + "): "
                    + firstFatal.getMessage(), firstFatal.getException());
        }
    }
}

package dev.retina.templates;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case of template_goldens.json (rendered by Python jinja2 set up as transformers does, see
 * src/test/python/make_template_goldens.py) must render byte for byte the same here, or fail with the same message.
 */
class ChatTemplateGoldenTest {
    record Case(String name, String template, List<Map<String, Object>> messages, boolean addGenerationPrompt,
                Map<String, Object> context, String expected, String error) {}

    @SuppressWarnings("unchecked")
    @TestFactory
    Stream<DynamicTest> rendersLikeJinja2() throws IOException {
        Map<String, Object> goldens;
        try (InputStream in = ChatTemplateGoldenTest.class.getResourceAsStream("/template_goldens.json")) {
            goldens = new ObjectMapper().readValue(in, new TypeReference<>() {});
        }
        Map<String, String> special = (Map<String, String>) goldens.get("special");
        Map<String, Object> sources = (Map<String, Object>) goldens.get("templates");
        Map<String, ChatTemplate> templates = new HashMap<>();
        sources.forEach((name, source) -> templates.put(name,
                source == null ? ChatTemplate.builtin(name) : ChatTemplate.fromString((String) source)));
        List<Map<String, Object>> cases = (List<Map<String, Object>>) goldens.get("cases");
        return cases.stream().map(c -> DynamicTest.dynamicTest((String) c.get("name"), () -> {
            ChatTemplate template = templates.get((String) c.get("template"));
            Map<String, Object> context = new HashMap<>(special);
            context.putAll((Map<String, Object>) c.get("context"));
            List<Map<String, Object>> messages = (List<Map<String, Object>>) c.get("messages");
            boolean addGenerationPrompt = (Boolean) c.get("add_generation_prompt");
            if (c.containsKey("error")) {
                ChatTemplateException e = assertThrows(ChatTemplateException.class,
                        () -> template.render(messages, addGenerationPrompt, context));
                assertEquals(c.get("error"), e.getMessage());
            } else {
                assertEquals(c.get("expected"), template.render(messages, addGenerationPrompt, context));
            }
        }));
    }
}

package dev.retina.server.input;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.server.protocol.MessageContent;
import dev.retina.templates.ChatTemplate;
import java.util.List;
import org.junit.jupiter.api.Test;

/** tools reach the chat template (HF's tools argument); auto tool choice needs a template that renders them. */
class ToolTemplateTest {
    static final ObjectMapper JSON = new ObjectMapper();
    final InputProcessorTest fixtures = new InputProcessorTest();

    static ChatCompletionRequest withTools(String toolChoice) throws Exception {
        ChatCompletionRequest base = ChatCompletionRequest.of("m",
                List.of(new ChatMessage("user", new MessageContent.Text("weather?"), null)));
        JsonNode tools = JSON.readTree("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                + "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]");
        return new ChatCompletionRequest(base.model(), base.messages(), null, null, null, null, null, null, null, null,
                null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, tools,
                toolChoice == null ? null : JSON.getNodeFactory().textNode(toolChoice));
    }

    InputProcessor processor(ChatTemplate template) {
        return new InputProcessor(template, fixtures.tokenizer, fixtures.images,
                new PromptLimits(InputProcessorTest.IMAGE_ID, InputProcessorTest.NUM_IMAGE_TOKENS, 1, 4096),
                Runnable::run);
    }

    @Test
    void autoToolChoiceWithATemplateWithoutToolsIs400NamingToolChoice() throws Exception {
        InputProcessor llava = processor(ChatTemplate.builtin("llava"));
        for (String choice : new String[] {null, "auto"}) {
            var e = assertThrows(ApiException.class, () -> llava.prepare(withTools(choice), "r"));
            assertEquals(400, e.status());
            assertEquals("tool_choice", e.toBody().error().param());
            assertTrue(e.getMessage().contains("--chat-template"), e.getMessage());
        }
        llava.prepare(withTools("required"), "r"); // constrained decoding needs no template support
        llava.prepare(withTools("none"), "r");
    }

    @Test
    void toolsAwareTemplateRendersTheToolSignatures() throws Exception {
        processor(ChatTemplate.builtin("llava_tools")).prepare(withTools("auto"), "r");
        String rendered = fixtures.tokenizer.rendered.getLast();
        assertTrue(rendered.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""),
                rendered);
        assertTrue(rendered.contains("<tool_call>") && rendered.endsWith("USER: weather?\nASSISTANT:"), rendered);
    }
}

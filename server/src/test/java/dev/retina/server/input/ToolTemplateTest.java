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

    static ChatCompletionRequest conversation() throws Exception {
        return dev.retina.server.protocol.Json.newMapper().readValue("""
                {"model": "m", "messages": [
                  {"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Weather in Paris and Rome?"},
                  {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\\"city\\":\\"Paris\\"}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}}]},
                  {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "21 C"},
                  {"role": "tool", "tool_call_id": "call_2", "content": "25 C"}],
                 "tools": [{"type": "function", "function": {"name": "get_weather"}}]}""",
                ChatCompletionRequest.class);
    }

    @Test
    void toolCallsAndResultsReachTheTemplateAsHfShapesThem() throws Exception {
        InputProcessor p = processor(ChatTemplate.builtin("llava_tools"));
        var messages = p.toTemplateMessages(conversation().messages(), dev.retina.templates.ContentFormat.STRING);
        // HF: the call's arguments are a mapping, not the JSON text; tool results carry their call id and name.
        assertEquals(java.util.Map.of("id", "call_1", "type", "function", "function",
                java.util.Map.of("name", "get_weather", "arguments", java.util.Map.of("city", "Paris"))),
                ((List<?>) messages.get(2).get("tool_calls")).getFirst());
        assertEquals(java.util.Map.of("role", "tool", "content", "21 C", "name", "get_weather", "tool_call_id", "call_1"),
                messages.get(3));
        assertEquals(java.util.Map.of("role", "tool", "content", "25 C", "tool_call_id", "call_2"), messages.get(4));
    }

    @Test
    void toolsTemplateRendersEarlierCallsAndTheirResultsHermesStyle() throws Exception {
        processor(ChatTemplate.builtin("llava_tools")).prepare(conversation(), "r");
        String rendered = fixtures.tokenizer.rendered.getLast();
        String turns = rendered.substring(rendered.indexOf("USER: Weather"));
        assertEquals("""
                USER: Weather in Paris and Rome?
                ASSISTANT: <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>
                <tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call></s>
                USER:
                <tool_response>
                21 C
                </tool_response>
                <tool_response>
                25 C
                </tool_response>
                ASSISTANT:""", turns);
        assertTrue(rendered.startsWith("<s>Be brief.\nYou may call one or more functions."), rendered);
    }

    @Test
    void toolsTemplateRefusesAToolResultWithoutACall() throws Exception {
        ChatCompletionRequest req = dev.retina.server.protocol.Json.newMapper().readValue("""
                {"model": "m", "messages": [{"role": "user", "content": "hi"},
                  {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}]}""", ChatCompletionRequest.class);
        var e = assertThrows(ApiException.class,
                () -> processor(ChatTemplate.builtin("llava_tools")).prepare(req, "r"));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().contains("Tool messages must follow"), e.getMessage());
    }
}

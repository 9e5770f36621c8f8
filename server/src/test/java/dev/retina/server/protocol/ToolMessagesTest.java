package dev.retina.server.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** Multi-turn tool conversations on the wire: assistant tool_calls and tool results bind, malformed ones are 400s. */
class ToolMessagesTest {
    final ObjectMapper mapper = Json.newMapper();

    static final String USER = "{\"role\":\"user\",\"content\":\"weather in Paris?\"}";
    static final String CALL = "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
            + "\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}";
    static final String ASSISTANT = "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[" + CALL + "]}";
    static final String TOOL = "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"21 C\"}";

    ChatCompletionRequest bind(String... messages) throws Exception {
        return mapper.readValue("{\"model\":\"m\",\"messages\":[" + String.join(",", messages) + "]}",
                ChatCompletionRequest.class);
    }

    String param(String... messages) throws Exception {
        ChatCompletionRequest req = bind(messages);
        ApiException e = assertThrows(ApiException.class, () -> ChatRequestValidator.validate(req, "m"));
        assertEquals(400, e.status());
        return e.toBody().error().param();
    }

    @Test
    void assistantToolCallsAndToolResultsBindAndValidate() throws Exception {
        ChatCompletionRequest req = bind(USER, ASSISTANT, TOOL);
        ChatRequestValidator.validate(req, "m");
        ChatMessage assistant = req.messages().get(1);
        assertNull(assistant.content());
        assertEquals("get_weather", assistant.toolCalls().getFirst().function().name());
        assertEquals("{\"city\": \"Paris\"}", assistant.toolCalls().getFirst().function().arguments());
        assertEquals("call_1", req.messages().get(2).toolCallId());
    }

    @Test
    void malformedToolMessagesNameTheParameter() throws Exception {
        assertEquals("messages[1].role", param(USER, "{\"role\":\"function\",\"content\":\"x\"}"));
        assertEquals("messages[2].tool_call_id", param(USER, ASSISTANT, "{\"role\":\"tool\",\"content\":\"21 C\"}"));
        assertEquals("messages[2].content", param(USER, ASSISTANT, "{\"role\":\"tool\",\"tool_call_id\":\"call_1\"}"));
        assertEquals("messages[1].tool_calls[0].function.name", param(USER,
                "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":"
                        + "{\"arguments\":\"{}\"}}]}"));
        assertEquals("messages[1].tool_calls[0].function.arguments", param(USER,
                "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":"
                        + "{\"name\":\"f\"}}]}"));
        assertEquals("messages[1].tool_calls[0].function.arguments", param(USER,
                "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":"
                        + "{\"name\":\"f\",\"arguments\":\"{not json\"}}]}"));
        assertEquals("messages[1].tool_calls[0].function", param(USER,
                "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\"}]}"));
        assertEquals("messages[1].tool_calls[0].type", param(USER,
                "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"code\",\"function\":"
                        + "{\"name\":\"f\",\"arguments\":\"{}\"}}]}"));
        assertEquals("messages[0].tool_calls", param("{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[" + CALL + "]}"));
        assertEquals("messages[0].tool_call_id", param("{\"role\":\"user\",\"content\":\"x\",\"tool_call_id\":\"c\"}"));
    }
}

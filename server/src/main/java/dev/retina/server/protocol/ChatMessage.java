package dev.retina.server.protocol;

import java.util.List;

/**
 * One entry of {@code messages}: a role ("system", "user", "assistant", "tool") and its content (null is allowed
 * on the wire for an assistant message that carries {@code tool_calls}). An assistant message may repeat the calls
 * it made ({@code tool_calls}, arguments as JSON text, as OpenAI returned them); a tool message answers one of them
 * ({@code tool_call_id}).
 */
public record ChatMessage(String role, MessageContent content, String name,
                          List<ChatCompletionResponse.ToolCall> toolCalls, String toolCallId) {

    /** A message without tool calls or a tool call id. */
    public ChatMessage(String role, MessageContent content, String name) {
        this(role, content, name, null, null);
    }
}

package dev.retina.server.protocol;

import com.fasterxml.jackson.annotation.JsonInclude;

import java.util.List;

/**
 * One SSE event of a streamed chat completion ({@code object} "chat.completion.chunk"): the first carries
 * {@code delta.role}, then content deltas, then one per choice with {@code finish_reason}; with
 * {@code stream_options.include_usage} every chunk has {@code usage: null} and a last one carries the usage with no
 * choices.
 */
public record ChatCompletionChunk(String id, String object, long created, String model, List<Choice> choices,
                                  ChatCompletionResponse.Usage usage,
                                  String systemFingerprint) {

    public record Choice(int index, Delta delta, ChatCompletionResponse.ChatLogprobs logprobs, String finishReason) {
    }

    /** Absent fields are left out, as OpenAI does ({@code {"content": "x"}}, {@code {}} at the end). */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Delta(String role, String content, List<ToolCallDelta> toolCalls) {
        public Delta(String role, String content) {
            this(role, content, null);
        }
    }

    /**
     * A streamed tool call: the first delta of call {@code index} carries id, type and the function's name (arguments
     * ""), later ones only argument fragments, as OpenAI streams them.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record ToolCallDelta(int index, String id, String type, FunctionDelta function) {
    }

    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record FunctionDelta(String name, String arguments) {
    }
}

package dev.retina.server.protocol;

import java.util.List;

/**
 * The body of a non-streaming chat completion, as OpenAI writes it: {@code id} "chatcmpl-…", {@code object}
 * "chat.completion", choices with {@code finish_reason} and {@code logprobs} (null unless asked), usage, and a null
 * {@code system_fingerprint}.
 */
public record ChatCompletionResponse(String id, String object, long created, String model, List<Choice> choices,
                                     Usage usage, String systemFingerprint) {

    public static ChatCompletionResponse of(String id, long created, String model, String text, String finishReason,
                                            Usage usage) {
        return of(id, created, model, List.of(new Choice(0, new ResponseMessage("assistant", text), finishReason, null)),
                usage);
    }

    public static ChatCompletionResponse of(String id, long created, String model, List<Choice> choices, Usage usage) {
        return new ChatCompletionResponse(id, "chat.completion", created, model, choices, usage, null);
    }

    public record Choice(int index, ResponseMessage message, String finishReason, ChatLogprobs logprobs) {
    }

    /** {@code content} is null (written as null) when the answer is tool calls; {@code tool_calls} is left out when none. */
    public record ResponseMessage(String role, String content,
                                  @com.fasterxml.jackson.annotation.JsonInclude(
                                          com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                                  List<ToolCall> toolCalls) {
        public ResponseMessage(String role, String content) {
            this(role, content, null);
        }
    }

    /** One call of a function tool; {@code arguments} is a JSON text, as OpenAI sends it. */
    public record ToolCall(String id, String type, FunctionCall function) {
        public static ToolCall function(String id, String name, String arguments) {
            return new ToolCall(id, "function", new FunctionCall(name, arguments));
        }
    }

    public record FunctionCall(String name, String arguments) {
    }

    /** OpenAI's chat logprobs: one entry per generated token. */
    public record ChatLogprobs(List<TokenLogprob> content) {
    }

    /** {@code bytes} are the token's UTF-8 bytes as unsigned integers. */
    public record TokenLogprob(String token, float logprob, List<Integer> bytes, List<TopLogprob> topLogprobs) {
    }

    public record TopLogprob(String token, float logprob, List<Integer> bytes) {
    }

    /** Token counts; {@code promptTokens} includes the image tokens. */
    public record Usage(int promptTokens, int completionTokens, int totalTokens) {
        public static Usage of(int promptTokens, int completionTokens) {
            return new Usage(promptTokens, completionTokens, promptTokens + completionTokens);
        }
    }
}

package dev.retina.server.protocol;

import com.fasterxml.jackson.annotation.JsonFormat;
import com.fasterxml.jackson.databind.JsonNode;

import java.util.List;
import java.util.Map;

/**
 * The body of {@code POST /v1/chat/completions}, OpenAI's fields plus vLLM's sampling extras. Every field is
 * nullable (absent); {@link ChatRequestValidator} checks values and names the offending parameter. Unknown fields are
 * ignored by the mapper.
 */
public record ChatCompletionRequest(
        String model,
        List<ChatMessage> messages,
        Double temperature,
        Double topP,
        Integer maxTokens,
        Integer maxCompletionTokens,
        @JsonFormat(with = JsonFormat.Feature.ACCEPT_SINGLE_VALUE_AS_ARRAY) List<String> stop,
        Boolean stream,
        Integer n,
        Long seed,
        Double presencePenalty,
        Double frequencyPenalty,
        Boolean logprobs,
        Integer topLogprobs,
        String user,
        // vLLM extras
        Integer topK,
        Double minP,
        Double repetitionPenalty,
        Integer minTokens,
        Boolean ignoreEos,
        List<Integer> stopTokenIds,
        Boolean skipSpecialTokens,
        StreamOptions streamOptions,
        // structured output and tools: checked by ChatRequestValidator, kept as JSON so errors name the field
        Map<String, Double> logitBias,
        JsonNode responseFormat,
        JsonNode tools,
        JsonNode toolChoice) implements SamplingFields {

    /** Without logit_bias, response_format, tools and tool_choice. */
    public ChatCompletionRequest(String model, List<ChatMessage> messages, Double temperature, Double topP,
                                 Integer maxTokens, Integer maxCompletionTokens, List<String> stop, Boolean stream,
                                 Integer n, Long seed, Double presencePenalty, Double frequencyPenalty,
                                 Boolean logprobs, Integer topLogprobs, String user, Integer topK, Double minP,
                                 Double repetitionPenalty, Integer minTokens, Boolean ignoreEos,
                                 List<Integer> stopTokenIds, Boolean skipSpecialTokens, StreamOptions streamOptions) {
        this(model, messages, temperature, topP, maxTokens, maxCompletionTokens, stop, stream, n, seed,
                presencePenalty, frequencyPenalty, logprobs, topLogprobs, user, topK, minP, repetitionPenalty,
                minTokens, ignoreEos, stopTokenIds, skipSpecialTokens, streamOptions, null, null, null, null);
    }

    /** Without {@code stream_options}. */
    public ChatCompletionRequest(String model, List<ChatMessage> messages, Double temperature, Double topP,
                                 Integer maxTokens, Integer maxCompletionTokens, List<String> stop, Boolean stream,
                                 Integer n, Long seed, Double presencePenalty, Double frequencyPenalty,
                                 Boolean logprobs, Integer topLogprobs, String user, Integer topK, Double minP,
                                 Double repetitionPenalty, Integer minTokens, Boolean ignoreEos,
                                 List<Integer> stopTokenIds, Boolean skipSpecialTokens) {
        this(model, messages, temperature, topP, maxTokens, maxCompletionTokens, stop, stream, n, seed,
                presencePenalty, frequencyPenalty, logprobs, topLogprobs, user, topK, minP, repetitionPenalty,
                minTokens, ignoreEos, stopTokenIds, skipSpecialTokens, null, null, null, null, null);
    }

    public int numChoices() {
        return n == null ? 1 : n;
    }

    /** The {@code top_logprobs} the engine must report: null without {@code logprobs: true}. */
    public Integer engineLogprobs() {
        return Boolean.TRUE.equals(logprobs) ? (topLogprobs == null ? 0 : topLogprobs) : null;
    }

    /** The completion budget the client asked for: {@code max_completion_tokens}, else {@code max_tokens}, else null. */
    public Integer requestedMaxTokens() {
        return maxCompletionTokens != null ? maxCompletionTokens : maxTokens;
    }

    public boolean isStream() {
        return Boolean.TRUE.equals(stream);
    }

    /** A request with just a model and messages (tests, examples). */
    public static ChatCompletionRequest of(String model, List<ChatMessage> messages) {
        return new ChatCompletionRequest(model, messages, null, null, null, null, null, null, null, null, null, null,
                null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);
    }
}

package dev.retina.server.protocol;

import com.fasterxml.jackson.annotation.JsonInclude;

import java.util.List;
import java.util.Map;

/**
 * OpenAI's legacy {@code text_completion} object, the body of a non-streamed {@code /v1/completions} answer and of
 * each of its stream events (streamed events carry text deltas; with {@code include_usage} a last event carries the
 * usage and no choices). Choice {@code index} is {@code prompt * n + choice}.
 */
public record CompletionResponse(String id, String object, long created, String model, List<Choice> choices,
                                 ChatCompletionResponse.Usage usage,
                                 String systemFingerprint) {

    public static CompletionResponse of(String id, long created, String model, List<Choice> choices,
                                        ChatCompletionResponse.Usage usage) {
        return new CompletionResponse(id, "text_completion", created, model, choices, usage, null);
    }

    public record Choice(String text, int index, LegacyLogprobs logprobs, String finishReason) {
    }

    /**
     * The legacy logprobs shape: parallel lists over generated tokens; {@code top_logprobs} maps token text to its
     * log-probability; {@code text_offset} is where each token's text starts in the choice's text.
     */
    public record LegacyLogprobs(List<String> tokens, List<Float> tokenLogprobs, List<Map<String, Float>> topLogprobs,
                                 List<Integer> textOffset) {
    }
}

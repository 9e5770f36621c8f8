package dev.retina.server.protocol;

import com.fasterxml.jackson.annotation.JsonFormat;
import com.fasterxml.jackson.databind.JsonNode;

import java.util.List;
import java.util.Map;

/**
 * The body of {@code POST /v1/completions} (OpenAI's legacy completions plus vLLM's sampling extras). {@code prompt}
 * is a string, a list of strings, a list of token ids, or a list of token-id lists; {@link CompletionRequestValidator}
 * turns it into {@link #prompts()}. Text only: images have no place here.
 */
public record CompletionRequest(
        String model,
        JsonNode prompt,
        Integer maxTokens,
        Double temperature,
        Double topP,
        Integer n,
        Boolean stream,
        StreamOptions streamOptions,
        Integer logprobs,
        Boolean echo,
        @JsonFormat(with = JsonFormat.Feature.ACCEPT_SINGLE_VALUE_AS_ARRAY) List<String> stop,
        Long seed,
        Double presencePenalty,
        Double frequencyPenalty,
        Integer bestOf,
        String suffix,
        String user,
        Integer topK,
        Double minP,
        Double repetitionPenalty,
        Integer minTokens,
        Boolean ignoreEos,
        List<Integer> stopTokenIds,
        Boolean skipSpecialTokens,
        Map<String, Double> logitBias) implements SamplingFields {

    /** OpenAI's default {@code max_tokens} for completions. */
    public static final int DEFAULT_MAX_TOKENS = 16;

    /** One prompt: text to tokenize, or token ids as given. */
    public sealed interface Prompt permits TextPrompt, TokenPrompt {
    }

    public record TextPrompt(String text) implements Prompt {
    }

    public record TokenPrompt(int[] tokenIds) implements Prompt {
    }

    public boolean isStream() {
        return Boolean.TRUE.equals(stream);
    }

    public int numChoices() {
        return n == null ? 1 : n;
    }

    /** The prompts in order; call after validation. */
    public List<Prompt> prompts() {
        return CompletionRequestValidator.prompts(prompt);
    }
}

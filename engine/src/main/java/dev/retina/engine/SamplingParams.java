package dev.retina.engine;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Per-request sampling settings, validated on construction. Immutable; safe to share across threads.
 *
 * <p>{@code temperature == 0} means greedy. {@code seed == null} means unseeded (the engine draws one).
 * Stop strings are matched by the detokenizing side (outside the engine thread); the engine sees only token ids.
 *
 * <p>{@code logitBias} (token id to a bias in [-100, 100], OpenAI's {@code logit_bias}) is added to the logits after
 * penalties, before temperature and filtering; logprobs still report the unbiased distribution (as vLLM does for
 * its logits processors, which run after the logprobs are taken). {@code constraint} (null: none) creates each
 * sequence's {@link TokenConstraint}; constrained rows may sample only what it allows.
 */
public record SamplingParams(
        int n,
        float temperature,
        float topP,
        int topK,
        float minP,
        Long seed,
        float presencePenalty,
        float frequencyPenalty,
        float repetitionPenalty,
        int maxTokens,
        int minTokens,
        List<Integer> stopTokenIds,
        boolean ignoreEos,
        Integer logprobs,
        Map<Integer, Float> logitBias,
        ConstraintFactory constraint) {

    /** Without logit bias and constraint (the original fourteen components). */
    public SamplingParams(int n, float temperature, float topP, int topK, float minP, Long seed,
                          float presencePenalty, float frequencyPenalty, float repetitionPenalty, int maxTokens,
                          int minTokens, List<Integer> stopTokenIds, boolean ignoreEos, Integer logprobs) {
        this(n, temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty, repetitionPenalty, maxTokens,
                minTokens, stopTokenIds, ignoreEos, logprobs, Map.of(), null);
    }

    public SamplingParams {
        if (n < 1) throw new IllegalArgumentException("n must be >= 1, got " + n);
        if (!(temperature >= 0f)) throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        if (!(topP > 0f && topP <= 1f)) throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        if (topK < -1 || topK == 0) throw new IllegalArgumentException("top_k must be -1 (off) or >= 1, got " + topK);
        if (!(minP >= 0f && minP <= 1f)) throw new IllegalArgumentException("min_p must be in [0, 1], got " + minP);
        if (!(presencePenalty >= -2f && presencePenalty <= 2f))
            throw new IllegalArgumentException("presence_penalty must be in [-2, 2], got " + presencePenalty);
        if (!(frequencyPenalty >= -2f && frequencyPenalty <= 2f))
            throw new IllegalArgumentException("frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
        if (!(repetitionPenalty > 0f)) throw new IllegalArgumentException("repetition_penalty must be > 0, got " + repetitionPenalty);
        if (maxTokens < 1) throw new IllegalArgumentException("max_tokens must be >= 1, got " + maxTokens);
        if (minTokens < 0 || minTokens > maxTokens)
            throw new IllegalArgumentException("min_tokens must be in [0, max_tokens], got " + minTokens);
        stopTokenIds = List.copyOf(Objects.requireNonNullElse(stopTokenIds, List.of()));
        if (logprobs != null && (logprobs < 0 || logprobs > 20))
            throw new IllegalArgumentException("top_logprobs must be in [0, 20], got " + logprobs);
        logitBias = Map.copyOf(Objects.requireNonNullElse(logitBias, Map.of()));
        for (Map.Entry<Integer, Float> e : logitBias.entrySet()) {
            if (e.getKey() < 0) throw new IllegalArgumentException("logit_bias token ids must be >= 0, got " + e.getKey());
            if (!(e.getValue() >= -100f && e.getValue() <= 100f))
                throw new IllegalArgumentException("logit_bias values must be in [-100, 100], got " + e.getValue());
        }
    }

    /** These params with another {@code n} and {@code logprobs} (everything else kept). */
    public SamplingParams withChoices(int n, Integer logprobs) {
        return new SamplingParams(n, temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty,
                repetitionPenalty, maxTokens, minTokens, stopTokenIds, ignoreEos, logprobs, logitBias, constraint);
    }

    /** These params with a logit bias and a constraint (everything else kept). */
    public SamplingParams withLogitBiasAndConstraint(Map<Integer, Float> logitBias, ConstraintFactory constraint) {
        return new SamplingParams(n, temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty,
                repetitionPenalty, maxTokens, minTokens, stopTokenIds, ignoreEos, logprobs, logitBias, constraint);
    }

    /** Greedy decoding of up to {@code maxTokens} tokens, stopping at EOS. */
    public static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, maxTokens, 0, List.of(), false, null);
    }

    public boolean isGreedy() {
        return temperature == 0f;
    }
}

package dev.retina.server.protocol;

import dev.retina.engine.SamplingParams;
import java.util.List;
import java.util.Map;

/**
 * The sampling fields that chat and legacy completion requests share (OpenAI's, plus vLLM's extras), and the one
 * mapping from them to the engine's {@link SamplingParams}: absent fields take OpenAI's defaults (temperature 1,
 * top_p 1), vLLM's extras are off when absent.
 */
public interface SamplingFields {
    Double temperature();

    Double topP();

    Integer topK();

    Double minP();

    Long seed();

    Double presencePenalty();

    Double frequencyPenalty();

    Double repetitionPenalty();

    Integer minTokens();

    List<Integer> stopTokenIds();

    Boolean ignoreEos();

    /** OpenAI's default temperature when a request leaves it out. */
    float DEFAULT_TEMPERATURE = 1.0f;

    /**
     * @param n         choices per prompt
     * @param maxTokens completion budget already resolved against the context length
     * @param logprobs  top logprobs per token, or null for none
     * @param logitBias token id → bias, or null
     * @throws ApiException 400 when the combination is invalid (each field was validated on its own before)
     */
    default SamplingParams toSamplingParams(int n, int maxTokens, Integer logprobs, Map<Integer, Float> logitBias) {
        try {
            return new SamplingParams(n,
                    temperature() == null ? DEFAULT_TEMPERATURE : temperature().floatValue(),
                    topP() == null ? 1f : topP().floatValue(),
                    topK() == null ? -1 : topK(),
                    minP() == null ? 0f : minP().floatValue(),
                    seed(),
                    presencePenalty() == null ? 0f : presencePenalty().floatValue(),
                    frequencyPenalty() == null ? 0f : frequencyPenalty().floatValue(),
                    repetitionPenalty() == null ? 1f : repetitionPenalty().floatValue(),
                    maxTokens,
                    minTokens() == null ? 0 : minTokens(),
                    stopTokenIds(),
                    Boolean.TRUE.equals(ignoreEos()),
                    logprobs,
                    logitBias,
                    null);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("Invalid sampling parameters: " + e.getMessage(), null);
        }
    }
}

package dev.retina.engine;

/**
 * Log-probabilities for one sampled position, of the model's raw distribution (log_softmax of the unprocessed
 * logits, as vLLM reports by default).
 *
 * @param tokenId      the sampled id
 * @param logprob      its log-probability
 * @param topTokenIds  the {@code top_logprobs} most likely ids, most likely first (may be empty)
 * @param topLogprobs  their log-probabilities
 */
public record TokenLogprobs(int tokenId, float logprob, int[] topTokenIds, float[] topLogprobs) {
}

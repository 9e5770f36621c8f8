package dev.retina.engine;

/**
 * The scheduler's budgets, validated on construction. Chunked prefill is always on.
 *
 * @param maxNumSeqs          most sequences running at once
 * @param maxNumBatchedTokens most tokens (prefill chunks plus decodes) in one step
 * @param maxModelLen         most tokens (prompt plus output) in one sequence
 */
public record SchedulerConfig(int maxNumSeqs, int maxNumBatchedTokens, int maxModelLen) {
    public SchedulerConfig {
        if (maxNumSeqs < 1) throw new IllegalArgumentException("maxNumSeqs must be >= 1, got " + maxNumSeqs);
        if (maxNumBatchedTokens < maxNumSeqs)
            throw new IllegalArgumentException("maxNumBatchedTokens (" + maxNumBatchedTokens
                    + ") must be >= maxNumSeqs (" + maxNumSeqs + ") so every running sequence can decode");
        if (maxModelLen < 2) throw new IllegalArgumentException("maxModelLen must be >= 2, got " + maxModelLen);
    }
}

package dev.retina.engine;

import java.util.List;

/**
 * One sequence's share of a step, as the scheduler hands it to the {@link ModelRunner}. Arrays are owned by the
 * record (copies), except {@code promptTokenIds}, which is the request's immutable prompt.
 *
 * @param tokenIds        ids to feed this step: {@code numNewTokens} tokens starting at position {@code startPosition}
 *                        of prompt-then-output (a prefill chunk, a recompute chunk, or one decode token)
 * @param startPosition   tokens of this sequence already in the KV cache before this step
 * @param blockTable      block ids covering positions {@code [0, startPosition + numNewTokens)}
 * @param sample          whether this step reaches the sequence's end, so the runner must sample a token for it
 * @param outputTokenIds  generated ids so far (for penalties and min_tokens); empty unless {@code sample}
 * @param uniform         the sequence's uniform draw in [0, 1) for this step's sample; NaN unless {@code sample}
 * @param images          the request's images (the runner encodes them once per request and slices by position)
 * @param allowedTokenIds for a constrained sequence's sampling step, the ids it may sample (EOS included when the
 *                        constraint allows it); null when unconstrained (see {@link TokenConstraint})
 */
public record ScheduledSequence(long seqId, String requestId, int choiceIndex, int[] tokenIds, int startPosition,
                                int[] blockTable, boolean sample, int[] promptTokenIds, int[] outputTokenIds,
                                double uniform, SamplingParams params, List<Integer> eosTokenIds,
                                List<ImageInput> images, java.util.BitSet allowedTokenIds) {

    /** An unconstrained sequence's share. */
    public ScheduledSequence(long seqId, String requestId, int choiceIndex, int[] tokenIds, int startPosition,
                             int[] blockTable, boolean sample, int[] promptTokenIds, int[] outputTokenIds,
                             double uniform, SamplingParams params, List<Integer> eosTokenIds,
                             List<ImageInput> images) {
        this(seqId, requestId, choiceIndex, tokenIds, startPosition, blockTable, sample, promptTokenIds,
                outputTokenIds, uniform, params, eosTokenIds, images, null);
    }
    public int numNewTokens() { return tokenIds.length; }

    /** Context length after this step (what attention sees), {@code startPosition + numNewTokens}. */
    public int seqLen() { return startPosition + tokenIds.length; }

    /** Whether this step feeds any prompt tokens (a prefill or recompute chunk that may contain image tokens). */
    public boolean hasPromptTokens() { return startPosition < promptTokenIds.length; }
}

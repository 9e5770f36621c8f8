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
    /**
     * The token id of a run-ahead decode step ({@link Scheduler#scheduleAhead}) whose token the step before samples:
     * the runner takes it from that step, on the device where it can ({@link ModelRunner#submit}).
     */
    public static final int FROM_PREVIOUS_STEP = -1;

    public int numNewTokens() { return tokenIds.length; }

    /** Whether this share's token is the previous step's sample ({@link #FROM_PREVIOUS_STEP}). */
    public boolean fedFromPreviousStep() {
        return tokenIds.length == 1 && tokenIds[0] == FROM_PREVIOUS_STEP;
    }

    /** This share with its one token (and last output id) set to {@code tokenId}: a run-ahead token resolved. */
    ScheduledSequence withFedToken(int tokenId) {
        int[] outputs = outputTokenIds.clone();
        if (outputs.length > 0 && outputs[outputs.length - 1] == FROM_PREVIOUS_STEP) outputs[outputs.length - 1] = tokenId;
        return new ScheduledSequence(seqId, requestId, choiceIndex, new int[] {tokenId}, startPosition, blockTable,
                sample, promptTokenIds, outputs, uniform, params, eosTokenIds, images, allowedTokenIds);
    }

    /**
     * {@code step} with every {@link #FROM_PREVIOUS_STEP} token replaced by what {@code previous} sampled for the same
     * sequence ({@code previousOutput}, in previous's sampling order).
     *
     * @throws IllegalStateException where a fed sequence was not sampled by previous
     */
    static SchedulerOutput resolve(SchedulerOutput step, SchedulerOutput previous, RunnerOutput previousOutput) {
        java.util.Map<Long, Integer> sampled = new java.util.HashMap<>();
        int k = 0;
        for (ScheduledSequence s : previous.sequences()) if (s.sample()) sampled.put(s.seqId(), previousOutput.sampledTokenIds()[k++]);
        List<ScheduledSequence> out = new java.util.ArrayList<>(step.sequences().size());
        boolean any = false;
        for (ScheduledSequence s : step.sequences()) {
            if (!s.fedFromPreviousStep()) {
                out.add(s);
                continue;
            }
            Integer token = sampled.get(s.seqId());
            if (token == null)
                throw new IllegalStateException("sequence " + s.seqId() + " is fed from a step that did not sample it");
            out.add(s.withFedToken(token));
            any = true;
        }
        return any ? new SchedulerOutput(out, step.numBatchedTokens(), step.preemptedSeqIds(), step.finishedRequestIds(),
                step.ahead()) : step;
    }

    /** Context length after this step (what attention sees), {@code startPosition + numNewTokens}. */
    public int seqLen() { return startPosition + tokenIds.length; }

    /** Whether this step feeds any prompt tokens (a prefill or recompute chunk that may contain image tokens). */
    public boolean hasPromptTokens() { return startPosition < promptTokenIds.length; }
}

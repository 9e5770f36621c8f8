package dev.retina.engine;

import java.util.List;
import java.util.Set;

/**
 * What runs this step: decodes first, then prefill chunks, each with its token count and block table. No tensors.
 *
 * @param sequences          the scheduled sequences, in batch order
 * @param numBatchedTokens   sum of {@code numNewTokens} over {@code sequences}
 * @param preemptedSeqIds    sequences preempted (by recompute) while scheduling this step
 * @param finishedRequestIds requests that finished or were aborted since the previous step (the runner drops any
 *                           state it keeps for them, e.g. encoded image features)
 * @param ahead              a run-ahead decode step ({@link Scheduler#scheduleAhead}), planned before the step before it
 *                           was applied: a sequence that finished meanwhile has its sample dropped
 */
public record SchedulerOutput(List<ScheduledSequence> sequences, int numBatchedTokens, List<Long> preemptedSeqIds,
                              Set<String> finishedRequestIds, boolean ahead) {
    public SchedulerOutput {
        sequences = List.copyOf(sequences);
        preemptedSeqIds = List.copyOf(preemptedSeqIds);
        finishedRequestIds = Set.copyOf(finishedRequestIds);
    }

    /** A step planned on the applied state (not run-ahead). */
    public SchedulerOutput(List<ScheduledSequence> sequences, int numBatchedTokens, List<Long> preemptedSeqIds,
                           Set<String> finishedRequestIds) {
        this(sequences, numBatchedTokens, preemptedSeqIds, finishedRequestIds, false);
    }

    public boolean isEmpty() { return sequences.isEmpty(); }

    public int numSamplingSequences() {
        int n = 0;
        for (ScheduledSequence s : sequences) if (s.sample()) n++;
        return n;
    }
}

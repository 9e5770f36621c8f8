package dev.retina.engine;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One choice of one request as the engine tracks it: tokens, progress through the KV cache, block table, status.
 * Called only from the engine thread (no synchronisation on purpose).
 *
 * <p>Invariants (checked by {@link BlockManager#checkInvariants}): a WAITING or PREEMPTED sequence holds no blocks and
 * has {@code numComputedTokens == 0}; a RUNNING sequence's block table covers at least its computed tokens.
 */
public final class Sequence {
    public enum Status { WAITING, RUNNING, PREEMPTED, FINISHED }

    private final long seqId;
    private final String requestId;
    private final int choiceIndex;
    private final int[] promptTokenIds;
    private int[] outputTokenIds = new int[16];
    private int numOutputTokens;
    private int numComputedTokens;
    private int numCachedTokens;
    private final IntList blockTable = new IntList();
    private Status status = Status.WAITING;
    private FinishReason finishReason;
    private final List<ImageInput> images;
    private final SamplingParams params;
    private final List<Integer> eosTokenIds;
    /** Per-sequence generator: one uniform per sampling step, so a seed gives the same output in any batch. */
    private final SplittableRandom rng;
    private final long arrivalNanos;
    private int numPreemptions;
    /** Null unless the request has a constraint (structured output). */
    private final TokenConstraint constraint;

    public Sequence(long seqId, String requestId, int choiceIndex, int[] promptTokenIds, List<ImageInput> images,
                    SamplingParams params, List<Integer> eosTokenIds, long seed, long arrivalNanos) {
        this.seqId = seqId;
        this.requestId = requestId;
        this.choiceIndex = choiceIndex;
        this.promptTokenIds = promptTokenIds;
        this.images = List.copyOf(images);
        this.params = params;
        this.eosTokenIds = List.copyOf(eosTokenIds);
        this.rng = new SplittableRandom(seed);
        this.arrivalNanos = arrivalNanos;
        this.constraint = params.constraint() == null ? null : params.constraint().create();
    }

    public long seqId() { return seqId; }
    public String requestId() { return requestId; }
    public int choiceIndex() { return choiceIndex; }
    /** The prompt ids; shared, never modified. */
    public int[] promptTokenIds() { return promptTokenIds; }
    public int numPromptTokens() { return promptTokenIds.length; }
    public int numOutputTokens() { return numOutputTokens; }
    public int numTokens() { return promptTokenIds.length + numOutputTokens; }
    public int numComputedTokens() { return numComputedTokens; }
    public int numCachedTokens() { return numCachedTokens; }
    public Status status() { return status; }
    public FinishReason finishReason() { return finishReason; }
    public List<ImageInput> images() { return images; }
    public SamplingParams params() { return params; }
    public List<Integer> eosTokenIds() { return eosTokenIds; }
    public long arrivalNanos() { return arrivalNanos; }
    public int numPreemptions() { return numPreemptions; }
    public boolean isFinished() { return status == Status.FINISHED; }

    /** Token at position {@code i} of prompt followed by output. */
    public int tokenAt(int i) {
        return i < promptTokenIds.length ? promptTokenIds[i] : outputTokenIds[i - promptTokenIds.length];
    }

    /** Tokens {@code [from, to)} of prompt followed by output, as a fresh array. */
    public int[] tokenIds(int from, int to) {
        int[] out = new int[to - from];
        for (int i = from; i < to; i++) out[i - from] = tokenAt(i);
        return out;
    }

    public int[] outputTokenIds() { return Arrays.copyOf(outputTokenIds, numOutputTokens); }

    public int lastTokenId() { return tokenAt(numTokens() - 1); }

    /** The block table (live view; only the scheduler and block manager modify it). */
    IntList blockTable() { return blockTable; }

    public int[] blockTableCopy() { return blockTable.toArray(); }

    public int numBlocks() { return blockTable.size(); }

    /**
     * The uniform draw for this sequence's next sample. A draw stays pending until a token is appended, so a step
     * that failed and is run again (isolating a failing request) samples with the same draw: seeded outputs do not
     * depend on whether a step had to be repeated.
     */
    double nextUniform() {
        if (Double.isNaN(pendingUniform)) pendingUniform = rng.nextDouble();
        return pendingUniform;
    }

    private double pendingUniform = Double.NaN;
    /** The draw after the pending one, taken by a run-ahead step; it becomes pending when a token is appended. */
    private double aheadUniform = Double.NaN;

    /**
     * The uniform draw for the sample after the pending one (a run-ahead step, planned before the pending step's token
     * is appended): the same draw, in the same order, as that step would get planned afterwards.
     */
    double nextUniformAhead() {
        nextUniform();
        if (Double.isNaN(aheadUniform)) aheadUniform = rng.nextDouble();
        return aheadUniform;
    }

    public TokenConstraint constraint() { return constraint; }

    /**
     * What this sequence may sample next under its constraint: the constraint's tokens, plus the EOS ids while its
     * output is complete; EOS alone at a dead end. Null when unconstrained.
     */
    java.util.BitSet allowedTokenIds() {
        if (constraint == null) return null;
        java.util.BitSet allowed = (java.util.BitSet) constraint.allowedTokens().clone();
        if (constraint.isComplete() || allowed.isEmpty()) for (int id : eosTokenIds) allowed.set(id);
        return allowed;
    }

    void setStatus(Status status) { this.status = status; }

    void finish(FinishReason reason) {
        this.status = Status.FINISHED;
        this.finishReason = reason;
    }

    void advanceComputed(int numNewTokens) {
        if (numComputedTokens + numNewTokens > numTokens())
            throw new IllegalStateException("computed past the end of " + this);
        numComputedTokens += numNewTokens;
    }

    /** For a forked choice: the first {@code numTokens} prompt tokens are already in (shared) blocks. */
    void setCachedPrefix(int numTokens) {
        this.numComputedTokens = numTokens;
        this.numCachedTokens = numTokens;
    }

    /** Preemption by recompute: everything computed is dropped; outputs stay and will be recomputed as prompt. */
    void resetForRecompute() {
        numComputedTokens = 0;
        numPreemptions++;
    }

    void appendOutput(int tokenId) {
        pendingUniform = aheadUniform;
        aheadUniform = Double.NaN;
        if (numOutputTokens == outputTokenIds.length) outputTokenIds = Arrays.copyOf(outputTokenIds, numOutputTokens * 2);
        outputTokenIds[numOutputTokens++] = tokenId;
        if (constraint != null && !eosTokenIds.contains(tokenId)) constraint.advance(tokenId);
    }

    @Override
    public String toString() {
        return "Sequence[" + requestId + "#" + choiceIndex + " id=" + seqId + " " + status + " tokens=" + numTokens()
                + " computed=" + numComputedTokens + " blocks=" + blockTable.size() + "]";
    }
}

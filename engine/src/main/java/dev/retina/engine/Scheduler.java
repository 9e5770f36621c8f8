package dev.retina.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Decides what runs each step (continuous batching with chunked prefill over a paged KV cache) and applies each
 * step's sampled tokens. Called only from the engine thread.
 */
public final class Scheduler {
    /** What one step did to one sampling sequence. {@code finishReason} is null while it keeps running. */
    public record SequenceUpdate(Sequence sequence, int tokenId, TokenLogprobs logprobs, FinishReason finishReason) {
    }

    private final SchedulerConfig config;
    private final BlockManager blockManager;
    private final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    /** Admission order: the last element is the newest, the first to be preempted. */
    private final List<Sequence> running = new ArrayList<>();
    /** Choices 1..n-1 of a request, held back until choice 0 has computed the prompt they will share. */
    private final Map<String, List<Sequence>> pendingSiblings = new HashMap<>();
    /** All unfinished choices of each live request. */
    private final Map<String, List<Sequence>> requests = new LinkedHashMap<>();
    private final Map<Long, Sequence> liveById = new HashMap<>();
    private final Set<String> finishedRequestIds = new LinkedHashSet<>();
    private long numPreemptions;

    private final Set<String> suspects = new java.util.LinkedHashSet<>();

    public Scheduler(SchedulerConfig config, BlockManager blockManager) {
        this.config = config;
        this.blockManager = blockManager;
        long capacity = (long) blockManager.numBlocks() * blockManager.blockSize();
        if (capacity < config.maxModelLen())
            throw new IllegalArgumentException("KV cache holds " + capacity + " tokens, less than maxModelLen "
                    + config.maxModelLen() + ": one long sequence could never finish");
    }

    public SchedulerConfig config() { return config; }
    public BlockManager blockManager() { return blockManager; }
    public int numRunning() { return running.size(); }

    public int numWaiting() {
        int n = waiting.size();
        for (List<Sequence> l : pendingSiblings.values()) n += l.size();
        return n;
    }

    public long numPreemptions() { return numPreemptions; }
    public boolean hasWork() { return !waiting.isEmpty() || !running.isEmpty(); }
    public boolean hasRequest(String requestId) { return requests.containsKey(requestId); }

    /** Every unfinished sequence (running, waiting or pending), for invariant checks. */
    public List<Sequence> liveSequences() { return List.copyOf(liveById.values()); }

    /**
     * Adds the choices of one request (choice 0 first). The prompt must leave room for one generated token.
     */
    public void add(List<Sequence> choices) {
        Sequence first = choices.getFirst();
        if (first.numPromptTokens() >= config.maxModelLen())
            throw new IllegalArgumentException("prompt has " + first.numPromptTokens()
                    + " tokens; the model's context is " + config.maxModelLen());
        if (requests.containsKey(first.requestId()))
            throw new IllegalArgumentException("duplicate request id " + first.requestId());
        requests.put(first.requestId(), new ArrayList<>(choices));
        for (Sequence s : choices) liveById.put(s.seqId(), s);
        waiting.addLast(first);
        if (choices.size() > 1) pendingSiblings.put(first.requestId(), new ArrayList<>(choices.subList(1, choices.size())));
    }

    /**
     * Plans one step. Policy (after vLLM v1 with chunked prefill): running decodes first, then running prefill
     * chunks, then new or preempted sequences from the waiting queue in FCFS order, all within
     * {@code maxNumBatchedTokens} and {@code maxNumSeqs}. A prefill longer than the remaining budget is cut into a
     * chunk; chunks may end anywhere, including inside an image's tokens (the runner encodes whole images once per
     * request and slices). When a running sequence needs a block and none is free, the newest running sequence not
     * yet scheduled this step is preempted by recompute (blocks freed, back to the front of the waiting queue,
     * recomputed from token 0 on resumption, prompt and output alike, so its output is unchanged). No waiting
     * sequence is admitted in a step that preempted, and the queue head is never skipped (strict FCFS).
     */
    public SchedulerOutput schedule() {
        if (!suspects.isEmpty()) {
            SchedulerOutput isolated = scheduleIsolated();
            if (isolated != null) return isolated;
        }
        int budget = config.maxNumBatchedTokens();
        List<ScheduledSequence> scheduled = new ArrayList<>();
        Set<Sequence> scheduledSet = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Long> preempted = new ArrayList<>();

        for (int pass = 0; pass < 2; pass++) {
            boolean decodes = pass == 0;
            int i = 0;
            while (i < running.size() && budget > 0) {
                Sequence seq = running.get(i);
                int remaining = seq.numTokens() - seq.numComputedTokens();
                if (scheduledSet.contains(seq) || (remaining == 1) != decodes) {
                    i++;
                    continue;
                }
                int numNew = Math.min(remaining, budget);
                boolean preemptedSelf = false;
                while (!blockManager.canAllocate(seq, numNew)) {
                    Sequence victim = newestUnscheduled(scheduledSet);
                    preempt(victim);
                    preempted.add(victim.seqId());
                    if (victim == seq) {
                        preemptedSelf = true;
                        break;
                    }
                }
                if (preemptedSelf) continue; // the next sequence moved into index i
                budget -= scheduleChunk(seq, numNew, scheduled, scheduledSet);
                i++;
            }
        }

        while (preempted.isEmpty() && budget > 0 && !waiting.isEmpty() && running.size() < config.maxNumSeqs()) {
            Sequence seq = waiting.peekFirst();
            int numNew = Math.min(seq.numTokens() - seq.numComputedTokens(), budget);
            if (!blockManager.canAllocate(seq, numNew)) break;
            waiting.pollFirst();
            seq.setStatus(Sequence.Status.RUNNING);
            running.add(seq);
            budget -= scheduleChunk(seq, numNew, scheduled, scheduledSet);
        }

        int numBatched = config.maxNumBatchedTokens() - budget;
        SchedulerOutput out = new SchedulerOutput(scheduled, numBatched, preempted, finishedRequestIds);
        finishedRequestIds.clear();
        return out;
    }

    /**
     * Plans a run-ahead decode step: the step after {@code current}, planned while current runs, before its tokens are
     * applied, so the runner can queue it behind current and the device never waits for the host between the two
     * (vLLM's async scheduling). Each of current's sequences decodes once more, fed the token current samples for it
     * ({@link ScheduledSequence#FROM_PREVIOUS_STEP}) at the next position, with blocks allocated for it now and the
     * uniform draw it would get planned after current is applied. A sequence that current's token brings to
     * max_tokens or the model's length is left out; one that stops on current's token (EOS, a stop id) or is aborted
     * meanwhile has its sample dropped by {@link #update}.
     *
     * <p>Null (plan normally after applying current) unless current is a decode step of every running sequence, no
     * sequence waits, and no sequence's next step depends on current's token on the host: penalties (counts of
     * output ids) and constraints (the next allowed set) do. Never preempts: null when the blocks are not free.
     */
    public SchedulerOutput scheduleAhead(SchedulerOutput current) {
        if (!suspects.isEmpty() || !waiting.isEmpty() || !pendingSiblings.isEmpty() || current.isEmpty()) return null;
        List<Sequence> next = new ArrayList<>();
        int live = 0;
        int blocksNeeded = 0;
        for (ScheduledSequence s : current.sequences()) {
            if (s.numNewTokens() != 1 || !s.sample() || s.hasPromptTokens()) return null;
            Sequence seq = liveById.get(s.seqId());
            if (seq == null || seq.status() != Sequence.Status.RUNNING) continue; // stopped or aborted meanwhile
            live++;
            if (s.startPosition() != seq.numComputedTokens() || seq.numTokens() != seq.numComputedTokens() + 1)
                return null;
            SamplingParams p = seq.params();
            if (seq.constraint() != null || p.repetitionPenalty() != 1f || p.frequencyPenalty() != 0f
                    || p.presencePenalty() != 0f) return null;
            if (seq.numOutputTokens() + 1 >= p.maxTokens() || seq.numTokens() + 1 >= config.maxModelLen()) continue;
            blocksNeeded += blockManager.numNewBlocksNeeded(seq, 2);
            next.add(seq);
        }
        if (live != running.size() || next.isEmpty() || blocksNeeded > blockManager.numFreeBlocks()) return null;
        List<ScheduledSequence> scheduled = new ArrayList<>(next.size());
        for (Sequence seq : next) {
            blockManager.allocate(seq, 2);
            int[] outputs = java.util.Arrays.copyOf(seq.outputTokenIds(), seq.numOutputTokens() + 1);
            outputs[outputs.length - 1] = ScheduledSequence.FROM_PREVIOUS_STEP;
            scheduled.add(new ScheduledSequence(seq.seqId(), seq.requestId(), seq.choiceIndex(),
                    new int[] {ScheduledSequence.FROM_PREVIOUS_STEP}, seq.numTokens(), seq.blockTableCopy(), true,
                    seq.promptTokenIds(), outputs, seq.nextUniformAhead(), seq.params(), seq.eosTokenIds(),
                    seq.images(), null));
        }
        SchedulerOutput out = new SchedulerOutput(scheduled, scheduled.size(), List.of(), finishedRequestIds, true);
        finishedRequestIds.clear();
        return out;
    }

    /** Finished requests a run-ahead step was to report to the runner and could not: the next step reports them. */
    void requeueFinished(Set<String> requestIds) {
        finishedRequestIds.addAll(requestIds);
    }

    /**
     * Requests that were batched into a step that failed: until each has run a step alone, they run one request per
     * step, so a request that makes the forward pass fail is found and failed alone, and the others go on.
     */
    public void suspect(java.util.Collection<String> requestIds) {
        for (String id : requestIds) if (requests.containsKey(id)) suspects.add(id);
    }

    /** A suspect that has now run a step alone without failing. */
    public void clearSuspect(String requestId) {
        suspects.remove(requestId);
    }

    public boolean isSuspect(String requestId) {
        return suspects.contains(requestId);
    }

    /**
     * One step for the oldest running suspect alone (all its choices, its next chunk each), or null when no running
     * suspect can be scheduled (then suspects not running are forgotten and the normal policy runs).
     */
    private SchedulerOutput scheduleIsolated() {
        suspects.removeIf(id -> !requests.containsKey(id));
        for (Sequence head : running) {
            if (!suspects.contains(head.requestId())) continue;
            int budget = config.maxNumBatchedTokens();
            List<ScheduledSequence> scheduled = new ArrayList<>();
            Set<Sequence> scheduledSet = Collections.newSetFromMap(new IdentityHashMap<>());
            for (Sequence seq : running) {
                if (!seq.requestId().equals(head.requestId()) || budget <= 0) continue;
                int numNew = Math.min(seq.numTokens() - seq.numComputedTokens(), budget);
                if (numNew <= 0 || !blockManager.canAllocate(seq, numNew)) continue;
                budget -= scheduleChunk(seq, numNew, scheduled, scheduledSet);
            }
            if (scheduled.isEmpty()) continue;
            SchedulerOutput out = new SchedulerOutput(scheduled, config.maxNumBatchedTokens() - budget, List.of(),
                    finishedRequestIds);
            finishedRequestIds.clear();
            return out;
        }
        suspects.clear();
        return null;
    }

    private Sequence newestUnscheduled(Set<Sequence> scheduledSet) {
        for (int j = running.size() - 1; j >= 0; j--) {
            if (!scheduledSet.contains(running.get(j))) return running.get(j);
        }
        throw new IllegalStateException("no unscheduled running sequence to preempt");
    }

    private void preempt(Sequence seq) {
        running.remove(seq);
        blockManager.free(seq);
        seq.resetForRecompute();
        seq.setStatus(Sequence.Status.PREEMPTED);
        waiting.addFirst(seq);
        numPreemptions++;
    }

    private int scheduleChunk(Sequence seq, int numNew, List<ScheduledSequence> scheduled, Set<Sequence> scheduledSet) {
        blockManager.allocate(seq, numNew);
        int start = seq.numComputedTokens();
        boolean sample = start + numNew == seq.numTokens();
        scheduled.add(new ScheduledSequence(seq.seqId(), seq.requestId(), seq.choiceIndex(),
                seq.tokenIds(start, start + numNew), start, seq.blockTableCopy(), sample, seq.promptTokenIds(),
                sample ? seq.outputTokenIds() : new int[0], sample ? seq.nextUniform() : Double.NaN,
                seq.params(), seq.eosTokenIds(), seq.images(), sample ? seq.allowedTokenIds() : null));
        scheduledSet.add(seq);
        return numNew;
    }

    /**
     * Applies a step's results: advances computed counts, appends sampled tokens, forks pending n &gt; 1 siblings
     * once choice 0 has its prompt in the cache, checks stop conditions and frees finished sequences' blocks. In a
     * run-ahead step, a sequence that finished (or was aborted) after it was planned has its sample dropped.
     */
    public List<SequenceUpdate> update(SchedulerOutput schedulerOutput, RunnerOutput runnerOutput) {
        List<SequenceUpdate> updates = new ArrayList<>();
        int k = 0;
        for (ScheduledSequence s : schedulerOutput.sequences()) {
            Sequence seq = liveById.get(s.seqId());
            if (schedulerOutput.ahead() && (seq == null || seq.status() != Sequence.Status.RUNNING)) {
                if (s.sample()) k++;
                continue;
            }
            if (seq == null || seq.status() != Sequence.Status.RUNNING)
                throw new IllegalStateException("scheduled sequence " + s.seqId() + " is not running");
            seq.advanceComputed(s.numNewTokens());
            if (!s.sample()) continue;
            if (k >= runnerOutput.sampledTokenIds().length)
                throw new IllegalStateException("runner returned " + runnerOutput.sampledTokenIds().length + " tokens");
            int tokenId = runnerOutput.sampledTokenIds()[k];
            TokenLogprobs logprobs = runnerOutput.logprobsAt(k);
            k++;
            if (seq.numOutputTokens() == 0 && seq.choiceIndex() == 0) forkSiblings(seq);
            seq.appendOutput(tokenId);
            FinishReason reason = checkStop(seq, tokenId);
            if (reason != null) finish(seq, reason);
            updates.add(new SequenceUpdate(seq, tokenId, logprobs, reason));
        }
        if (k != runnerOutput.sampledTokenIds().length)
            throw new IllegalStateException("runner returned " + runnerOutput.sampledTokenIds().length
                    + " tokens for " + k + " sampling sequences");
        return updates;
    }

    private void forkSiblings(Sequence parent) {
        List<Sequence> siblings = pendingSiblings.remove(parent.requestId());
        if (siblings == null) return;
        int numShared = (parent.numPromptTokens() - 1) / blockManager.blockSize();
        List<Sequence> toWaiting = new ArrayList<>();
        for (Sequence sib : siblings) {
            if (running.size() < config.maxNumSeqs()) {
                blockManager.share(parent, sib, numShared);
                sib.setCachedPrefix(numShared * blockManager.blockSize());
                sib.setStatus(Sequence.Status.RUNNING);
                running.add(sib);
            } else {
                toWaiting.add(sib); // no room to run now: it will prefill the whole prompt itself later
            }
        }
        for (int j = toWaiting.size() - 1; j >= 0; j--) waiting.addFirst(toWaiting.get(j));
    }

    /** Stop ids win over length when both apply on the same token (the model did choose to stop). */
    private FinishReason checkStop(Sequence seq, int tokenId) {
        SamplingParams p = seq.params();
        if (seq.numOutputTokens() >= p.minTokens()) {
            if (!p.ignoreEos() && seq.eosTokenIds().contains(tokenId)) return FinishReason.STOP;
            if (p.stopTokenIds().contains(tokenId)) return FinishReason.STOP;
        }
        if (seq.numOutputTokens() >= p.maxTokens() || seq.numTokens() >= config.maxModelLen()) return FinishReason.LENGTH;
        return null;
    }

    private void finish(Sequence seq, FinishReason reason) {
        switch (seq.status()) {
            case RUNNING -> running.remove(seq);
            case WAITING, PREEMPTED -> {
                if (!waiting.remove(seq)) {
                    List<Sequence> pending = pendingSiblings.get(seq.requestId());
                    if (pending != null) pending.remove(seq);
                }
            }
            case FINISHED -> throw new IllegalStateException("already finished: " + seq);
        }
        blockManager.free(seq);
        seq.finish(reason);
        liveById.remove(seq.seqId());
        List<Sequence> choices = requests.get(seq.requestId());
        choices.remove(seq);
        if (choices.isEmpty()) {
            requests.remove(seq.requestId());
            pendingSiblings.remove(seq.requestId());
            finishedRequestIds.add(seq.requestId());
        }
    }

    /**
     * Finishes every unfinished choice of a request with {@code reason} (ABORT for a client abort or an engine
     * failure), freeing its blocks. Returns the choices it finished (empty if the request is unknown or done).
     */
    public List<Sequence> finishRequest(String requestId, FinishReason reason) {
        List<Sequence> choices = requests.get(requestId);
        if (choices == null) return List.of();
        List<Sequence> finished = new ArrayList<>(choices);
        for (Sequence seq : finished) finish(seq, reason);
        return finished;
    }
}

package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/** Drives a Scheduler with a FakeModelRunner step by step, checking invariants and budgets each step. */
final class SchedulerHarness {
    final SchedulerConfig config;
    final Scheduler scheduler;
    final FakeModelRunner runner;
    /** Output ids per "requestId#choice". */
    final Map<String, List<Integer>> outputs = new LinkedHashMap<>();
    final Map<String, FinishReason> finishReasons = new HashMap<>();
    final Map<String, Integer> cachedTokens = new HashMap<>();
    private long nextSeqId;

    SchedulerHarness(int maxNumSeqs, int maxNumBatchedTokens, int maxModelLen, int numBlocks, int blockSize, int eosEvery) {
        config = new SchedulerConfig(maxNumSeqs, maxNumBatchedTokens, maxModelLen);
        scheduler = new Scheduler(config, new BlockManager(numBlocks, blockSize));
        runner = new FakeModelRunner(numBlocks, blockSize, 1000, eosEvery);
    }

    static SamplingParams params(int n, long seed, int maxTokens) {
        return new SamplingParams(n, 1f, 1f, -1, 0f, seed, 0f, 0f, 1f, maxTokens, 0, List.of(), false, null);
    }

    static int[] prompt(SplittableRandom rnd, int length) {
        int[] ids = new int[length];
        for (int i = 0; i < length; i++) ids[i] = 3 + rnd.nextInt(997);
        return ids;
    }

    void add(String requestId, int[] prompt, SamplingParams p) {
        List<Sequence> choices = new ArrayList<>();
        for (int i = 0; i < p.n(); i++) {
            choices.add(new Sequence(nextSeqId++, requestId, i, prompt, List.of(), p, List.of(FakeModelRunner.EOS),
                    p.seed() + i, System.nanoTime()));
            outputs.put(requestId + "#" + i, new ArrayList<>());
        }
        scheduler.add(choices);
    }

    /** One step; returns the scheduler output. */
    SchedulerOutput step() {
        SchedulerOutput so = scheduler.schedule();
        checkBudgets(so);
        RunnerOutput ro = runner.execute(so);
        for (Scheduler.SequenceUpdate u : scheduler.update(so, ro)) {
            String key = u.sequence().requestId() + "#" + u.sequence().choiceIndex();
            outputs.get(key).add(u.tokenId());
            if (u.finishReason() != null) {
                finishReasons.put(key, u.finishReason());
                cachedTokens.put(key, u.sequence().numCachedTokens());
            }
        }
        scheduler.blockManager().checkInvariants(scheduler.liveSequences());
        return so;
    }

    void runToCompletion(int maxSteps) {
        int steps = 0;
        while (scheduler.hasWork()) {
            step();
            if (++steps > maxSteps) throw new AssertionError("no completion after " + maxSteps + " steps");
        }
        assertEquals(scheduler.blockManager().numBlocks(), scheduler.blockManager().numFreeBlocks(), "blocks leaked");
    }

    void checkBudgets(SchedulerOutput so) {
        assertTrue(so.numBatchedTokens() <= config.maxNumBatchedTokens(), "token budget exceeded");
        assertTrue(so.sequences().size() <= config.maxNumSeqs(), "sequence budget exceeded");
        assertTrue(scheduler.numRunning() <= config.maxNumSeqs(), "too many running");
        int sum = 0;
        for (ScheduledSequence s : so.sequences()) {
            sum += s.numNewTokens();
            assertTrue(s.numNewTokens() >= 1);
            assertTrue(s.seqLen() <= config.maxModelLen(), "beyond maxModelLen");
        }
        assertEquals(sum, so.numBatchedTokens());
    }
}

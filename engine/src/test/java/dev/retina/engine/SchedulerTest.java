package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SchedulerTest {

    @Test
    void longPromptIsChunkedAndSamplesOnlyAtItsLastChunk() {
        SchedulerHarness h = new SchedulerHarness(4, 16, 128, 64, 4, 0);
        h.add("a", SchedulerHarness.prompt(new SplittableRandom(1), 50), SchedulerHarness.params(1, 7, 3));
        List<Integer> chunkSizes = new ArrayList<>();
        List<Boolean> samples = new ArrayList<>();
        while (h.scheduler.hasWork()) {
            SchedulerOutput so = h.step();
            assertEquals(1, so.sequences().size());
            chunkSizes.add(so.sequences().getFirst().numNewTokens());
            samples.add(so.sequences().getFirst().sample());
        }
        assertEquals(List.of(16, 16, 16, 2, 1, 1), chunkSizes);
        assertEquals(List.of(false, false, false, true, true, true), samples);
        assertEquals(3, h.outputs.get("a#0").size());
        assertEquals(FinishReason.LENGTH, h.finishReasons.get("a#0"));
    }

    @Test
    void runningDecodesComeFirstAndPrefillsGetTheRestOfTheBudget() {
        SchedulerHarness h = new SchedulerHarness(8, 20, 256, 128, 4, 0);
        SplittableRandom rnd = new SplittableRandom(2);
        h.add("d1", SchedulerHarness.prompt(rnd, 5), SchedulerHarness.params(1, 1, 50));
        h.add("d2", SchedulerHarness.prompt(rnd, 5), SchedulerHarness.params(1, 2, 50));
        h.step(); // both prefills (10 tokens) fit the budget of 20
        h.add("long", SchedulerHarness.prompt(rnd, 100), SchedulerHarness.params(1, 3, 5));
        SchedulerOutput so = h.step();
        assertEquals(List.of("d1", "d2", "long"), so.sequences().stream().map(ScheduledSequence::requestId).toList());
        assertEquals(1, so.sequences().get(0).numNewTokens());
        assertEquals(1, so.sequences().get(1).numNewTokens());
        assertEquals(18, so.sequences().get(2).numNewTokens());
        // Next step: decodes still first, then the long prompt's continuation (a running prefill chunk).
        so = h.step();
        assertEquals(List.of("d1", "d2", "long"), so.sequences().stream().map(ScheduledSequence::requestId).toList());
        assertEquals(18, so.sequences().get(2).startPosition());
        assertEquals(20, so.numBatchedTokens());
    }

    @Test
    void preemptionByRecomputeGivesTheSameOutputsAsAnUnconstrainedRun() {
        SplittableRandom rnd = new SplittableRandom(3);
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 12; i++) prompts.add(SchedulerHarness.prompt(rnd, 5 + rnd.nextInt(40)));

        SchedulerHarness roomy = new SchedulerHarness(16, 64, 128, 1000, 4, 0);
        SchedulerHarness tight = new SchedulerHarness(16, 64, 128, 32, 4, 0); // 128 tokens of KV for 12 sequences
        for (SchedulerHarness h : List.of(roomy, tight)) {
            for (int i = 0; i < prompts.size(); i++)
                h.add("r" + i, prompts.get(i), SchedulerHarness.params(1, 100 + i, 30));
            h.runToCompletion(10_000);
        }
        assertEquals(0, roomy.scheduler.numPreemptions());
        assertTrue(tight.scheduler.numPreemptions() > 5, "expected preemptions, got " + tight.scheduler.numPreemptions());
        assertEquals(roomy.outputs, tight.outputs);
        assertEquals(roomy.finishReasons, tight.finishReasons);
    }

    @Test
    void preemptsTheNewestRunningSequenceAndPutsItAtTheFrontOfTheQueue() {
        // 6 blocks of 4 tokens. Two sequences of 8-token prompts take 2 blocks each; growing needs more.
        SchedulerHarness h = new SchedulerHarness(4, 64, 24, 6, 4, 0);
        SplittableRandom rnd = new SplittableRandom(4);
        h.add("old", SchedulerHarness.prompt(rnd, 8), SchedulerHarness.params(1, 1, 12));
        h.add("new", SchedulerHarness.prompt(rnd, 8), SchedulerHarness.params(1, 2, 12));
        h.add("later", SchedulerHarness.prompt(rnd, 4), SchedulerHarness.params(1, 3, 2));
        SchedulerOutput so;
        do {
            so = h.step();
        } while (so.preemptedSeqIds().isEmpty());
        // Sequence ids are assigned in add order: old=0, new=1, later=2; "later" was admitted last.
        assertEquals(List.of(2L), so.preemptedSeqIds().subList(0, 1));
        h.runToCompletion(1000);
        assertEquals(12, h.outputs.get("old#0").size());
        assertEquals(12, h.outputs.get("new#0").size());
    }

    @Test
    void randomMixOfFinishAbortAndPreemptionNeverLeaksBlocks() {
        SplittableRandom rnd = new SplittableRandom(12345);
        SchedulerHarness h = new SchedulerHarness(6, 32, 64, 20, 4, 9);
        List<String> live = new ArrayList<>();
        int nextId = 0;
        for (int step = 0; step < 1500; step++) {
            if (rnd.nextInt(4) == 0) {
                String id = "q" + nextId++;
                int n = 1 + rnd.nextInt(3);
                h.add(id, SchedulerHarness.prompt(rnd, 1 + rnd.nextInt(40)),
                        SchedulerHarness.params(n, rnd.nextLong(), 1 + rnd.nextInt(40)));
                live.add(id);
            }
            if (!live.isEmpty() && rnd.nextInt(10) == 0) {
                String victim = live.remove(rnd.nextInt(live.size()));
                h.scheduler.finishRequest(victim, FinishReason.ABORT);
                h.scheduler.blockManager().checkInvariants(h.scheduler.liveSequences());
            }
            if (h.scheduler.hasWork()) h.step();
        }
        h.runToCompletion(10_000);
        assertTrue(h.scheduler.numPreemptions() > 0, "the mix should include preemptions");
        assertEquals(0, h.scheduler.liveSequences().size());
    }

    @Test
    void abortFreesBlocksOfRunningAndWaitingSequences() {
        SchedulerHarness h = new SchedulerHarness(1, 64, 128, 40, 4, 0);
        SplittableRandom rnd = new SplittableRandom(5);
        h.add("a", SchedulerHarness.prompt(rnd, 30), SchedulerHarness.params(1, 1, 50));
        h.add("b", SchedulerHarness.prompt(rnd, 30), SchedulerHarness.params(1, 2, 50));
        h.step();
        assertEquals(1, h.scheduler.numRunning());
        assertEquals(1, h.scheduler.numWaiting());
        assertEquals(40 - 8, h.scheduler.blockManager().numFreeBlocks());
        List<Sequence> aborted = h.scheduler.finishRequest("a", FinishReason.ABORT);
        assertEquals(1, aborted.size());
        assertEquals(FinishReason.ABORT, aborted.getFirst().finishReason());
        assertEquals(40, h.scheduler.blockManager().numFreeBlocks());
        assertEquals(1, h.scheduler.finishRequest("b", FinishReason.ABORT).size());
        assertFalse(h.scheduler.hasWork());
        assertEquals(List.of(), h.scheduler.finishRequest("b", FinishReason.ABORT));
        SchedulerOutput so = h.scheduler.schedule();
        assertEquals(java.util.Set.of("a", "b"), so.finishedRequestIds());
    }

    @Test
    void parallelChoicesShareFullPromptBlocksAndMatchSeparatelySeededRequests() {
        SplittableRandom rnd = new SplittableRandom(6);
        int[] prompt = SchedulerHarness.prompt(rnd, 37); // blockSize 8: 4 full blocks before the last token
        SchedulerHarness forked = new SchedulerHarness(8, 64, 128, 64, 8, 0);
        forked.add("p", prompt, SchedulerHarness.params(3, 50, 10));
        forked.step(); // choice 0 prefills and samples; siblings are forked with shared blocks
        assertEquals(3, forked.scheduler.numRunning());
        // choice 0: 5 blocks; each sibling: 4 shared + its own tail block (allocated next step).
        assertEquals(64 - 5, forked.scheduler.blockManager().numFreeBlocks());
        forked.runToCompletion(1000);
        assertEquals(0, forked.cachedTokens.get("p#0"));
        assertEquals(32, forked.cachedTokens.get("p#1"));
        assertEquals(32, forked.cachedTokens.get("p#2"));

        SchedulerHarness separate = new SchedulerHarness(8, 64, 128, 64, 8, 0);
        for (int i = 0; i < 3; i++) separate.add("s" + i, prompt, SchedulerHarness.params(1, 50 + i, 10));
        separate.runToCompletion(1000);
        for (int i = 0; i < 3; i++) assertEquals(separate.outputs.get("s" + i + "#0"), forked.outputs.get("p#" + i));
        assertNotEquals(forked.outputs.get("p#0"), forked.outputs.get("p#1"));
    }

    @Test
    void stopConditions() {
        SchedulerHarness h = new SchedulerHarness(8, 64, 20, 64, 4, 0);
        SplittableRandom rnd = new SplittableRandom(7);
        int[] prompt = SchedulerHarness.prompt(rnd, 10);
        h.add("len", prompt, SchedulerHarness.params(1, 1, 100)); // maxModelLen 20 -> 10 outputs
        h.runToCompletion(100);
        assertEquals(10, h.outputs.get("len#0").size());
        assertEquals(FinishReason.LENGTH, h.finishReasons.get("len#0"));

        int stopId = h.outputs.get("len#0").get(3);
        SamplingParams stop = new SamplingParams(1, 1f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 0, List.of(stopId), false, null);
        h.add("stop", prompt, stop);
        SamplingParams min = new SamplingParams(1, 1f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 6, List.of(stopId), false, null);
        h.add("min", prompt, min);
        h.runToCompletion(100);
        assertEquals(h.outputs.get("len#0").subList(0, 4), h.outputs.get("stop#0"));
        assertEquals(FinishReason.STOP, h.finishReasons.get("stop#0"));
        assertEquals(10, h.outputs.get("min#0").size(), "stop id before min_tokens must not stop");
    }

    @Test
    void eosStopsUnlessIgnored() {
        SchedulerHarness h = new SchedulerHarness(8, 64, 200, 100, 4, 3); // EOS about every third token
        SplittableRandom rnd = new SplittableRandom(8);
        int[] prompt = SchedulerHarness.prompt(rnd, 6);
        h.add("e", prompt, SchedulerHarness.params(1, 1, 60));
        h.add("i", prompt, new SamplingParams(1, 1f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 60, 0, List.of(), true, null));
        h.runToCompletion(1000);
        List<Integer> e = h.outputs.get("e#0");
        assertEquals(FakeModelRunner.EOS, e.getLast());
        assertEquals(FinishReason.STOP, h.finishReasons.get("e#0"));
        assertEquals(60, h.outputs.get("i#0").size());
        assertEquals(FinishReason.LENGTH, h.finishReasons.get("i#0"));
        assertTrue(h.outputs.get("i#0").contains(FakeModelRunner.EOS));
    }

    @Test
    void rejectsPromptsThatLeaveNoRoomAndCachesTooSmallForOneSequence() {
        SchedulerHarness h = new SchedulerHarness(8, 64, 16, 64, 4, 0);
        assertThrows(IllegalArgumentException.class,
                () -> h.add("x", new int[16], SchedulerHarness.params(1, 1, 1)));
        assertThrows(IllegalArgumentException.class,
                () -> new Scheduler(new SchedulerConfig(4, 64, 100), new BlockManager(24, 4)));
    }

    @Test
    void neverExceedsMaxNumSeqs() {
        SchedulerHarness h = new SchedulerHarness(3, 64, 64, 100, 4, 0);
        SplittableRandom rnd = new SplittableRandom(9);
        for (int i = 0; i < 10; i++) h.add("r" + i, SchedulerHarness.prompt(rnd, 3), SchedulerHarness.params(2, i, 5));
        int maxSeen = 0;
        while (h.scheduler.hasWork()) maxSeen = Math.max(maxSeen, h.step().sequences().size());
        assertEquals(3, maxSeen);
        for (Map.Entry<String, List<Integer>> e : h.outputs.entrySet()) assertEquals(5, e.getValue().size(), e.getKey());
    }
}

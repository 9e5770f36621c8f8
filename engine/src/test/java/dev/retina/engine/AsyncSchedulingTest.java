package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.retina.engine.model.LlavaModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Async scheduling ({@link Scheduler#scheduleAhead}, the engine queueing a decode step behind the one in flight):
 * every request's tokens, finish reasons and freed blocks must be what one-step-at-a-time gives, through EOS on the
 * step before, max_tokens, aborts, a failing step, and with the real model on the CPU.
 */
class AsyncSchedulingTest {
    private static final int NUM_BLOCKS = 64;
    private static final int BLOCK_SIZE = 4;

    @TempDir
    static Path dir;
    private static LlavaModel model;

    @BeforeAll
    static void load() throws IOException {
        model = TinyLlava.load(dir, 11);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private record Result(List<List<Integer>> tokens, List<FinishReason> reasons, long aheadSteps, int freeBlocks) {
    }

    /** Runs the requests at once on a fresh engine over {@code runner}; choice-0 tokens and finish reasons. */
    private static Result run(ModelRunner runner, List<EngineRequest> reqs, int maxNumSeqs, List<SchedulerOutput> steps)
            throws Exception {
        EngineConfig cfg = new EngineConfig(maxNumSeqs, 48, BLOCK_SIZE, 64, NUM_BLOCKS, 0, 0.9);
        List<LlmEngineTest.Collector> collectors = new ArrayList<>();
        int free;
        try (LlmEngine engine = new LlmEngine(cfg, cfg.numBlocks(1, 0), runner)) {
            for (EngineRequest r : reqs) {
                LlmEngineTest.Collector c = new LlmEngineTest.Collector(r.params().n());
                collectors.add(c);
                engine.addRequest(r, c);
            }
            for (LlmEngineTest.Collector c : collectors) c.await();
            free = EngineBatchInvarianceTest.settledStats(engine).numFreeBlocks();
        }
        List<List<Integer>> tokens = new ArrayList<>();
        List<FinishReason> reasons = new ArrayList<>();
        for (LlmEngineTest.Collector c : collectors) {
            assertNull(c.last(0).error());
            tokens.add(c.tokens(0));
            reasons.add(c.last(0).finishReason());
        }
        long ahead = steps == null ? 0 : steps.stream().filter(SchedulerOutput::ahead).count();
        return new Result(tokens, reasons, ahead, free);
    }

    private static List<EngineRequest> fakeRequests(long seed, int count) {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<EngineRequest> reqs = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            float temperature = i % 3 == 0 ? 0f : 1f;
            SamplingParams p = new SamplingParams(1, temperature, 1f, -1, 0f, 100L + i, 0f, 0f, 1f, 3 + rnd.nextInt(20),
                    0, List.of(), i % 4 == 0, null);
            reqs.add(new EngineRequest("r" + i, SchedulerHarness.prompt(rnd, 1 + rnd.nextInt(12)), List.of(), p,
                    List.of(FakeModelRunner.EOS)));
        }
        return reqs;
    }

    @Test
    void runAheadStepsGiveEveryRequestTheTokensOfOneStepAtATime() throws Exception {
        for (int maxNumSeqs : new int[] {1, 4, 16}) {
            List<EngineRequest> reqs = fakeRequests(maxNumSeqs, 16);
            FakeModelRunner sync = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE, 1000, 7);
            Result expected = run(sync, reqs, maxNumSeqs, sync.steps);
            FakeModelRunner async = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE, 1000, 7);
            async.runAhead = true;
            Result got = run(async, reqs, maxNumSeqs, async.steps);
            assertEquals(0, expected.aheadSteps());
            assertTrue(got.aheadSteps() > 0, "no step ran ahead at maxNumSeqs " + maxNumSeqs);
            assertEquals(expected.tokens(), got.tokens(), "maxNumSeqs " + maxNumSeqs);
            assertEquals(expected.reasons(), got.reasons(), "maxNumSeqs " + maxNumSeqs);
            assertTrue(got.reasons().contains(FinishReason.STOP) && got.reasons().contains(FinishReason.LENGTH),
                    "both ways of finishing should occur: " + got.reasons());
            assertEquals(NUM_BLOCKS, got.freeBlocks(), "every block is back in the pool");
        }
    }

    private static Sequence sequence(long id, int[] prompt, SamplingParams p) {
        return new Sequence(id, "s" + id, 0, prompt, List.of(), p, List.of(FakeModelRunner.EOS), 1000L + id, 0L);
    }

    @Test
    void scheduleAheadPlansTheNextDecodeOfEachSequenceAndLeavesOutThoseThatReachMaxTokens() {
        Scheduler scheduler = new Scheduler(new SchedulerConfig(8, 64, 64), new BlockManager(NUM_BLOCKS, BLOCK_SIZE));
        Sequence a = sequence(0, new int[] {5, 6, 7}, SchedulerHarness.params(1, 1L, 10));
        Sequence b = sequence(1, new int[] {8, 9}, SchedulerHarness.params(1, 2L, 2)); // its second token is its last
        scheduler.add(List.of(a));
        scheduler.add(List.of(b));
        scheduler.update(scheduler.schedule(), new RunnerOutput(new int[] {30, 31}, null)); // both prompts
        SchedulerOutput decode = scheduler.schedule();
        assertEquals(2, decode.sequences().size());
        SchedulerOutput ahead = scheduler.scheduleAhead(decode);
        assertNotNull(ahead);
        assertTrue(ahead.ahead());
        assertEquals(1, ahead.sequences().size(), "b reaches max_tokens with the step in flight");
        ScheduledSequence next = ahead.sequences().getFirst();
        assertEquals(a.seqId(), next.seqId());
        assertTrue(next.fedFromPreviousStep());
        assertEquals(a.numTokens(), next.startPosition()); // the position of the token in flight
        assertEquals(a.numOutputTokens() + 1, next.outputTokenIds().length);
        assertTrue(next.blockTable().length * BLOCK_SIZE >= next.seqLen());
        SplittableRandom rng = new SplittableRandom(1000L); // a's draws: its prefill's sample, the decode's, then this
        rng.nextDouble();
        assertEquals(rng.nextDouble(), decode.sequences().getFirst().uniform());
        assertEquals(rng.nextDouble(), next.uniform(), "the run-ahead draw is the one after the pending one");
        // The step in flight is applied first, then the run-ahead one: a advances twice, b has finished.
        RunnerOutput sampled = new RunnerOutput(new int[] {40, 41}, null);
        scheduler.update(decode, sampled);
        assertEquals(FinishReason.LENGTH, b.finishReason());
        ScheduledSequence resolved = ScheduledSequence.resolve(ahead, decode, sampled).sequences().getFirst();
        assertArrayEquals(new int[] {40}, resolved.tokenIds());
        assertEquals(40, resolved.outputTokenIds()[resolved.outputTokenIds().length - 1]);
        assertEquals(1, scheduler.update(ahead, new RunnerOutput(new int[] {42}, null)).size());
        assertEquals(a.numTokens(), a.numComputedTokens() + 1);
        assertArrayEquals(new int[] {30, 40, 42}, a.outputTokenIds());
        // The draw after the run-ahead one is pending now, as if each step had been planned after the last.
        assertEquals(rng.nextDouble(), scheduler.schedule().sequences().getFirst().uniform());
    }

    @Test
    void noRunAheadWhenASequenceNeedsItsLastTokenOnTheHostOrOneWaits() {
        SamplingParams penalised = new SamplingParams(1, 1f, 1f, -1, 0f, 3L, 0.5f, 0f, 1f, 10, 0, List.of(), false, null);
        Scheduler p = new Scheduler(new SchedulerConfig(1, 64, 64), new BlockManager(NUM_BLOCKS, BLOCK_SIZE));
        p.add(List.of(sequence(0, new int[] {5, 6, 7}, penalised)));
        p.update(p.schedule(), new RunnerOutput(new int[] {30}, null));
        assertNull(p.scheduleAhead(p.schedule()), "penalties count the output ids");
        Scheduler w = new Scheduler(new SchedulerConfig(1, 64, 64), new BlockManager(NUM_BLOCKS, BLOCK_SIZE));
        w.add(List.of(sequence(0, new int[] {5, 6, 7}, SchedulerHarness.params(1, 1L, 10))));
        w.add(List.of(sequence(1, new int[] {5, 6}, SchedulerHarness.params(1, 1L, 10)))); // waits: maxNumSeqs 1
        w.update(w.schedule(), new RunnerOutput(new int[] {30}, null));
        SchedulerOutput decode = w.schedule();
        assertEquals(1, decode.sequences().size());
        assertNull(w.scheduleAhead(decode), "a waiting request gets the next step");
    }

    @Test
    void anAbortWhileAStepRunsAheadFreesEverythingAndOthersAreUnchanged() throws Exception {
        List<EngineRequest> reqs = fakeRequests(5, 4);
        SamplingParams longOne = new SamplingParams(1, 1f, 1f, -1, 0f, 9L, 0f, 0f, 1f, 40, 0, List.of(), true, null);
        FakeModelRunner sync = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE, 1000, 7);
        Result expected = run(sync, reqs, 8, null);
        FakeModelRunner async = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE, 1000, 7);
        async.runAhead = true;
        async.delayMillis = 2;
        EngineConfig cfg = new EngineConfig(8, 48, BLOCK_SIZE, 64, NUM_BLOCKS, 0, 0.9);
        try (LlmEngine engine = new LlmEngine(cfg, cfg.numBlocks(1, 0), async)) {
            LlmEngineTest.Collector doomed = new LlmEngineTest.Collector(1);
            CountDownLatch started = new CountDownLatch(3);
            engine.addRequest(new EngineRequest("doomed", new int[] {4, 5, 6}, List.of(), longOne,
                    List.of(FakeModelRunner.EOS)), out -> {
                doomed.accept(out);
                started.countDown();
            });
            List<LlmEngineTest.Collector> others = new ArrayList<>();
            for (EngineRequest r : reqs) {
                LlmEngineTest.Collector c = new LlmEngineTest.Collector(1);
                others.add(c);
                engine.addRequest(r, c);
            }
            assertTrue(started.await(10, TimeUnit.SECONDS));
            engine.abort("doomed");
            doomed.await();
            assertEquals(FinishReason.ABORT, doomed.last(0).finishReason());
            for (int i = 0; i < reqs.size(); i++) {
                others.get(i).await();
                assertEquals(expected.tokens().get(i), others.get(i).tokens(0), "request " + i);
            }
            assertEquals(NUM_BLOCKS, EngineBatchInvarianceTest.settledStats(engine).numFreeBlocks());
        }
        assertTrue(async.steps.stream().anyMatch(SchedulerOutput::ahead));
    }

    @Test
    void aFailingRunAheadStepIsRetriedAndSeededOutputsStayTheSame() throws Exception {
        List<EngineRequest> reqs = fakeRequests(8, 6);
        FakeModelRunner sync = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE, 1000, 0);
        Result expected = run(sync, reqs, 8, null);
        FakeModelRunner async = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE, 1000, 0);
        async.runAhead = true;
        int[] aheads = {0};
        async.failWhen = so -> so.ahead() && ++aheads[0] == 3; // the third run-ahead step fails once
        Result got = run(async, reqs, 8, async.steps);
        assertEquals(expected.tokens(), got.tokens());
        assertEquals(expected.reasons(), got.reasons());
        assertEquals(NUM_BLOCKS, got.freeBlocks());
    }

    /** The real runner on the CPU, told it may run ahead: its fed tokens are then resolved on the host. */
    private static final class RunAheadOnCpu implements ModelRunner {
        final LlavaModelRunner inner;
        final List<SchedulerOutput> steps = new java.util.concurrent.CopyOnWriteArrayList<>();

        RunAheadOnCpu(LlavaModelRunner inner) {
            this.inner = inner;
        }

        @Override
        public boolean canRunAhead() {
            return true;
        }

        @Override
        public PendingStep submit(SchedulerOutput so, PendingStep previous) {
            steps.add(so);
            return inner.submit(so, previous);
        }

        @Override
        public RunnerOutput execute(SchedulerOutput so) {
            return inner.execute(so);
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    @Test
    void theRealModelGivesTheSameGreedyAndSeededTokensRunningAhead() throws Exception {
        SplittableRandom rnd = new SplittableRandom(31);
        List<EngineRequest> reqs = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            boolean withImage = i % 2 == 0;
            SamplingParams p = new SamplingParams(1, i % 3 == 0 ? 0f : 0.9f, 1f, -1, 0f, 77L + i, 0f, 0f, 1f,
                    4 + rnd.nextInt(8), 0, List.of(), i % 2 == 1, null);
            reqs.add(new EngineRequest("m" + i, TinyLlava.prompt(rnd, withImage),
                    withImage ? List.of(TinyLlava.image(rnd)) : List.of(), p, List.of(2)));
        }
        EngineConfig cfg = new EngineConfig(8, 48, BLOCK_SIZE, 64, NUM_BLOCKS, 0, 0.9);
        int numBlocks = cfg.numBlocks(1, 0);
        Result expected = run(new LlavaModelRunner(model, numBlocks, BLOCK_SIZE), reqs, 8, null);
        RunAheadOnCpu ahead = new RunAheadOnCpu(new LlavaModelRunner(model, numBlocks, BLOCK_SIZE));
        Result got = run(ahead, reqs, 8, ahead.steps);
        assertTrue(got.aheadSteps() > 0);
        assertEquals(expected.tokens(), got.tokens());
        assertEquals(expected.reasons(), got.reasons());
        assertEquals(NUM_BLOCKS, got.freeBlocks());
    }
}

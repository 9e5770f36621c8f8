package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class LlmEngineTest {
    private static final int NUM_BLOCKS = 64;
    private static final int BLOCK_SIZE = 4;

    /** Collects a request's outputs and signals when every choice has finished. */
    static final class Collector implements OutputSink {
        final List<RequestOutput> outputs = new CopyOnWriteArrayList<>();
        final CountDownLatch done;
        final Map<Integer, Thread> threads = new ConcurrentHashMap<>();

        Collector(int n) { done = new CountDownLatch(n); }

        @Override
        public void accept(RequestOutput out) {
            threads.put(out.choiceIndex(), Thread.currentThread());
            outputs.add(out);
            if (out.finished()) done.countDown();
        }

        void await() throws InterruptedException {
            assertTrue(done.await(20, TimeUnit.SECONDS), "request did not finish: " + outputs);
        }

        List<Integer> tokens(int choice) {
            List<Integer> ids = new ArrayList<>();
            for (RequestOutput o : outputs) if (o.choiceIndex() == choice) for (int id : o.newTokenIds()) ids.add(id);
            return ids;
        }

        RequestOutput last(int choice) {
            return outputs.stream().filter(o -> o.choiceIndex() == choice).reduce((a, b) -> b).orElseThrow();
        }
    }

    private static LlmEngine engine(FakeModelRunner runner, int maxNumSeqs) {
        EngineConfig cfg = new EngineConfig(maxNumSeqs, 32, BLOCK_SIZE, 64, NUM_BLOCKS, 0, 0.9);
        return new LlmEngine(cfg, cfg.numBlocks(1, 0), runner);
    }

    private static EngineRequest request(String id, int[] prompt, SamplingParams p) {
        return new EngineRequest(id, prompt, List.of(), p, List.of(FakeModelRunner.EOS));
    }

    @Test
    void requestsFromManyThreadsGetInOrderOutputsThatMatchTheScheduler() throws Exception {
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        Map<String, Collector> collectors = new ConcurrentHashMap<>();
        Map<String, int[]> prompts = new ConcurrentHashMap<>();
        try (LlmEngine engine = engine(runner, 8)) {
            List<Thread> clients = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                int thread = t;
                clients.add(Thread.ofPlatform().start(() -> {
                    SplittableRandom rnd = new SplittableRandom(thread);
                    for (int i = 0; i < 6; i++) {
                        String id = "t" + thread + "-" + i;
                        int[] prompt = SchedulerHarness.prompt(rnd, 1 + rnd.nextInt(20));
                        prompts.put(id, prompt);
                        Collector c = new Collector(1);
                        collectors.put(id, c);
                        engine.addRequest(request(id, prompt, SchedulerHarness.params(1, 1000 + i, 12)), c);
                    }
                }));
            }
            for (Thread c : clients) c.join();
            for (Collector c : collectors.values()) c.await();
            assertTrue(engine.stats().numRunning() == 0 || engine.stats().numWaiting() == 0);
        }
        assertEquals(24, collectors.size());
        for (Map.Entry<String, Collector> e : collectors.entrySet()) {
            Collector c = e.getValue();
            for (int k = 0; k < c.outputs.size(); k++) {
                RequestOutput o = c.outputs.get(k);
                assertEquals(k + 1, o.numGeneratedTokens(), "outputs out of order");
                assertEquals(k == c.outputs.size() - 1, o.finished());
                assertEquals("retina-engine", c.threads.get(0).getName());
            }
            // The same request alone through the scheduler gives the same tokens.
            SchedulerHarness h = new SchedulerHarness(8, 32, 64, NUM_BLOCKS, BLOCK_SIZE, 0);
            int i = Integer.parseInt(e.getKey().substring(e.getKey().indexOf('-') + 1));
            h.add("x", prompts.get(e.getKey()), SchedulerHarness.params(1, 1000 + i, 12));
            h.runToCompletion(100);
            assertEquals(h.outputs.get("x#0"), c.tokens(0), e.getKey());
        }
    }

    @Test
    void abortMidwayFreesBlocksAndEndsWithAnAbortOutput() throws Exception {
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        runner.delayMillis = 5;
        try (LlmEngine engine = engine(runner, 8)) {
            Collector c = new Collector(2);
            CountDownLatch started = new CountDownLatch(3);
            OutputSink sink = out -> {
                c.accept(out);
                started.countDown();
            };
            SamplingParams p = new SamplingParams(2, 1f, 1f, -1, 0f, 5L, 0f, 0f, 1f, 50, 0, List.of(), true, null);
            engine.addRequest(request("a", new int[] {5, 6, 7, 8, 9}, p), sink);
            assertTrue(started.await(10, TimeUnit.SECONDS));
            engine.abort("a");
            c.await();
            for (int choice = 0; choice < 2; choice++) {
                assertEquals(FinishReason.ABORT, c.last(choice).finishReason());
                assertNull(c.last(choice).error());
                assertTrue(c.tokens(choice).size() < 50);
            }
            awaitIdle(engine);
            assertEquals(NUM_BLOCKS, engine.stats().numFreeBlocks());
            engine.abort("a"); // a second abort, or one for an unknown id, is harmless
            engine.abort("nope");
        }
    }

    @Test
    void aFailingStepFailsItsRequestsAndTheEngineKeepsServing() throws Exception {
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        runner.failWhen = so -> so.sequences().stream().anyMatch(s -> s.requestId().equals("bad"));
        try (LlmEngine engine = engine(runner, 8)) {
            Collector bad = new Collector(1);
            engine.addRequest(request("bad", new int[] {4, 5, 6}, SchedulerHarness.params(1, 1, 5)), bad);
            bad.await();
            assertEquals(FinishReason.ABORT, bad.last(0).finishReason());
            assertNotNull(bad.last(0).error());
            assertTrue(bad.last(0).error().contains("injected failure"));

            Collector good = new Collector(1);
            engine.addRequest(request("good", new int[] {4, 5, 6}, SchedulerHarness.params(1, 1, 5)), good);
            good.await();
            assertEquals(FinishReason.LENGTH, good.last(0).finishReason());
            assertEquals(5, good.tokens(0).size());
            awaitIdle(engine);
            assertEquals(NUM_BLOCKS, engine.stats().numFreeBlocks());
        }
    }

    @Test
    void aFailingStepIsRetriedOneRequestAtATimeSoOnlyTheCulpritFailsAndSeededOutputsStayTheSame() throws Exception {
        // The answer "good" gets when nothing fails (seeded sampling: depends on every uniform draw).
        List<Integer> expected;
        try (LlmEngine solo = engine(new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE), 8)) {
            Collector c = new Collector(1);
            solo.addRequest(request("good", new int[] {4, 5, 6}, SchedulerHarness.params(1, 77, 12)), c);
            c.await();
            expected = c.tokens(0);
        }
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        runner.failWhen = so -> so.sequences().stream().anyMatch(s -> s.requestId().equals("bad"));
        runner.delayMillis = 20; // "bad" arrives while "good" is mid-way: they share the next step
        try (LlmEngine engine = engine(runner, 8)) {
            Collector good = new Collector(1);
            Collector bad = new Collector(1);
            engine.addRequest(request("good", new int[] {4, 5, 6}, SchedulerHarness.params(1, 77, 12)), good);
            Thread.sleep(30);
            engine.addRequest(request("bad", new int[] {7, 8, 9}, SchedulerHarness.params(1, 5, 12)), bad);
            good.await();
            bad.await();
            assertTrue(bad.last(0).error().contains("injected failure"), bad.outputs.toString());
            assertEquals(FinishReason.LENGTH, good.last(0).finishReason());
            assertNull(good.last(0).error());
            assertEquals(expected, good.tokens(0), "the retried step sampled with the same draws");
            boolean shared = runner.steps.stream().anyMatch(so -> so.sequences().size() == 2);
            boolean aloneBad = runner.steps.stream().anyMatch(so -> so.sequences().size() == 1
                    && so.sequences().getFirst().requestId().equals("bad"));
            assertTrue(shared && aloneBad, "a shared step failed, then bad ran alone");
            awaitIdle(engine);
            assertEquals(NUM_BLOCKS, engine.stats().numFreeBlocks());
        }
    }

    @Test
    void invalidRequestsGetAnErrorOutputAndIdleEngineDoesNotSpin() throws Exception {
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        try (LlmEngine engine = engine(runner, 8)) {
            Collector tooLong = new Collector(1);
            engine.addRequest(request("long", new int[64], SchedulerHarness.params(1, 1, 5)), tooLong);
            tooLong.await();
            assertNotNull(tooLong.last(0).error());

            Collector ok = new Collector(1);
            engine.addRequest(request("dup", new int[] {7}, SchedulerHarness.params(1, 1, 3)), ok);
            ok.await();
            long steps = engine.numSteps();
            Thread.sleep(200);
            assertEquals(steps, engine.numSteps(), "idle engine must not step");
            assertEquals(3, steps);
        }
    }

    @Test
    void parallelChoicesReportCachedPromptTokens() throws Exception {
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        try (LlmEngine engine = engine(runner, 8)) {
            Collector c = new Collector(3);
            int[] prompt = SchedulerHarness.prompt(new SplittableRandom(3), 13);
            engine.addRequest(request("n3", prompt, SchedulerHarness.params(3, 9, 4)), c);
            c.await();
            assertEquals(0, c.last(0).numCachedTokens());
            assertEquals(12, c.last(1).numCachedTokens());
            assertEquals(12, c.last(2).numCachedTokens());
            for (int i = 0; i < 3; i++) assertEquals(4, c.tokens(i).size());
        }
    }

    @Test
    void aThrowingSinkAbortsOnlyItsOwnRequest() throws Exception {
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        try (LlmEngine engine = engine(runner, 8)) {
            java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
            engine.addRequest(request("broken", new int[] {4, 5, 6}, SchedulerHarness.params(1, 1, 40)), out -> {
                if (calls.incrementAndGet() == 2) throw new IllegalStateException("client gone");
            });
            Collector ok = new Collector(1);
            engine.addRequest(request("ok", new int[] {4, 5, 6}, SchedulerHarness.params(1, 1, 40)), ok);
            ok.await();
            assertEquals(40, ok.tokens(0).size());
            awaitIdle(engine);
            assertEquals(2, calls.get(), "no outputs after the sink threw");
            assertEquals(NUM_BLOCKS, engine.stats().numFreeBlocks());
        }
    }

    @Test
    void statsCountAStepBeforeItsOutputsGoOut() throws Exception {
        // No waiting: the last token's receiver reads the stats at once and must see its step (and the freed blocks).
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        try (LlmEngine engine = engine(runner, 8)) {
            for (int i = 0; i < 30; i++) {
                EngineStats before = engine.stats();
                EngineStats[] seen = new EngineStats[1];
                CountDownLatch done = new CountDownLatch(1);
                engine.addRequest(request("r" + i, new int[] {4, 5, 6}, SamplingParams.greedy(3)), out -> {
                    if (out.finished()) {
                        seen[0] = engine.stats();
                        done.countDown();
                    }
                });
                assertTrue(done.await(10, TimeUnit.SECONDS));
                EngineStats after = seen[0];
                assertEquals(1, after.numPromptSteps() - before.numPromptSteps(), "request " + i);
                assertEquals(2, after.numDecodeSteps() - before.numDecodeSteps(), "request " + i);
                assertEquals(after.numTotalBlocks(), after.numFreeBlocks(), "request " + i);
            }
            // Phases are summed once a step's outputs are out, so they show up in the snapshot after it.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (engine.stats().decodePhases().steps() < 60 && System.nanoTime() < deadline) Thread.sleep(5);
            EngineStats s = engine.stats();
            assertEquals(60, s.numDecodeSteps());
            StepPhases p = s.decodePhases();
            assertEquals(60, p.steps());
            assertTrue(p.schedule() > 0 && p.forward() > 0 && p.update() > 0 && p.outputs() > 0, p.toString());
            assertEquals(0, p.inputs() + p.sample(), "the fake runner does not split its step: " + p);
            assertTrue(p.forward() <= s.decodeStepNanos(), p + " within " + s.decodeStepNanos() + " ns of steps");
        }
    }

    private static void awaitIdle(LlmEngine engine) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            EngineStats s = engine.stats();
            if (s.numRunning() == 0 && s.numWaiting() == 0 && s.numFreeBlocks() == s.numTotalBlocks()) return;
            Thread.sleep(5);
        }
        throw new AssertionError("engine did not go idle: " + engine.stats());
    }

    @Test
    void whenTheEngineThreadDiesItsRequestsFailAndNewOnesAreRefusedAtOnce() throws Exception {
        FakeModelRunner runner = new FakeModelRunner(NUM_BLOCKS, BLOCK_SIZE);
        runner.dieWhen = so -> so.sequences().stream().anyMatch(s -> s.requestId().equals("fatal"));
        try (LlmEngine engine = engine(runner, 8)) {
            assertTrue(engine.isAlive());
            Collector fatal = new Collector(1);
            engine.addRequest(request("fatal", new int[] {5, 6, 7}, SamplingParams.greedy(20)), fatal);
            fatal.await();
            assertTrue(fatal.last(0).error() != null, "the request in flight gets an error, not silence");
            for (int i = 0; i < 100 && engine.isAlive(); i++) Thread.sleep(10);
            assertFalse(engine.isAlive());
            assertThrows(EngineStoppedException.class,
                    () -> engine.addRequest(request("late", new int[] {1}, SamplingParams.greedy(2)), new Collector(1)));
        }
    }
}

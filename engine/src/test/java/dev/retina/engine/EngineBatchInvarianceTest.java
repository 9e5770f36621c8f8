package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.retina.engine.model.LlavaModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link LlmEngine} over the real {@link LlavaModelRunner} (tiny dummy LLaVA, CPU): what a request produces must
 * not depend on what else runs beside it, through chunked prefill, preemption and recompute.
 */
class EngineBatchInvarianceTest {
    @TempDir
    static Path dir;
    private static LlavaModel model;

    @BeforeAll
    static void load() throws IOException {
        model = TinyLlava.load(dir, 7);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private record Req(int[] prompt, List<ImageInput> images, SamplingParams params) {
    }

    private static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, maxTokens, 0, List.of(), true, null);
    }

    /** Runs {@code reqs} concurrently on a fresh engine; returns each request's choice-0 tokens and the stats. */
    private static List<List<Integer>> run(EngineConfig cfg, List<Req> reqs, EngineStats[] statsOut) throws Exception {
        int numBlocks = cfg.numBlocks(1, 0);
        List<LlmEngineTest.Collector> collectors = new ArrayList<>();
        try (LlmEngine engine = new LlmEngine(cfg, numBlocks, new LlavaModelRunner(model, numBlocks, cfg.blockSize()))) {
            for (int i = 0; i < reqs.size(); i++) {
                Req r = reqs.get(i);
                LlmEngineTest.Collector c = new LlmEngineTest.Collector(r.params().n());
                collectors.add(c);
                engine.addRequest(new EngineRequest("r" + i, r.prompt(), r.images(), r.params(), List.of(2)), c);
            }
            for (LlmEngineTest.Collector c : collectors) c.await();
            if (statsOut != null) statsOut[0] = settledStats(engine);
        }
        List<List<Integer>> tokens = new ArrayList<>();
        for (LlmEngineTest.Collector c : collectors) {
            assertNull(c.last(0).error());
            tokens.add(c.tokens(0));
        }
        return tokens;
    }

    /** Stats are published after each step, a moment after its outputs went out: wait for an idle snapshot. */
    static EngineStats settledStats(LlmEngine engine) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        EngineStats s = engine.stats();
        while ((s.numRunning() > 0 || s.numWaiting() > 0) && System.nanoTime() < deadline) {
            Thread.sleep(5);
            s = engine.stats();
        }
        return s;
    }

    @Test
    void thirtyTwoConcurrentGreedyRequestsUnderPreemptionEachGiveTheirSoloTokens() throws Exception {
        SplittableRandom rnd = new SplittableRandom(21);
        List<Req> reqs = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            boolean withImage = i % 4 != 3;
            reqs.add(new Req(TinyLlava.prompt(rnd, withImage), withImage ? List.of(TinyLlava.image(rnd)) : List.of(),
                    greedy(6 + i % 7)));
        }
        // Solo: one request at a time, roomy cache.
        EngineConfig roomy = new EngineConfig(4, 64, 4, 64, 64, 0, 0.9);
        List<List<Integer>> solo = new ArrayList<>();
        for (Req r : reqs) solo.add(run(roomy, List.of(r), null).getFirst());
        // Together: 32 at once, 40 blocks of 4 (160 tokens) where the requests need ~1100: preemption is forced.
        EngineConfig tight = new EngineConfig(32, 64, 4, 64, 40, 0, 0.9);
        EngineStats[] stats = new EngineStats[1];
        List<List<Integer>> together = run(tight, reqs, stats);
        assertTrue(stats[0].numPreemptions() > 0, "the small cache should have forced preemptions: " + stats[0]);
        assertEquals(stats[0].numTotalBlocks(), stats[0].numFreeBlocks(), "every block is back in the pool");
        for (int i = 0; i < reqs.size(); i++) {
            assertEquals(reqs.get(i).params().maxTokens(), together.get(i).size(), "request " + i);
            assertEquals(solo.get(i), together.get(i), "request " + i);
        }
    }

    @Test
    void seededSamplingGivesTheSameTokensWhateverRunsBesideIt() throws Exception {
        SplittableRandom rnd = new SplittableRandom(22);
        Req seeded = new Req(TinyLlava.prompt(rnd, true), List.of(TinyLlava.image(rnd)),
                new SamplingParams(1, 0.8f, 0.9f, 30, 0.02f, 4242L, 0.3f, 0.2f, 1.1f, 12, 0, List.of(), true, null));
        EngineConfig cfg = new EngineConfig(8, 48, 4, 64, 48, 0, 0.9);
        List<Integer> alone = run(cfg, List.of(seeded), null).getFirst();
        for (int composition = 0; composition < 2; composition++) {
            List<Req> batch = new ArrayList<>();
            // Seven random neighbours: unseeded or seeded sampling, greedy, images or not; the seeded one in the middle.
            for (int o = 0; o < 7; o++) {
                boolean withImage = rnd.nextBoolean();
                float temperature = rnd.nextInt(3) == 0 ? 0f : 0.5f + rnd.nextFloat();
                Long seed = rnd.nextBoolean() ? null : rnd.nextLong();
                batch.add(new Req(TinyLlava.prompt(rnd, withImage), withImage ? List.of(TinyLlava.image(rnd)) : List.of(),
                        new SamplingParams(1, temperature, 1f, -1, 0f, seed, 0f, 0f, 1f, 4 + rnd.nextInt(12), 0,
                                List.of(), true, null)));
            }
            batch.add(composition == 0 ? 0 : 7, seeded);
            List<List<Integer>> out = run(cfg, batch, null);
            assertEquals(alone, out.get(composition == 0 ? 0 : 7), "composition " + composition);
        }
        assertEquals(12, alone.size());
    }
}

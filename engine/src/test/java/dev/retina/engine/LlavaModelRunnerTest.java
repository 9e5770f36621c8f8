package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import dev.retina.engine.model.LlavaGenerator;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.LoadFormat;
import dev.retina.engine.model.ModelLoadConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The real runner on a tiny random LLaVA (dummy weights, CPU), checked against the model's own greedy loop. */
class LlavaModelRunnerTest {
    private static final int IMAGE_TOKEN = 60;
    private static final int NUM_IMAGE_TOKENS = 16; // 28/7 = 4x4 patches, CLS dropped
    // Tiny LLaVA-1.5-shaped config (transformers 4.x layout): vision 28/7, 2+2 layers, GQA 4 over 2 KV heads.
    private static final String CONFIG = """
            {"vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "image_size": 28, "patch_size": 7, "hidden_act": "quick_gelu",
              "model_type": "clip_vision_model"},
             "text_config": {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
              "rms_norm_eps": 1e-5, "model_type": "llama", "rope_theta": 10000.0},
             "image_token_index": 60, "torch_dtype": "float32", "tie_word_embeddings": false,
             "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "projector_hidden_act": "gelu"}
            """;

    @TempDir
    static Path dir;
    private static LlavaModel model;

    @BeforeAll
    static void load() throws IOException {
        Files.writeString(dir.resolve("config.json"), CONFIG);
        model = LlavaModel.load(dir, new ModelLoadConfig(Device.cpu(), null, LoadFormat.DUMMY, 42));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static int[] prompt(SplittableRandom rnd, boolean withImage) {
        List<Integer> ids = new ArrayList<>(List.of(1));
        for (int i = 0, n = 2 + rnd.nextInt(6); i < n; i++) ids.add(3 + rnd.nextInt(50));
        if (withImage) for (int i = 0; i < NUM_IMAGE_TOKENS; i++) ids.add(IMAGE_TOKEN);
        for (int i = 0, n = 3 + rnd.nextInt(8); i < n; i++) ids.add(3 + rnd.nextInt(50));
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private static float[] pixels(SplittableRandom rnd) {
        float[] p = new float[3 * 28 * 28];
        for (int i = 0; i < p.length; i++) p[i] = (float) rnd.nextGaussian();
        return p;
    }

    @Test
    void batchedChunkedPreemptedGreedyMatchesTheModelsOwnLoop() throws Exception {
        SplittableRandom rnd = new SplittableRandom(11);
        int numRequests = 6;
        int maxTokens = 10;
        Map<String, int[]> prompts = new HashMap<>();
        Map<String, float[]> images = new HashMap<>();
        // Budget 16 tokens per step (one image): image spans get split across chunks; 12 blocks of 4 force preemptions.
        EngineConfig cfg = new EngineConfig(4, 16, 4, 48, 12, 0, 0.9);
        int numBlocks = cfg.numBlocks(1, 0);
        Map<String, LlmEngineTest.Collector> collectors = new HashMap<>();
        LlmEngine engine = new LlmEngine(cfg, numBlocks, new LlavaModelRunner(model, numBlocks, cfg.blockSize()));
        long preemptions;
        try (engine) {
            for (int r = 0; r < numRequests; r++) {
                String id = "r" + r;
                boolean withImage = r % 3 != 2;
                prompts.put(id, prompt(rnd, withImage));
                List<ImageInput> imgs = List.of();
                if (withImage) {
                    images.put(id, pixels(rnd));
                    imgs = List.of(ImageInput.ofPixels(images.get(id), 28, 28, NUM_IMAGE_TOKENS));
                }
                SamplingParams greedy = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, maxTokens, 0, List.of(),
                        true, null);
                LlmEngineTest.Collector c = new LlmEngineTest.Collector(1);
                collectors.put(id, c);
                engine.addRequest(new EngineRequest(id, prompts.get(id), imgs, greedy, List.of(2)), c);
            }
            for (LlmEngineTest.Collector c : collectors.values()) c.await();
            preemptions = engine.stats().numPreemptions();
        }
        assertTrue(preemptions > 0, "the small cache should have forced preemptions");
        LlavaGenerator reference = new LlavaGenerator(model);
        for (String id : prompts.keySet()) {
            LlmEngineTest.Collector c = collectors.get(id);
            assertEquals(null, c.last(0).error());
            int[] expected = reference.greedy(prompts.get(id), images.get(id), images.containsKey(id) ? 1 : 0, maxTokens, 0)
                    .tokenIds();
            assertArrayEquals(expected, c.tokens(0).stream().mapToInt(Integer::intValue).toArray(), id);
        }
    }

    @Test
    void decodesGoFirstInTheBatchYetResultsComeBackInTheSchedulersOrder() {
        int[] table = {0, 1, 2};
        int[] order = LlavaModelRunner.decodesFirst(List.of(seq(1, 0, new int[] {5, 6, 7}, table),
                seq(2, 9, new int[] {8}, table), seq(3, 0, new int[] {4, 4}, table), seq(4, 11, new int[] {9}, table)));
        assertArrayEquals(new int[] {1, 3, 0, 2}, order);

        // Step 2 of two runs on fresh caches: prefill X and decode Y (Y prefilled in step 1), in both orders.
        SplittableRandom rnd = new SplittableRandom(21);
        int[] promptX = prompt(rnd, false);
        int[] promptY = prompt(rnd, false);
        int[] blocksX = {0, 1, 2, 3};
        int[] blocksY = {4, 5, 6, 7};
        TokenLogprobs[][] byOrder = new TokenLogprobs[2][];
        for (int run = 0; run < 2; run++) {
            LlavaModelRunner runner = new LlavaModelRunner(model, 16, 4);
            try {
                RunnerOutput first = runner.execute(new SchedulerOutput(List.of(seq(2, 0, promptY, blocksY)),
                        promptY.length, List.of(), java.util.Set.of()));
                int next = first.sampledTokenIds()[0];
                ScheduledSequence x = seq(1, 0, promptX, blocksX);
                ScheduledSequence y = seq(2, promptY.length, new int[] {next}, blocksY);
                List<ScheduledSequence> step = run == 0 ? List.of(x, y) : List.of(y, x);
                RunnerOutput out = runner.execute(new SchedulerOutput(step, promptX.length + 1, List.of(),
                        java.util.Set.of()));
                TokenLogprobs[] lp = {out.logprobsAt(step.indexOf(x)), out.logprobsAt(step.indexOf(y))};
                byOrder[run] = lp;
            } finally {
                runner.close();
            }
        }
        for (int k = 0; k < 2; k++) {
            assertEquals(byOrder[0][k].tokenId(), byOrder[1][k].tokenId());
            assertArrayEquals(byOrder[0][k].topLogprobs(), byOrder[1][k].topLogprobs(), 1e-5f);
        }
        // X and Y have different contexts, so a swapped result would not match.
        assertTrue(Math.abs(byOrder[0][0].topLogprobs()[0] - byOrder[0][1].topLogprobs()[0]) > 1e-3
                || byOrder[0][0].tokenId() != byOrder[0][1].tokenId());
    }

    /** A greedy sampling sequence with 3 logprobs: a whole prompt ({@code start} 0) or one decode token after it. */
    private static ScheduledSequence seq(long id, int start, int[] tokens, int[] blockTable) {
        SamplingParams greedy = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 8, 0, List.of(), true, 3);
        int[] prompt = start == 0 ? tokens : new int[start];
        return new ScheduledSequence(id, "req" + id, 0, tokens, start, blockTable, true, prompt,
                start == 0 ? new int[0] : tokens, 0.5, greedy, List.of(), List.of());
    }

    @Test
    void seededSamplingIsTheSameAloneAndInABatchAndReturnsLogprobs() throws Exception {
        SplittableRandom rnd = new SplittableRandom(12);
        int[] prompt = prompt(rnd, true);
        float[] px = pixels(rnd);
        SamplingParams seeded = new SamplingParams(2, 0.9f, 0.95f, 20, 0f, 1234L, 0f, 0.2f, 1.1f, 8, 0, List.of(), true, 3);
        EngineConfig cfg = new EngineConfig(8, 64, 4, 80, 64, 0, 0.9);
        List<List<Integer>> alone = new ArrayList<>();
        List<List<Integer>> batched = new ArrayList<>();
        for (int run = 0; run < 2; run++) {
            try (LlmEngine engine = new LlmEngine(cfg, 64, new LlavaModelRunner(model, 64, 4))) {
                List<LlmEngineTest.Collector> others = new ArrayList<>();
                if (run == 1) {
                    for (int o = 0; o < 3; o++) {
                        LlmEngineTest.Collector oc = new LlmEngineTest.Collector(1);
                        others.add(oc);
                        engine.addRequest(new EngineRequest("other" + o, prompt(rnd, false), List.of(),
                                new SamplingParams(1, 1.5f, 1f, -1, 0f, (long) o, 0f, 0f, 1f, 12, 0, List.of(), true, null),
                                List.of()), oc);
                    }
                }
                LlmEngineTest.Collector c = new LlmEngineTest.Collector(2);
                engine.addRequest(new EngineRequest("s", prompt, List.of(ImageInput.ofPixels(px, 28, 28, NUM_IMAGE_TOKENS)),
                        seeded, List.of()), c);
                c.await();
                for (LlmEngineTest.Collector oc : others) oc.await();
                List<List<Integer>> target = run == 0 ? alone : batched;
                for (int choice = 0; choice < 2; choice++) target.add(c.tokens(choice));
                RequestOutput first = c.outputs.getFirst();
                assertNotNull(first.logprobs());
                TokenLogprobs lp = first.logprobs().getFirst();
                assertEquals(3, lp.topTokenIds().length);
                assertTrue(lp.logprob() <= 0 && lp.logprob() >= lp.topLogprobs()[2] - 50);
                assertTrue(lp.topLogprobs()[0] >= lp.topLogprobs()[1]);
            }
        }
        assertEquals(alone, batched);
        assertEquals(8, alone.get(0).size());
    }

    @Test
    void imageFeaturesAreEncodedOncePerRequestAndDroppedWhenItFinishes() {
        SplittableRandom rnd = new SplittableRandom(13);
        Scheduler scheduler = new Scheduler(new SchedulerConfig(4, 16, 64), new BlockManager(32, 4));
        try (LlavaModelRunner runner = new LlavaModelRunner(model, 32, 4)) {
            int[] prompt = prompt(rnd, true);
            SamplingParams p = new SamplingParams(2, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 3, 0, List.of(), true, null);
            List<Sequence> choices = new ArrayList<>();
            for (int i = 0; i < 2; i++)
                choices.add(new Sequence(i, "img", i, prompt, List.of(ImageInput.ofPixels(pixels(rnd), 28, 28,
                        NUM_IMAGE_TOKENS)), p, List.of(), 7, 0));
            scheduler.add(choices);
            int maxHeld = 0;
            while (scheduler.hasWork()) {
                SchedulerOutput so = scheduler.schedule();
                scheduler.update(so, runner.execute(so));
                maxHeld = Math.max(maxHeld, runner.numRequestsWithImages());
            }
            assertEquals(1, maxHeld, "both choices (and the forked tail) use one encoding");
            scheduler.add(List.of(new Sequence(9, "text", 0, prompt(rnd, false), List.of(), SamplingParams.greedy(1),
                    List.of(), 0, 0)));
            SchedulerOutput so = scheduler.schedule();
            assertTrue(so.finishedRequestIds().contains("img"));
            scheduler.update(so, runner.execute(so));
            assertEquals(0, runner.numRequestsWithImages());
        }
    }

    @Test
    void theSameImageInASecondRequestRunsNoEncoderPassAndGivesTheSameTokens() throws Exception {
        SplittableRandom rnd = new SplittableRandom(21);
        int[] prompt = prompt(rnd, true);
        float[] px = pixels(rnd);
        float[] otherPx = pixels(rnd);
        SamplingParams greedy = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 6, 0, List.of(), true, null);
        EngineConfig cfg = new EngineConfig(4, 64, 4, 80, 64, 0, 0.9);
        LlavaModelRunner runner = new LlavaModelRunner(model, 64, 4, 2 * NUM_IMAGE_TOKENS);
        List<List<Integer>> answers = new ArrayList<>();
        List<EncoderCacheStats> after = new ArrayList<>();
        try (LlmEngine engine = new LlmEngine(cfg, 64, runner)) {
            // Same pixels and hash twice, then a different image, then the first again (still cached: 2 entries fit).
            String[] hashes = {"a", "a", "b", "a"};
            for (int r = 0; r < hashes.length; r++) {
                float[] image = hashes[r].equals("a") ? px : otherPx;
                LlmEngineTest.Collector c = new LlmEngineTest.Collector(1);
                engine.addRequest(new EngineRequest("r" + r, prompt,
                        List.of(ImageInput.ofPixels(image, 28, 28, NUM_IMAGE_TOKENS).withContentHash(hashes[r])),
                        greedy, List.of()), c);
                c.await();
                assertEquals(null, c.last(0).error());
                answers.add(c.tokens(0));
                after.add(runner.encoderCacheStats());
            }
        }
        assertEquals(new EncoderCacheStats(1, 0, 1, 1, NUM_IMAGE_TOKENS), after.get(0).counts());
        assertEquals(new EncoderCacheStats(1, 1, 1, 1, NUM_IMAGE_TOKENS), after.get(1).counts(), "second request: no encoder pass");
        assertEquals(new EncoderCacheStats(2, 1, 2, 2, 2 * NUM_IMAGE_TOKENS), after.get(2).counts());
        assertEquals(new EncoderCacheStats(2, 2, 2, 2, 2 * NUM_IMAGE_TOKENS), after.get(3).counts());
        // Two vision-tower passes took time; cache hits add none.
        assertTrue(after.get(1).encoderNanos() == after.get(0).encoderNanos() && after.get(0).encoderNanos() > 0);
        assertTrue(after.get(2).encoderNanos() > after.get(1).encoderNanos());
        assertEquals(answers.get(0), answers.get(1), "cached features give the same answer");
        assertEquals(answers.get(0), answers.get(3));
        int[] expected = new LlavaGenerator(model).greedy(prompt, px, 1, 6, 0).tokenIds();
        assertEquals(java.util.Arrays.stream(expected).boxed().toList(), answers.get(1));
    }

    @Test
    void encoderCacheEvictsLeastRecentlyUsedAndZeroDisablesIt() throws Exception {
        SplittableRandom rnd = new SplittableRandom(22);
        int[] prompt = prompt(rnd, true);
        SamplingParams greedy = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 1, 0, List.of(), true, null);
        EngineConfig cfg = new EngineConfig(4, 64, 4, 80, 64, 0, 0.9);
        for (int capacity : new int[] {NUM_IMAGE_TOKENS, 0}) {
            LlavaModelRunner runner = new LlavaModelRunner(model, 64, 4, capacity);
            try (LlmEngine engine = new LlmEngine(cfg, 64, runner)) {
                for (String hash : new String[] {"a", "b", "a"}) {
                    LlmEngineTest.Collector c = new LlmEngineTest.Collector(1);
                    engine.addRequest(new EngineRequest(hash + System.nanoTime(), prompt,
                            List.of(ImageInput.ofPixels(pixels(rnd), 28, 28, NUM_IMAGE_TOKENS).withContentHash(hash)),
                            greedy, List.of()), c);
                    c.await();
                }
            }
            EncoderCacheStats s = runner.encoderCacheStats();
            assertEquals(3, s.numEncoderPasses(), "capacity " + capacity + ": one entry at most, 'a' was evicted by 'b'");
            assertEquals(0, s.numCacheHits());
            assertEquals(capacity == 0 ? 0 : 1, s.numCachedImages());
        }
    }

    @Test
    void precomputedFeaturesOfTheWrongShapeAreRefusedNamingBothShapes() throws Exception {
        SplittableRandom rnd = new SplittableRandom(23);
        int[] prompt = prompt(rnd, true);
        int hidden = model.config().textConfig().hiddenSize();
        SamplingParams greedy = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 4, 0, List.of(), true, null);
        EngineConfig cfg = new EngineConfig(4, 64, 4, 80, 64, 0, 0.9);
        // The features the model itself would compute, given precomputed, must give the pixel path's answer.
        float[] px = pixels(rnd);
        float[] features;
        try (ai.djl.ndarray.NDManager m = model.manager().newSubManager()) {
            features = model.encodeImages(m.create(px, new ai.djl.ndarray.types.Shape(1, 3, 28, 28))).toFloatArray();
        }
        LlavaModelRunner runner = new LlavaModelRunner(model, 64, 4);
        try (LlmEngine engine = new LlmEngine(cfg, 64, runner)) {
            LlmEngineTest.Collector bad = new LlmEngineTest.Collector(1);
            engine.addRequest(new EngineRequest("bad", prompt,
                    List.of(ImageInput.ofFeatures(new float[NUM_IMAGE_TOKENS * (hidden + 1)], NUM_IMAGE_TOKENS)),
                    greedy, List.of()), bad);
            LlmEngineTest.Collector good = new LlmEngineTest.Collector(1);
            engine.addRequest(new EngineRequest("good", prompt,
                    List.of(ImageInput.ofFeatures(features, NUM_IMAGE_TOKENS)), greedy, List.of()), good);
            bad.await();
            good.await();
            String error = bad.last(0).error();
            assertNotNull(error);
            assertTrue(error.contains("(" + NUM_IMAGE_TOKENS + ", " + hidden + ")") && error.contains((hidden + 1) + " per image token"),
                    error);
            assertEquals(null, good.last(0).error());
            int[] expected = new LlavaGenerator(model).greedy(prompt, px, 1, 4, 0).tokenIds();
            assertEquals(java.util.Arrays.stream(expected).boxed().toList(), good.tokens(0));
            assertEquals(0, runner.encoderCacheStats().numEncoderPasses(), "features skip the vision tower");
        }
    }

    @Test
    void batchedVisionEncodingGivesTheFeaturesOfOneAtATimeAcrossASplit() {
        SplittableRandom rnd = new SplittableRandom(31);
        List<ImageInput> imgs = new ArrayList<>();
        int n = 2 * LlavaModelRunner.MAX_IMAGES_PER_ENCODE + 2; // three vision-tower calls: full, full, 2
        for (int i = 0; i < n; i++) imgs.add(ImageInput.ofPixels(pixels(rnd), 28, 28, NUM_IMAGE_TOKENS));
        try (LlavaModelRunner runner = new LlavaModelRunner(model, 4, 4, 0);
             ai.djl.ndarray.NDManager m = model.manager().newSubManager()) {
            float[] batched = runner.encodeStacked(imgs, m).toFloatArray();
            float[] single = runner.encodeOneAtATime(imgs, m).toFloatArray();
            assertEquals(n * NUM_IMAGE_TOKENS * model.config().textConfig().hiddenSize(), batched.length);
            for (int i = 0; i < single.length; i++) assertEquals(single[i], batched[i], 1e-5, "value " + i);
            assertEquals(2L * n, runner.encoderCacheStats().numEncoderPasses());
        }
    }

    @Test
    void imagesOfRequestsArrivingTogetherAreEncodedInOneStepOnceEachAndGiveTheSameTokens() {
        SplittableRandom rnd = new SplittableRandom(32);
        float[] a = pixels(rnd);
        float[] b = pixels(rnd);
        float[] c = pixels(rnd);
        int[] one = prompt(rnd, true);
        int[] two = prompt(rnd, true);
        int[] twoImages = new int[two.length + NUM_IMAGE_TOKENS + 1];
        System.arraycopy(two, 0, twoImages, 0, two.length);
        twoImages[two.length] = 7;
        java.util.Arrays.fill(twoImages, two.length + 1, twoImages.length, IMAGE_TOKEN);
        int[] three = prompt(rnd, true);
        int[] text = prompt(rnd, false);
        SamplingParams greedy = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 5, 0, List.of(), true, null);
        // r0: image a; r1: images b then a again (same hash: encoded once, the repeat a cache hit); r2: c, no hash.
        List<Sequence> seqs = List.of(
                new Sequence(0, "r0", 0, one, List.of(ImageInput.ofPixels(a, 28, 28, NUM_IMAGE_TOKENS).withContentHash("a")),
                        greedy, List.of(), 1, 0),
                new Sequence(1, "r1", 0, twoImages, List.of(
                        ImageInput.ofPixels(b, 28, 28, NUM_IMAGE_TOKENS).withContentHash("b"),
                        ImageInput.ofPixels(a, 28, 28, NUM_IMAGE_TOKENS).withContentHash("a")), greedy, List.of(), 2, 0),
                new Sequence(2, "r2", 0, three, List.of(ImageInput.ofPixels(c, 28, 28, NUM_IMAGE_TOKENS)), greedy,
                        List.of(), 3, 0),
                new Sequence(3, "r3", 0, text, List.of(), greedy, List.of(), 4, 0));
        Scheduler scheduler = new Scheduler(new SchedulerConfig(8, 256, 80), new BlockManager(64, 4));
        Map<String, List<Integer>> tokens = new HashMap<>();
        try (LlavaModelRunner runner = new LlavaModelRunner(model, 64, 4)) {
            for (Sequence s : seqs) scheduler.add(List.of(s));
            boolean first = true;
            while (scheduler.hasWork()) {
                SchedulerOutput so = scheduler.schedule();
                RunnerOutput out = runner.execute(so);
                if (first) {
                    assertEquals(4, so.sequences().size(), "all four prompts in the first step");
                    assertEquals(new EncoderCacheStats(3, 1, 2, 2, 2 * NUM_IMAGE_TOKENS), runner.encoderCacheStats().counts());
                    first = false;
                }
                int row = 0;
                for (ScheduledSequence s : so.sequences())
                    if (s.sample()) tokens.computeIfAbsent(s.requestId(), k -> new ArrayList<>()).add(out.sampledTokenIds()[row++]);
                scheduler.update(so, out);
            }
            assertEquals(new EncoderCacheStats(3, 1, 2, 2, 2 * NUM_IMAGE_TOKENS), runner.encoderCacheStats().counts());
        }
        LlavaGenerator reference = new LlavaGenerator(model);
        float[] ba = new float[2 * a.length];
        System.arraycopy(b, 0, ba, 0, b.length);
        System.arraycopy(a, 0, ba, b.length, a.length);
        Map<String, int[]> expected = Map.of(
                "r0", reference.greedy(one, a, 1, 5, 0).tokenIds(),
                "r1", reference.greedy(twoImages, ba, 2, 5, 0).tokenIds(),
                "r2", reference.greedy(three, c, 1, 5, 0).tokenIds(),
                "r3", reference.greedy(text, null, 0, 5, 0).tokenIds());
        for (String id : expected.keySet())
            assertArrayEquals(expected.get(id), tokens.get(id).stream().mapToInt(Integer::intValue).toArray(), id);
    }
}

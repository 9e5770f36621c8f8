package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Batching invariances and loading paths of {@link LlavaModel} on a tiny random checkpoint (CPU, float32). */
class LlavaModelTest {
    @TempDir
    static Path dir;
    static LlavaModel model;
    static int[] prompt;      // BOS, 16 image tokens, text
    static float[] pixels;    // (1, 3, 28, 28)

    @BeforeAll
    static void load() throws IOException {
        JsonObject cfg = TinyCheckpoint.config(true, false, "default", -2);
        LlavaConfig config = LlavaConfig.fromJson(cfg.toString());
        TinyCheckpoint.write(dir.resolve("v5"), cfg, TinyCheckpoint.weights(config, 7, "F32"), true, false);
        model = LlavaModel.load(dir.resolve("v5"), ModelLoadConfig.cpu());
        Random rnd = new Random(3);
        prompt = new int[1 + 16 + 12];
        prompt[0] = 1;
        for (int i = 1; i <= 16; i++) prompt[i] = config.imageTokenIndex();
        for (int i = 17; i < prompt.length; i++) prompt[i] = 3 + rnd.nextInt(50);
        pixels = new float[3 * 28 * 28];
        for (int i = 0; i < pixels.length; i++) pixels[i] = (float) rnd.nextGaussian();
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void encodeImagesHasConfiguredTokenCount() {
        try (NDManager step = model.manager().newSubManager()) {
            NDArray features = model.encodeImages(step.create(pixels, new Shape(1, 3, 28, 28)));
            assertEquals(new Shape(1, model.config().numImageTokens(), 32), features.getShape());
        }
    }

    @Test
    void graphWarmUpsAreNoOpsOnTheCpu() {
        // No CUDA graphs on the CPU: engine start must neither encode nor step here, and must leave nothing behind.
        int before = ((ai.djl.ndarray.BaseNDManager) model.manager()).getManagedArrays().size();
        assertEquals(0, model.warmUpVisionGraphs());
        try (KvCache cache = model.newKvCache(4, 16)) {
            assertEquals(0, model.warmUpDecodeGraphs(cache, 8));
        }
        assertEquals(before, ((ai.djl.ndarray.BaseNDManager) model.manager()).getManagedArrays().size());
    }

    @Test
    void theCpuUploadsThroughDjlAndTimesNothingOnADevice() {
        // GpuSpans and DeviceUploads need CUDA: on the CPU the model hands out none and uploads through DJL's create.
        assertNull(model.newGpuSpans());
        assertNull(model.deviceUploads());
        try (NDManager step = model.manager().newSubManager()) {
            assertNull(model.uploadPixels(java.util.List.of(new float[12]), new Shape(1, 3, 2, 2), step));
            NDArray ids = model.uploadTokenIds(new int[] {5, 0, 7}, step);
            assertEquals(DataType.INT32, ids.getDataType());
            assertArrayEquals(new int[] {5, 0, 7}, ids.toIntArray());
            NDArray index = model.imageTokenIndex(new int[] {2, 3}, step);
            assertEquals(DataType.INT64, index.getDataType());
            assertArrayEquals(new long[] {2, 3}, index.toLongArray());
            // the merge through an uploaded index writes the same rows as through positions
            long hidden = model.config().textConfig().hiddenSize();
            NDArray features = step.randomNormal(new Shape(2, hidden));
            NDArray a = model.mergeImageFeatures(step.zeros(new Shape(5, hidden)), new int[] {2, 3}, features);
            NDArray b = model.mergeImageFeatures(step.zeros(new Shape(5, hidden)), index, 2, features);
            assertArrayEquals(a.toFloatArray(), b.toFloatArray());
            assertArrayEquals(features.toFloatArray(), b.get("2:4").toFloatArray());
            assertEquals(0f, b.get("0:2").abs().sum().getFloat());
            assertThrows(IllegalArgumentException.class,
                    () -> model.mergeImageFeatures(step.zeros(new Shape(5, hidden)), index, 3, features));
        }
    }

    @Test
    void stepsLeaveNothingBehindInTheModelManager() {
        int before = ((ai.djl.ndarray.BaseNDManager) model.manager()).getManagedArrays().size();
        new LlavaGenerator(model).greedy(prompt, pixels, 1, 3, 7);
        assertEquals(before, ((ai.djl.ndarray.BaseNDManager) model.manager()).getManagedArrays().size());
    }

    @Test
    void chunkedPrefillMatchesWholePrefill() {
        LlavaGenerator gen = new LlavaGenerator(model);
        LlavaGenerator.Result whole = gen.greedy(prompt, pixels, 1, 6, 0);
        LlavaGenerator.Result chunked = gen.greedy(prompt, pixels, 1, 6, 11); // splits the image span
        assertClose(whole.prefillLastLogits(), chunked.prefillLastLogits(), 1e-5);
        assertArrayEquals(whole.tokenIds(), chunked.tokenIds());
    }

    @Test
    void twoSequencesBatchedMatchAlone() {
        int blockSize = 4;
        int[] textA = {1, 5, 9, 13, 17, 21, 25, 29, 33};             // 9-token prefill
        int[] textB = {1, 40, 41, 42, 43, 44, 45};                    // 6 cached + 1 decode token
        try (KvCache cache = model.newKvCache(16, blockSize)) {
            int[] tableA = {0, 1, 2};
            int[] tableB = {5, 3, 7};
            float[] aloneA;
            float[] aloneB;
            float[] batched;
            try (NDManager step = model.manager().newSubManager()) {
                aloneA = model.forward(model.embedTokens(step.create(textA)),
                        ForwardBatch.single(0, textA.length, tableA, blockSize), cache).toFloatArray();
            }
            try (NDManager step = model.manager().newSubManager()) { // B's first 6 tokens into the cache
                model.forward(model.embedTokens(step.create(java.util.Arrays.copyOf(textB, 6))),
                        ForwardBatch.single(0, 6, tableB, blockSize), cache);
            }
            try (NDManager step = model.manager().newSubManager()) {
                aloneB = model.forward(model.embedTokens(step.create(new int[] {textB[6]})),
                        ForwardBatch.single(6, 1, tableB, blockSize), cache).toFloatArray();
            }
            try (NDManager step = model.manager().newSubManager()) { // A again (rewrites its slots) + B's decode
                int[] ids = new int[textA.length + 1];
                System.arraycopy(textA, 0, ids, 0, textA.length);
                ids[textA.length] = textB[6];
                ForwardBatch batch = ForwardBatch.concat(ForwardBatch.single(0, textA.length, tableA, blockSize),
                        ForwardBatch.single(6, 1, tableB, blockSize));
                NDArray logits = model.forward(model.embedTokens(step.create(ids)), batch, cache);
                assertEquals(new Shape(2, 64), logits.getShape());
                batched = logits.toFloatArray();
            }
            int vocab = 64;
            assertClose(aloneA, java.util.Arrays.copyOfRange(batched, 0, vocab), 1e-5);
            assertClose(aloneB, java.util.Arrays.copyOfRange(batched, vocab, 2 * vocab), 1e-5);
        }
    }

    @Test
    void v4ShardedLayoutLoadsTheSameModel() throws IOException {
        JsonObject cfg = TinyCheckpoint.config(false, false, "default", -2);
        LlavaConfig config = LlavaConfig.fromJson(cfg.toString());
        TinyCheckpoint.write(dir.resolve("v4"), cfg, TinyCheckpoint.weights(config, 7, "F32"), false, true);
        try (LlavaModel v4 = LlavaModel.load(dir.resolve("v4"), ModelLoadConfig.cpu())) {
            LlavaGenerator.Result a = new LlavaGenerator(model).greedy(prompt, pixels, 1, 4, 0);
            LlavaGenerator.Result b = new LlavaGenerator(v4).greedy(prompt, pixels, 1, 4, 0);
            assertArrayEquals(a.prefillLastLogits(), b.prefillLastLogits(), 0f);
            assertArrayEquals(a.tokenIds(), b.tokenIds());
        }
    }

    @Test
    void bf16CheckpointEqualsItsFloat32Widening() throws IOException {
        JsonObject cfg = TinyCheckpoint.config(true, true, "full", -1);
        LlavaConfig config = LlavaConfig.fromJson(cfg.toString());
        Map<String, TinyCheckpoint.Tensor> bf16 = TinyCheckpoint.weights(config, 11, "BF16");
        Map<String, TinyCheckpoint.Tensor> f32 = new java.util.TreeMap<>();
        bf16.forEach((k, t) -> f32.put(k, new TinyCheckpoint.Tensor(t.values(), t.shape(), "F32")));
        TinyCheckpoint.write(dir.resolve("bf16"), cfg, bf16, true, false);
        TinyCheckpoint.write(dir.resolve("f32"), cfg, f32, true, false);
        int[] ids = prompt.clone();
        int[] withCls = new int[ids.length + 1]; // "full" keeps CLS: 17 image tokens
        withCls[0] = 1;
        withCls[1] = config.imageTokenIndex();
        System.arraycopy(ids, 1, withCls, 2, ids.length - 1);
        try (LlavaModel a = LlavaModel.load(dir.resolve("bf16"), ModelLoadConfig.cpu());
             LlavaModel b = LlavaModel.load(dir.resolve("f32"), ModelLoadConfig.cpu())) {
            assertEquals(17, a.config().numImageTokens());
            LlavaGenerator.Result ra = new LlavaGenerator(a).greedy(withCls, pixels, 1, 4, 0);
            LlavaGenerator.Result rb = new LlavaGenerator(b).greedy(withCls, pixels, 1, 4, 0);
            assertArrayEquals(rb.prefillLastLogits(), ra.prefillLastLogits(), 0f);
            assertArrayEquals(rb.tokenIds(), ra.tokenIds());
        }
    }

    @Test
    void dummyLoadNeedsOnlyConfigJson() throws IOException {
        JsonObject cfg = TinyCheckpoint.config(true, true, "default", -2);
        Path only = dir.resolve("dummy");
        java.nio.file.Files.createDirectories(only);
        java.nio.file.Files.writeString(only.resolve("config.json"), cfg.toString());
        ModelLoadConfig load = new ModelLoadConfig(ai.djl.Device.cpu(), null, LoadFormat.DUMMY, 42);
        float[] first;
        try (LlavaModel dummy = LlavaModel.load(only, load)) {
            LlavaGenerator.Result r = new LlavaGenerator(dummy).greedy(prompt, pixels, 1, 3, 0);
            first = r.prefillLastLogits();
            assertEquals(64, first.length);
            for (float x : first) assertTrue(Float.isFinite(x));
        }
        try (LlavaModel again = LlavaModel.load(only, load)) { // same seed, same weights
            assertArrayEquals(first, new LlavaGenerator(again).greedy(prompt, pixels, 1, 1, 0).prefillLastLogits(), 0f);
        }
    }

    @Test
    void matchesScalarReference() throws IOException {
        for (String strategy : new String[] {"default", "full"}) {
            JsonObject cfg = TinyCheckpoint.config(true, strategy.equals("full"), strategy, strategy.equals("full") ? -1 : -2);
            LlavaConfig config = LlavaConfig.fromJson(cfg.toString());
            Map<String, TinyCheckpoint.Tensor> weights = TinyCheckpoint.weights(config, 5, "F32");
            TinyCheckpoint.write(dir.resolve("ref-" + strategy), cfg, weights, true, false);
            int n = config.numImageTokens();
            int[] ids = new int[1 + n + 8];
            ids[0] = 1;
            for (int i = 1; i <= n; i++) ids[i] = config.imageTokenIndex();
            for (int i = n + 1; i < ids.length; i++) ids[i] = 2 + (7 * i) % 55;
            try (LlavaModel m = LlavaModel.load(dir.resolve("ref-" + strategy), ModelLoadConfig.cpu())) {
                LlavaGenerator.Result r = new LlavaGenerator(m).greedy(ids, pixels, 1, 3, 0);
                NaiveLlava ref = new NaiveLlava(config, weights);
                double[][] expected = ref.logits(ids, pixels);
                float[] got = r.prefillLastLogits();
                double max = 0;
                for (int i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - expected[ids.length - 1][i]));
                assertTrue(max < 1e-4, strategy + ": max |logits - scalar reference| = " + max);
                // Decode steps through the cache agree with full recomputation.
                int[] grown = java.util.Arrays.copyOf(ids, ids.length + 2);
                grown[ids.length] = r.tokenIds()[0];
                grown[ids.length + 1] = r.tokenIds()[1];
                double[][] full = ref.logits(grown, pixels);
                for (int step = 0; step < 3; step++) {
                    double[] row = full[ids.length - 1 + step];
                    int best = 0;
                    for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
                    assertEquals(best, r.tokenIds()[step], strategy + " token " + step);
                }
            }
        }
    }

    static void assertClose(float[] expected, float[] actual, double tol) {
        assertEquals(expected.length, actual.length);
        double max = 0;
        for (int i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(expected[i] - actual[i]));
        assertTrue(max <= tol, "max abs diff " + max + " > " + tol);
    }
}

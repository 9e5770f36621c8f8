package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.DataType;
import dev.retina.engine.model.KvCache;
import dev.retina.engine.model.LlavaModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link KvCacheSizer} on CPU and {@link EngineFactory}'s checks, on the tiny dummy LLaVA. */
class EngineFactoryTest {
    @TempDir
    static Path dir;
    private static LlavaModel model;
    // 2 layers x K,V x 2 KV heads x head_dim 8 x 4 tokens x 4 bytes (float32).
    private static final long BYTES_PER_BLOCK_OF_4 = 2L * 2 * 2 * 8 * 4 * 4;

    @BeforeAll
    static void load() throws IOException {
        model = TinyLlava.load(dir, 3);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static EngineConfig config(int maxNumSeqs, int maxNumBatchedTokens, int override, long kvBytes) {
        return new EngineConfig(maxNumSeqs, maxNumBatchedTokens, 4, 64, override, kvBytes, 0.9);
    }

    @Test
    void bytesPerBlockCountsKAndVOfEveryLayerInTheModelsDtype() {
        assertEquals(DataType.FLOAT32, model.dtype());
        assertEquals(BYTES_PER_BLOCK_OF_4, KvCache.bytesPerBlock(model.config(), 4, model.dtype()));
        assertEquals(BYTES_PER_BLOCK_OF_4 / 2, KvCache.bytesPerBlock(model.config(), 4, DataType.FLOAT16));
    }

    @Test
    void cpuBudgetIsDividedByTheBlockSizeInBytesRoundingDown() {
        long budget = 100 * BYTES_PER_BLOCK_OF_4 + BYTES_PER_BLOCK_OF_4 - 1;
        assertEquals(100, KvCacheSizer.numBlocks(model, config(4, 64, 0, budget), null));
        assertEquals((1 << 20) / BYTES_PER_BLOCK_OF_4, (long) KvCacheSizer.numBlocks(model, config(4, 64, 0, 1 << 20), null));
    }

    @Test
    void overrideWinsOverTheBudget() {
        assertEquals(37, KvCacheSizer.numBlocks(model, config(4, 64, 37, 1L << 30), null));
        assertEquals(37, KvCacheSizer.numBlocks(model, config(4, 64, 37, 1), null));
    }

    @Test
    void aBudgetBelowOneMaxModelLenSequenceIsRefused() {
        // maxModelLen 64 = 16 blocks of 4; 15 blocks' worth of bytes is not enough.
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KvCacheSizer.numBlocks(model, config(4, 64, 0, 15 * BYTES_PER_BLOCK_OF_4), null));
        assertTrue(e.getMessage().contains("cannot hold one sequence of maxModelLen 64 (16 blocks)"), e.getMessage());
        assertEquals(16, KvCacheSizer.numBlocks(model, config(4, 64, 0, 16 * BYTES_PER_BLOCK_OF_4), null));
    }

    @Test
    void anImageLargerThanOneStepsTokenBudgetIsRefusedAtStart() {
        ImageInput blank = EngineFactory.blankImage(model);
        assertEquals(TinyLlava.NUM_IMAGE_TOKENS, blank.numImageTokens());
        assertEquals(3 * TinyLlava.SIDE * TinyLlava.SIDE, blank.pixelValues().length);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> EngineFactory.start(model, config(4, 15, 0, 1L << 20), blank));
        assertEquals("--max-num-batched-tokens 15 is smaller than one image's 16 tokens; raise it to at least 16",
                e.getMessage());
    }

    @Test
    void startSizesTheCacheAndRunsARequestWithAnImageAtTheExactBudget() throws Exception {
        ImageInput blank = EngineFactory.blankImage(model);
        EngineFactory.Loaded loaded = EngineFactory.start(model, config(4, 16, 0, 40 * BYTES_PER_BLOCK_OF_4), blank);
        // Not loaded.close(): that would close the shared model; the engine closes its runner and cache.
        try (LlmEngine engine = loaded.engine()) {
            assertEquals(40, loaded.numBlocks());
            assertEquals(40, engine.stats().numTotalBlocks());
            assertEquals("float32", loaded.dtypeName());
            LlmEngineTest.Collector c = new LlmEngineTest.Collector(1);
            engine.addRequest(new EngineRequest("img", TinyLlava.prompt(new SplittableRandom(1), true),
                    List.of(TinyLlava.image(new SplittableRandom(2))), SamplingParams.greedy(3), List.of()), c);
            c.await();
            assertEquals(null, c.last(0).error());
            assertEquals(FinishReason.LENGTH, c.last(0).finishReason());
        }
    }
}

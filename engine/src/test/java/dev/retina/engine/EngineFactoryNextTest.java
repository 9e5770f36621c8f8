package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.retina.engine.model.LlavaConfig;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.ModelLoadConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * LLaVA-NeXT's worst case for KV sizing on the llava-next-tiny fixture (30-pixel tiles, 6-pixel patches: 25 patches
 * a tile; pinpoints 30x60, 60x30, 60x60, 90x30, 30x90): the profile input is the 60x60 pinpoint's 2x2 grid plus the
 * base tile, 135 tokens (25 + 10 rows x (10 + 1 newline)), as transformers counts a 512x512 image.
 */
class EngineFactoryNextTest {
    static final String CASE = "llava-next-tiny";
    static Path modelDir;
    static LlavaModel model;

    @BeforeAll
    static void load() throws IOException {
        String dir = System.getProperty("retina.fixtures");
        modelDir = dir == null ? null : Path.of(dir).resolve("models").resolve(CASE);
        if (modelDir == null || !Files.isRegularFile(modelDir.resolve("config.json"))) return;
        model = LlavaModel.load(modelDir, ModelLoadConfig.cpu());
    }

    @AfterAll
    static void close() {
        if (model != null) model.close();
    }

    private static EngineConfig config(int maxNumBatchedTokens) {
        return new EngineConfig(4, maxNumBatchedTokens, 16, 512, 0, 1L << 24, 0.9);
    }

    @Test
    void profileInputIsTheLargestPinpointsTilesPlusTheBaseTile() {
        assumeTrue(model != null, "fixtures not present");
        ImageInput blank = EngineFactory.blankImage(model);
        assertEquals(5, blank.numTiles(), "2x2 grid + base tile");
        assertEquals(30, blank.height());
        assertEquals(30, blank.width());
        assertEquals(5 * 3 * 30 * 30, blank.pixelValues().length);
        assertArrayEquals(new int[] {60, 60}, new int[] {blank.imageHeight(), blank.imageWidth()});
        assertEquals(135, blank.numImageTokens());
        assertEquals(135, EngineFactory.maxImageTokens(model.config()));
        assertNull(blank.contentHash(), "never cached");
    }

    @Test
    void tooFewBatchedTokensForTheLargestImageAreRefusedWithTheNumbers() {
        assumeTrue(model != null, "fixtures not present");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> EngineFactory.start(model, config(134), EngineFactory.blankImage(model)));
        assertEquals("--max-num-batched-tokens 134 is smaller than one image's 135 tokens; raise it to at least 135",
                e.getMessage());
    }

    @Test
    void theProfilingStepRunsTheTiledImageThroughTheRunner() {
        // The GPU sizing step, run here on CPU: the blank tiles must encode, pack to 135 features and merge.
        assumeTrue(model != null, "fixtures not present");
        assertEquals(135, KvCacheSizer.profile(model, config(135), EngineFactory.blankImage(model)));
        assertEquals(135, KvCacheSizer.profile(model, config(300), EngineFactory.blankImage(model)));
    }

    @Test
    void theTokenCheckCoversAPinpointWithFewerTilesButMoreTokens() throws IOException {
        // 30x240 is a 1x8 grid (9 tiles with the base, 25 + 5 x (40 + 1) = 230 tokens); 210x30 a 7x1 grid (8 tiles,
        // 25 + 35 x (5 + 1) = 235 tokens). The profile takes the most tiles, the token check the most tokens.
        assumeTrue(model != null, "fixtures not present");
        String json = Files.readString(modelDir.resolve("config.json"));
        String pinpoints = json.substring(json.indexOf("\"image_grid_pinpoints\""), json.indexOf("\"image_seq_length\""));
        LlavaConfig odd = LlavaConfig.fromJson(json.replace(pinpoints,
                "\"image_grid_pinpoints\": [[30, 240], [210, 30]],\n  "));
        ImageInput blank = EngineFactory.blankImage(odd);
        assertEquals(9, blank.numTiles());
        assertEquals(230, blank.numImageTokens());
        assertEquals(235, EngineFactory.maxImageTokens(odd));
        assertEquals(235, odd.numImageTokens(210, 30));
    }
}

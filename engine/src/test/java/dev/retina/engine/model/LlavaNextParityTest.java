package dev.retina.engine.model;

import ai.djl.util.JsonUtils;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * LLaVA-NeXT parity with transformers' {@code LlavaNextForConditionalGeneration} on the committed llava-next-tiny
 * fixture: per-image token counts as {@code LlavaNextProcessor} computes them, and for each prompt (six aspect ratios
 * from 1:20 to 20:1 and 1x1, plus two images of different token counts in one prompt) the last-position logits within
 * 1e-4 of HF's float64 logits and 32 identical greedy tokens. Tiles come from HF's processor (golden npz).
 */
class LlavaNextParityTest {
    static final String CASE = "llava-next-tiny";
    static Path root;
    static JsonObject golden;
    static Path tilesNpz;
    static LlavaModel model;

    @BeforeAll
    static void load() throws IOException {
        String dir = System.getProperty("retina.fixtures");
        root = dir == null ? null : Path.of(dir);
        if (root == null || !Files.isDirectory(root.resolve("models").resolve(CASE))) return;
        golden = JsonUtils.GSON.fromJson(Files.readString(root.resolve("golden").resolve(CASE + ".json")),
                JsonObject.class);
        tilesNpz = root.resolve("golden").resolve("pixels_" + CASE + ".npz");
        model = LlavaModel.load(root.resolve("models").resolve(CASE), ModelLoadConfig.cpu());
    }

    @AfterAll
    static void close() {
        if (model != null) model.close();
    }

    @Test
    void tokenCountsAndTilesMatchTheProcessor() {
        assumeTrue(model != null, "fixtures not present");
        assertTrue(model.config().isNext());
        JsonObject images = golden.getAsJsonObject("images");
        for (String name : images.keySet()) {
            JsonObject info = images.getAsJsonObject(name);
            int h = info.getAsJsonArray("image_size").get(0).getAsInt();
            int w = info.getAsJsonArray("image_size").get(1).getAsInt();
            assertEquals(info.get("num_image_tokens").getAsInt(), model.numImageTokens(h, w), name + " tokens");
            assertEquals(info.get("num_tiles").getAsInt(), model.config().numTiles(h, w), name + " tiles");
            System.out.printf("%s %s %dx%d: %d tiles, %d image tokens%n", CASE, name, w, h,
                    model.config().numTiles(h, w), model.numImageTokens(h, w));
        }
    }

    @TestFactory
    Stream<DynamicTest> promptsMatchTransformers() {
        assumeTrue(model != null, "fixtures not present");
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonElement e : golden.getAsJsonArray("prompts")) {
            JsonObject p = e.getAsJsonObject();
            tests.add(DynamicTest.dynamicTest(CASE + " / " + p.getAsJsonArray("images"), () -> check(p)));
        }
        JsonObject multi = golden.getAsJsonObject("multi_image_prompt");
        tests.add(DynamicTest.dynamicTest(CASE + " / two images " + multi.getAsJsonArray("images"), () -> check(multi)));
        return tests.stream();
    }

    private static void check(JsonObject prompt) throws IOException {
        List<LlavaGenerator.TiledImage> images = new ArrayList<>();
        JsonArray names = prompt.getAsJsonArray("images");
        JsonArray counts = prompt.getAsJsonArray("num_image_tokens");
        int expectedTokens = 0;
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i).getAsString();
            JsonArray size = golden.getAsJsonObject("images").getAsJsonObject(name).getAsJsonArray("image_size");
            Npz.Array a = Npz.read(tilesNpz, name);
            images.add(new LlavaGenerator.TiledImage(a.data(), (int) a.shape()[0], size.get(0).getAsInt(),
                    size.get(1).getAsInt()));
            assertEquals(counts.get(i).getAsInt(), model.numImageTokens(size.get(0).getAsInt(), size.get(1).getAsInt()));
            expectedTokens += counts.get(i).getAsInt();
        }
        int[] inputIds = LlavaParityTest.ints(prompt.getAsJsonArray("input_ids"));
        int placeholders = 0;
        for (int id : inputIds) if (id == model.config().imageTokenIndex()) placeholders++;
        assertEquals(expectedTokens, placeholders);

        LlavaGenerator.Result r = new LlavaGenerator(model).greedyTiled(inputIds, images,
                LlavaParityTest.NUM_GREEDY, 0);
        JsonArray lastLogits = prompt.getAsJsonArray("last_logits");
        assertEquals(lastLogits.size(), r.prefillLastLogits().length);
        double maxDiff = 0;
        for (int i = 0; i < lastLogits.size(); i++)
            maxDiff = Math.max(maxDiff, Math.abs(lastLogits.get(i).getAsDouble() - r.prefillLastLogits()[i]));
        System.out.printf("%s %s: max |logits - HF| = %.3g (min greedy margin %.3g)%n", CASE, names, maxDiff,
                prompt.get("min_margin").getAsDouble());
        assertTrue(maxDiff <= LlavaParityTest.LOGITS_TOLERANCE, "max |logits - HF float64| = " + maxDiff);
        assertArrayEquals(LlavaParityTest.ints(prompt.getAsJsonArray("greedy_tokens")), r.tokenIds(),
                "greedy tokens differ from HF");
    }
}

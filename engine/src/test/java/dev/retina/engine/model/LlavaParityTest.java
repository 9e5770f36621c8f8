package dev.retina.engine.model;

import ai.djl.util.JsonUtils;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
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
 * Parity with Hugging Face transformers on the committed fixtures (tools/make_fixtures.py): for every model case and
 * prompt, the prompt's last-position logits within 1e-4 of HF's float64 logits, and 32 greedy tokens identical
 * (EOS ignored), on CPU in float32 through the paged KV cache.
 */
class LlavaParityTest {
    static final double LOGITS_TOLERANCE = 1e-4;
    static final int NUM_GREEDY = 32;

    static final java.util.Map<Path, LlavaModel> opened = new java.util.HashMap<>();

    static Path fixtures() {
        String dir = System.getProperty("retina.fixtures");
        return dir == null ? null : Path.of(dir);
    }

    @TestFactory
    Stream<DynamicTest> matchesTransformers() throws IOException {
        Path root = fixtures();
        assumeTrue(root != null && Files.isDirectory(root.resolve("models")), "fixtures not present");
        List<DynamicTest> tests = new ArrayList<>();
        try (var cases = Files.list(root.resolve("models"))) {
            for (Path modelDir : cases.sorted().toList()) {
                String name = modelDir.getFileName().toString();
                Path golden = root.resolve("golden").resolve(name + ".json");
                if (!Files.exists(golden)) continue;
                JsonObject g = JsonUtils.GSON.fromJson(Files.readString(golden), JsonObject.class);
                if (g.has("image_grid_pinpoints")) continue; // LLaVA-NeXT: LlavaNextParityTest
                JsonArray prompts = g.getAsJsonArray("prompts");
                for (int i = 0; i < prompts.size(); i++) {
                    JsonObject p = prompts.get(i).getAsJsonObject();
                    tests.add(DynamicTest.dynamicTest(name + " / " + p.get("image").getAsString(),
                            () -> checkPrompt(modelDir, root.resolve("golden").resolve("pixels_" + name + ".npz"), g, p)));
                }
            }
        }
        assumeTrue(!tests.isEmpty(), "no golden cases");
        return tests.stream();
    }

    /**
     * Two images in one user message (golden/llava15-336-mha-multi.json): both images' features land at their own
     * placeholder runs; logits within 1e-4 and 32 greedy tokens identical.
     */
    @org.junit.jupiter.api.Test
    void twoImagesInOnePromptMatchTransformers() throws IOException {
        Path root = fixtures();
        assumeTrue(root != null && Files.exists(root.resolve("golden").resolve("llava15-336-mha-multi.json")),
                "fixtures not present");
        JsonObject g = JsonUtils.GSON.fromJson(Files.readString(root.resolve("golden").resolve("llava15-336-mha-multi.json")),
                JsonObject.class);
        LlavaModel model = model(root.resolve("models").resolve(g.get("case").getAsString()));
        JsonObject p = g.getAsJsonArray("prompts").get(0).getAsJsonObject();
        JsonArray names = p.getAsJsonArray("images");
        int plane = 3 * 336 * 336;
        float[] pixels = new float[names.size() * plane]; // (2, 3, 336, 336)
        for (int i = 0; i < names.size(); i++) {
            Npz.Array a = Npz.read(root.resolve("golden").resolve("pixels_llava15-336-mha.npz"), names.get(i).getAsString());
            System.arraycopy(a.data(), 0, pixels, i * plane, plane);
        }
        int[] inputIds = ints(p.getAsJsonArray("input_ids"));
        int numImageTokens = 0;
        for (int id : inputIds) if (id == model.config().imageTokenIndex()) numImageTokens++;
        assertEquals(2 * model.config().numImageTokens(), numImageTokens);
        LlavaGenerator.Result r = new LlavaGenerator(model).greedy(inputIds, pixels, names.size(), NUM_GREEDY, 0);
        JsonArray lastLogits = p.getAsJsonArray("last_logits");
        double maxDiff = 0;
        for (int i = 0; i < lastLogits.size(); i++)
            maxDiff = Math.max(maxDiff, Math.abs(lastLogits.get(i).getAsDouble() - r.prefillLastLogits()[i]));
        System.out.printf("llava15-336-mha two images %s: max |logits - HF| = %.3g%n", names, maxDiff);
        assertTrue(maxDiff <= LOGITS_TOLERANCE, "max |logits - HF float64| = " + maxDiff);
        assertArrayEquals(ints(p.getAsJsonArray("greedy_tokens")), r.tokenIds(), "greedy tokens differ from HF");
    }

    /** One loaded model per case, shared by its prompts. */
    private static LlavaModel model(Path dir) throws IOException {
        LlavaModel m = opened.get(dir);
        if (m == null) {
            m = LlavaModel.load(dir, ModelLoadConfig.cpu());
            opened.put(dir, m);
        }
        return m;
    }

    private static void checkPrompt(Path modelDir, Path pixelsNpz, JsonObject golden, JsonObject prompt)
            throws IOException {
        LlavaModel model = model(modelDir);
        assertEquals(golden.get("num_image_tokens").getAsInt(), model.config().numImageTokens());
        assertEquals(golden.get("image_token_id").getAsInt(), model.config().imageTokenIndex());
        int[] inputIds = ints(prompt.getAsJsonArray("input_ids"));
        int[] expectedTokens = ints(prompt.getAsJsonArray("greedy_tokens"));
        JsonArray lastLogits = prompt.getAsJsonArray("last_logits");
        Npz.Array pixels = Npz.read(pixelsNpz, prompt.get("image").getAsString());
        assertEquals(3, pixels.shape()[0]);

        LlavaGenerator.Result r = new LlavaGenerator(model).greedy(inputIds, pixels.data(), 1, NUM_GREEDY, 0);
        assertEquals(lastLogits.size(), r.prefillLastLogits().length);
        double maxDiff = 0;
        for (int i = 0; i < lastLogits.size(); i++)
            maxDiff = Math.max(maxDiff, Math.abs(lastLogits.get(i).getAsDouble() - r.prefillLastLogits()[i]));
        System.out.printf("%s %s: max |logits - HF| = %.3g%n", modelDir.getFileName(), prompt.get("image").getAsString(),
                maxDiff);
        assertTrue(maxDiff <= LOGITS_TOLERANCE, "max |logits - HF float64| = " + maxDiff);
        assertArrayEquals(expectedTokens, r.tokenIds(), "greedy tokens differ from HF");
    }

    static int[] ints(JsonArray a) {
        int[] out = new int[a.size()];
        int i = 0;
        for (JsonElement e : a) out[i++] = e.getAsInt();
        return out;
    }

    @AfterAll
    static void closeModels() {
        opened.values().forEach(LlavaModel::close);
        opened.clear();
    }
}

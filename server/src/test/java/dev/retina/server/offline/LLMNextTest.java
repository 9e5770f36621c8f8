package dev.retina.server.offline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.FinishReason;
import dev.retina.engine.SamplingParams;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.Device;
import dev.retina.server.config.EngineArgs;
import dev.retina.vision.ImageDecoder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The offline API on the llava-next-tiny fixture (CPU, float32): anyres tiles and per-image token counts through the
 * server's image loader give transformers' prompt ids and greedy tokens at several aspect ratios and for two images.
 */
class LLMNextTest {
    static final String CASE = "llava-next-tiny";
    static final Path FIXTURES = LLMTest.FIXTURES;
    static final Path MODEL_DIR = FIXTURES.resolve("models").resolve(CASE);
    static JsonNode golden;
    static LLM llm;

    @BeforeAll
    static void load() throws Exception {
        assumeTrue(Files.isRegularFile(MODEL_DIR.resolve("config.json")), "fixtures not present");
        golden = new ObjectMapper().readTree(FIXTURES.resolve("golden").resolve(CASE + ".json").toFile());
        llm = LLM.builder(MODEL_DIR.toString()).device(Device.CPU).maxModelLen(1024)
                .engine(new EngineArgs(8, 1024, 16, 0.9, 1L << 28, 1024)).build();
    }

    @AfterAll
    static void close() {
        if (llm != null) llm.close();
    }

    static Path image(String name) {
        return FIXTURES.resolve("images").resolve(name + ".png");
    }

    static List<ImageData> images(JsonNode prompt) {
        List<ImageData> out = new ArrayList<>();
        prompt.get("images").forEach(n -> out.add(ImagePixelData.of(image(n.asText()))));
        return out;
    }

    static Prompt greedy(String text, JsonNode prompt) {
        return new Prompt(text, null, images(prompt), SamplingParams.greedy(prompt.get("greedy_tokens").size()));
    }

    static void assertMatchesGolden(JsonNode prompt, RequestResult r, String id) {
        assertArrayEquals(LLMTest.ints(prompt.get("input_ids")), r.promptTokenIds(), id + ": prompt ids");
        CompletionOutput out = r.outputs().getFirst();
        assertArrayEquals(LLMTest.ints(prompt.get("greedy_tokens")), out.tokenIds(), id + ": greedy tokens");
        assertEquals(FinishReason.LENGTH, out.finishReason(), id);
    }

    @Test
    void everyAspectRatioGivesTransformersPromptIdsAndGreedyTokens() {
        // astronaut 512x512 (5 tiles, 135 tokens), coffee 600x400 and chelsea 451x300 (91), wide 400x20 (41),
        // tall 15x300 (55), one 1x1 (60): every pinpoint shape and unpadding direction of the fixture config.
        String text = golden.get("rendered_prompt").asText();
        JsonNode cases = golden.get("prompts");
        List<Prompt> prompts = new ArrayList<>();
        for (JsonNode c : cases) prompts.add(greedy(text, c));
        List<RequestResult> results = llm.generate(prompts);
        for (int i = 0; i < cases.size(); i++) {
            JsonNode c = cases.get(i);
            String name = c.get("images").get(0).asText();
            assertEquals(c.get("num_image_tokens").get(0).asInt(),
                    golden.get("images").get(name).get("num_image_tokens").asInt());
            assertMatchesGolden(c, results.get(i), name);
        }
    }

    @Test
    void twoImagesOfDifferentSizesInOnePrompt() {
        JsonNode two = golden.get("multi_image_prompt"); // coffee (91 tokens) then wide (41)
        RequestResult r = llm.generate(greedy(two.get("rendered_prompt").asText(), two));
        assertMatchesGolden(two, r, "coffee+wide");
    }

    @Test
    void seedFormRunMustEqualThatImagesTokenCount() throws Exception {
        JsonNode astronaut = golden.get("prompts").get(0); // 135 tokens
        assertEquals("astronaut", astronaut.get("images").get(0).asText());
        String single = golden.get("rendered_prompt").asText();
        ImagePixelData decoded = ImagePixelData.of(ImageDecoder.decode(Files.readAllBytes(image("astronaut"))));
        RequestResult seed = llm.generate(Prompt.of(single.replace("<image>", "<image>".repeat(135)),
                SamplingParams.greedy(astronaut.get("greedy_tokens").size()), decoded));
        assertMatchesGolden(astronaut, seed, "seed form");

        // LLaVA-1.5's fixed count (the base tile's 25) is not this image's count.
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> llm.generate(Prompt.of(
                single.replace("<image>", "<image>".repeat(25)), SamplingParams.greedy(2), decoded)));
        assertEquals("the prompt has a run of 25 image placeholders: neither one placeholder per image nor the "
                + "image tokens of image(s) 0.. (135)", e.getMessage());

        // Two images pre-expanded back to back: the run is the sum of their counts (91 + 41).
        JsonNode two = golden.get("multi_image_prompt");
        String joined = "USER: " + "<image>".repeat(91 + 41) + "\nWhat is shown in this image? ASSISTANT:";
        RequestResult r = llm.generate(new Prompt(joined, null, images(two), SamplingParams.greedy(2)));
        int[] ids = r.promptTokenIds();
        int numPlaceholders = 0;
        for (int id : ids) if (id == llm.imageTokenId()) numPlaceholders++;
        assertEquals(91 + 41, numPlaceholders);
    }

    @Test
    void placeholdersAndImagesMustAgree() {
        String single = golden.get("rendered_prompt").asText();
        List<ImageData> two = images(golden.get("multi_image_prompt"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> llm.generate(new Prompt(single, null, two, SamplingParams.greedy(2))));
        assertEquals("the prompt has placeholders for 1 image(s) but carries 2 image(s)", e.getMessage());
    }

    @Test
    void startupRefusesABatchTokenBudgetBelowTheLargestImage() {
        // The same startEngine path as `retina serve`: a 60x60-pinpoint image takes 135 tokens, so 134 cannot run it.
        ConfigException e = assertThrows(ConfigException.class, () -> LLM.builder(MODEL_DIR.toString())
                .device(Device.CPU).maxModelLen(1024).engine(new EngineArgs(4, 134, 16, 0.9, 1L << 24, 256)).build());
        assertEquals("--max-num-batched-tokens 134 is smaller than one image's 135 tokens; raise it to at least 135",
                e.getMessage());
    }
}

package dev.retina.server.offline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.FinishReason;
import dev.retina.engine.SamplingParams;
import dev.retina.server.config.Device;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.ImageInputType;
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
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The offline API on the llava15-336-mha fixture (CPU, float32) against transformers' golden greedy tokens. */
class LLMTest {
    static final String CASE = "llava15-336-mha";
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));
    static final Path MODEL_DIR = FIXTURES.resolve("models").resolve(CASE);
    static JsonNode golden;
    static LLM llm;

    @BeforeAll
    static void load() throws Exception {
        assumeTrue(Files.isRegularFile(MODEL_DIR.resolve("config.json")), "fixtures not present");
        golden = new ObjectMapper().readTree(FIXTURES.resolve("golden").resolve(CASE + ".json").toFile());
        llm = LLM.builder(MODEL_DIR.toString()).device(Device.CPU).maxModelLen(1024)
                .engine(new EngineArgs(8, 1024, 16, 0.9, 1L << 30, 256)).build();
    }

    @AfterAll
    static void close() {
        if (llm != null) llm.close();
    }

    static Path image(int prompt) {
        return FIXTURES.resolve("images").resolve(golden.get("prompts").get(prompt).get("image").asText() + ".png");
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }

    @Test
    void imagePromptsGiveTransformersGreedyTokensInInputOrder() throws Exception {
        String text = golden.get("rendered_prompt").asText(); // one <image> placeholder
        List<Prompt> prompts = new ArrayList<>();
        JsonNode cases = golden.get("prompts");
        for (int i = 0; i < cases.size(); i++) {
            // Each input kind once: a path, encoded bytes, and (below) a decoded image.
            ImageData data = i % 2 == 0 ? ImagePixelData.of(image(i)) : ImagePixelData.of(Files.readAllBytes(image(i)));
            prompts.add(Prompt.of(text, SamplingParams.greedy(cases.get(i).get("greedy_tokens").size()), data));
        }
        List<RequestResult> results = llm.generate(prompts);
        assertEquals(cases.size(), results.size());
        for (int i = 0; i < cases.size(); i++) {
            RequestResult r = results.get(i);
            assertArrayEquals(ints(cases.get(i).get("input_ids")), r.promptTokenIds(), "prompt " + i);
            assertEquals(1, r.outputs().size());
            CompletionOutput out = r.outputs().getFirst();
            assertArrayEquals(ints(cases.get(i).get("greedy_tokens")), out.tokenIds(),
                    "prompt " + i + " (" + cases.get(i).get("image").asText() + ")");
            assertEquals(FinishReason.LENGTH, out.finishReason());
            assertTrue(out.text() != null && !out.text().isEmpty());
            assertTrue(r.metrics().firstTokenNanos() >= r.metrics().arrivalNanos());
            assertTrue(r.metrics().finishedNanos() >= r.metrics().firstTokenNanos());
        }
        // The engine publishes a step's stats (blocks freed) before its outputs go out, so no waiting is needed.
        assertEquals(llm.engineStats().numTotalBlocks(), llm.engineStats().numFreeBlocks(), "all blocks returned");
    }

    @Test
    void seedFormPromptWithRepeatedPlaceholderEqualsSinglePlaceholderForm() throws Exception {
        String single = golden.get("rendered_prompt").asText();
        String seedForm = single.replace("<image>", "<image>".repeat(llm.numImageTokens()));
        ImageData img = ImagePixelData.of(dev.retina.vision.ImageDecoder.decode(Files.readAllBytes(image(1))));
        List<RequestResult> r = llm.generate(List.of(Prompt.of(single, SamplingParams.greedy(8), img),
                Prompt.of(seedForm, SamplingParams.greedy(8), img)));
        assertArrayEquals(r.get(0).promptTokenIds(), r.get(1).promptTokenIds());
        assertArrayEquals(ints(golden.get("prompts").get(1).get("input_ids")), r.get(1).promptTokenIds());
        assertArrayEquals(r.get(0).outputs().getFirst().tokenIds(), r.get(1).outputs().getFirst().tokenIds());
        assertEquals(r.get(0).outputs().getFirst().text(), r.get(1).outputs().getFirst().text());
    }

    @Test
    void placeholdersMustMatchTheImages() throws Exception {
        String single = golden.get("rendered_prompt").asText();
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> llm.generate(Prompt.of(single, SamplingParams.greedy(2))));
        assertEquals("the prompt has placeholders for 1 image(s) but carries 0 image(s)", none.getMessage());
        String broken = single.replace("<image>", "<image>".repeat(3));
        IllegalArgumentException run = assertThrows(IllegalArgumentException.class,
                () -> llm.generate(Prompt.of(broken, SamplingParams.greedy(2), ImagePixelData.of(image(0)))));
        assertTrue(run.getMessage().contains("run of 3 image placeholders"), run.getMessage());
    }

    @Test
    void imageFeaturesAreRefusedByAPixelModelAndCheckedForShape() throws Exception {
        String single = golden.get("rendered_prompt").asText();
        int hidden = golden.path("text_hidden_size").asInt(64); // the fixture's text_config.hidden_size
        ImageFeatureData right = new ImageFeatureData(new float[576 * hidden], 576, hidden);
        IllegalArgumentException pixelModel = assertThrows(IllegalArgumentException.class,
                () -> llm.generate(Prompt.of(single, SamplingParams.greedy(2), right)));
        assertTrue(pixelModel.getMessage().contains("image_input_type image_features"), pixelModel.getMessage());

        try (LLM features = LLM.builder(MODEL_DIR.toString()).device(Device.CPU).maxModelLen(1024)
                .imageInputType(ImageInputType.IMAGE_FEATURES)
                .engine(new EngineArgs(4, 1024, 16, 0.9, 1L << 30, 128)).build()) {
            ImageFeatureData wrong = new ImageFeatureData(new float[575 * hidden], 575, hidden);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> features.generate(Prompt.of(single, SamplingParams.greedy(2), wrong)));
            assertEquals("image 0: image features have shape (575, " + hidden + "), expected (576, " + hidden + ")",
                    e.getMessage());
            IllegalArgumentException pixels = assertThrows(IllegalArgumentException.class,
                    () -> features.generate(Prompt.of(single, SamplingParams.greedy(2), ImagePixelData.of(image(0)))));
            assertTrue(pixels.getMessage().contains("give ImageFeatureData"), pixels.getMessage());
            // The right shape runs through the engine (the vision tower skipped).
            RequestResult ok = features.generate(Prompt.of(single, SamplingParams.greedy(3), right));
            assertEquals(3, ok.outputs().getFirst().tokenIds().length);
        }
    }

    @Test
    void firstTokenLogprobsMatchAFloat64ReferenceFromTransformersLogits() throws Exception {
        // Reference: log_softmax, in float64, of transformers' float64 last-position logits for this prompt.
        JsonNode prompt = golden.get("prompts").get(0);
        JsonNode logits = prompt.get("last_logits");
        double max = Double.NEGATIVE_INFINITY;
        for (JsonNode v : logits) max = Math.max(max, v.asDouble());
        double sum = 0;
        for (JsonNode v : logits) sum += Math.exp(v.asDouble() - max);
        double logZ = max + Math.log(sum);
        double[] reference = new double[logits.size()];
        for (int i = 0; i < reference.length; i++) reference[i] = logits.get(i).asDouble() - logZ;

        SamplingParams params = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 1, 0, List.of(), true, 5);
        RequestResult r = llm.generate(Prompt.of(golden.get("rendered_prompt").asText(), params,
                ImagePixelData.of(image(0))));
        dev.retina.engine.TokenLogprobs first = r.outputs().getFirst().logprobs().getFirst();
        assertEquals(prompt.get("greedy_tokens").get(0).asInt(), first.tokenId());
        assertEquals(reference[first.tokenId()], first.logprob(), 1e-4, "chosen token's logprob");
        assertEquals(5, first.topTokenIds().length);
        Integer[] order = new Integer[reference.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        java.util.Arrays.sort(order, (a, b) -> Double.compare(reference[b], reference[a]));
        for (int k = 0; k < 5; k++) {
            assertEquals(order[k], first.topTokenIds()[k], "top-" + (k + 1) + " token");
            assertEquals(reference[order[k]], first.topLogprobs()[k], 1e-4, "top-" + (k + 1) + " logprob");
        }
    }
}

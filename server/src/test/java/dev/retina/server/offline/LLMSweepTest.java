package dev.retina.server.offline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.SamplingParams;
import dev.retina.engine.TokenLogprobs;
import dev.retina.server.config.Device;
import dev.retina.server.config.EngineArgs;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The offline API on the parity sweep's checkpoints, one per tokenizer kind: a text prompt (the chat rendered by
 * transformers' jinja2) with its images gives transformers' prompt ids (its processor tokenizes the same text with
 * the post-processor's special tokens), first-token log-probs within 1e-4 and greedy tokens while HF's margin
 * exceeds 1e-3. Prompts whose template writes BOS itself are left to the server's chat path (HF's chat path then
 * adds none, while {@code tokenizer(text)} would add a second).
 */
class LLMSweepTest {
    static final Path SWEEP = Path.of(System.getProperty("retina.root", "..") + "/src/test/resources/sweep");
    static final Path FIXTURE_IMAGES = Path.of(System.getProperty("retina.fixtures", "../src/test/resources/fixtures"))
            .resolve("images");
    static final ObjectMapper JSON = new ObjectMapper();

    @TestFactory
    Stream<DynamicTest> offlinePromptsMatchTransformers() throws Exception {
        Path index = SWEEP.resolve("golden").resolve("index.json");
        assumeTrue(Files.isRegularFile(index), "no sweep at " + SWEEP);
        JsonNode root = JSON.readTree(index.toFile());
        Map<String, String> files = new HashMap<>();
        root.get("image_files").properties().forEach(e -> files.put(e.getKey(), e.getValue().asText()));
        Set<String> kinds = new HashSet<>();
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : root.get("cases")) {
            JsonNode golden = JSON.readTree(SWEEP.resolve("golden").resolve(c.asText() + ".json").toFile());
            String kind = golden.at("/axes/tokenizer/kind").asText() + golden.at("/axes/tokenizer/bos_post").asText()
                    + golden.at("/axes/model").asText();
            boolean usable = false;
            for (JsonNode p : golden.get("prompts")) usable |= p.get("add_special_tokens").asBoolean();
            if (usable && kinds.add(kind))
                tests.add(DynamicTest.dynamicTest(c.asText(), () -> runCase(c.asText(), golden, files)));
        }
        assertTrue(tests.size() >= 6, "kinds covered: " + kinds);
        return tests.stream();
    }

    static void runCase(String name, JsonNode golden, Map<String, String> files) throws Exception {
        try (LLM llm = LLM.builder(SWEEP.resolve("models").resolve(name).toString()).device(Device.CPU)
                .maxModelLen(2048).engine(new EngineArgs(4, 2048, 16, 0.9, 1L << 30, null)).build()) {
            for (JsonNode prompt : golden.get("prompts")) {
                if (!prompt.get("add_special_tokens").asBoolean()) continue;
                List<ImageData> images = new ArrayList<>();
                for (JsonNode m : prompt.get("messages"))
                    if (m.get("content").isArray())
                        for (JsonNode part : m.get("content"))
                            if (part.get("type").asText().equals("image")) {
                                String file = files.get(part.get("image").asText());
                                Path path = SWEEP.resolve("images").resolve(file);
                                images.add(ImagePixelData.of(Files.isRegularFile(path) ? path : FIXTURE_IMAGES.resolve(file)));
                            }
                JsonNode greedy = prompt.get("greedy");
                SamplingParams params = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, greedy.size(), 0,
                        List.of(), true, 5);
                RequestResult r = llm.generate(Prompt.of(prompt.get("rendered").asText(), params,
                        images.toArray(ImageData[]::new)));
                int[] want = new int[prompt.get("input_ids").size()];
                for (int i = 0; i < want.length; i++) want[i] = prompt.get("input_ids").get(i).asInt();
                assertArrayEquals(want, r.promptTokenIds(), name + ": prompt ids");
                TokenLogprobs first = r.outputs().getFirst().logprobs().getFirst();
                JsonNode hf = prompt.get("steps").get(0);
                assertEquals(hf.get("ids").get(0).asInt(), first.topTokenIds()[0], name + ": first token");
                assertEquals(hf.get("logprobs").get(0).asDouble(), first.topLogprobs()[0], 1e-4, name + ": its logprob");
                int[] ours = r.outputs().getFirst().tokenIds();
                for (int s = 0; s < greedy.size(); s++) {
                    assertEquals(greedy.get(s).asInt(), ours[s], name + ": greedy step " + s);
                    if (prompt.get("margins").get(s).asDouble() <= 1e-3) break;
                }
            }
        }
    }
}

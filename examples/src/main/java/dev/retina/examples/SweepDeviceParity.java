package dev.retina.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.SamplingParams;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.offline.ImageData;
import dev.retina.server.offline.ImagePixelData;
import dev.retina.server.offline.LLM;
import dev.retina.server.offline.Prompt;
import dev.retina.server.offline.RequestResult;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The parity sweep's checkpoints through the offline API on a chosen device and dtype, greedy tokens against
 * transformers' float32 ones (which the CPU float32 path reproduces: LLMSweepTest, ParitySweepE2ETest). A measurement,
 * not a test: in float16, tokens may part ways where transformers' own top-1 margin is small; for each prompt that
 * differs it prints the first differing step and HF's margin there. Prompts are those LLMSweepTest takes (the text
 * prompt with the post-processor's special tokens), on every checkpoint.
 *
 * <pre>java -cp ... dev.retina.examples.SweepDeviceParity src/test/resources/sweep gpu float16</pre>
 */
public final class SweepDeviceParity {
    private SweepDeviceParity() {}

    public static void main(String[] args) throws Exception {
        Path sweep = Path.of(args.length > 0 ? args[0] : "src/test/resources/sweep");
        Device device = args.length > 1 && args[1].equals("gpu") ? Device.GPU : Device.CPU;
        Dtype dtype = args.length > 2 && args[2].equals("float16") ? Dtype.FLOAT16 : Dtype.FLOAT32;
        Path fixtureImages = Path.of(args.length > 3 ? args[3] : "src/test/resources/fixtures/images");
        ObjectMapper json = new ObjectMapper();
        JsonNode index = json.readTree(sweep.resolve("golden").resolve("index.json").toFile());
        Map<String, String> files = new HashMap<>();
        index.get("image_files").properties().forEach(e -> files.put(e.getKey(), e.getValue().asText()));
        int prompts = 0;
        int allEqual = 0;
        int equalWhileMargin = 0;
        List<String> differ = new ArrayList<>();
        System.out.printf(Locale.ROOT, "%-44s %7s %12s %14s%n", "checkpoint", "prompts", "all equal", "first diff");
        for (JsonNode c : index.get("cases")) {
            String name = c.asText();
            JsonNode golden = json.readTree(sweep.resolve("golden").resolve(name + ".json").toFile());
            int casePrompts = 0;
            int caseEqual = 0;
            StringBuilder firstDiffs = new StringBuilder();
            try (LLM llm = LLM.builder(sweep.resolve("models").resolve(name).toString()).device(device).dtype(dtype)
                    .maxModelLen(2048).engine(new EngineArgs(4, 2048, 16, 0.9, 1L << 30, null)).build()) {
                for (JsonNode prompt : golden.get("prompts")) {
                    if (!prompt.get("add_special_tokens").asBoolean()) continue;
                    List<ImageData> images = new ArrayList<>();
                    for (JsonNode m : prompt.get("messages"))
                        if (m.get("content").isArray())
                            for (JsonNode part : m.get("content"))
                                if (part.get("type").asText().equals("image")) {
                                    String file = files.get(part.get("image").asText());
                                    Path path = sweep.resolve("images").resolve(file);
                                    images.add(ImagePixelData.of(Files.isRegularFile(path) ? path : fixtureImages.resolve(file)));
                                }
                    JsonNode greedy = prompt.get("greedy");
                    SamplingParams params = new SamplingParams(1, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, greedy.size(), 0,
                            List.of(), true, null);
                    RequestResult r = llm.generate(Prompt.of(prompt.get("rendered").asText(), params,
                            images.toArray(ImageData[]::new)));
                    int[] ours = r.outputs().getFirst().tokenIds();
                    int first = -1;
                    for (int s = 0; s < greedy.size(); s++)
                        if (s >= ours.length || ours[s] != greedy.get(s).asInt()) {
                            first = s;
                            break;
                        }
                    casePrompts++;
                    if (first < 0) {
                        caseEqual++;
                        equalWhileMargin++;
                    } else {
                        double margin = prompt.get("margins").get(first).asDouble();
                        // the CPU tests stop comparing after the first step whose HF margin is <= 1e-3
                        double minBefore = Double.MAX_VALUE;
                        for (int s = 0; s < first; s++) minBefore = Math.min(minBefore, prompt.get("margins").get(s).asDouble());
                        if (minBefore <= 1e-3) equalWhileMargin++;
                        firstDiffs.append(String.format(Locale.ROOT, " step %d/%d (HF margin %.2e)", first, greedy.size(),
                                margin));
                        differ.add(String.format(Locale.ROOT, "%s: step %d of %d, HF top-1 margin there %.3e%s", name,
                                first, greedy.size(), margin, minBefore <= 1e-3 ? ", after a near-tie" : ""));
                    }
                }
            }
            prompts += casePrompts;
            allEqual += caseEqual;
            System.out.printf(Locale.ROOT, "%-44s %7d %12d %s%n", name, casePrompts, caseEqual, firstDiffs);
        }
        System.out.printf(Locale.ROOT, "%s %s: %d of %d prompts with all greedy tokens equal to transformers' float32; "
                + "%d equal up to the first HF near-tie (margin <= 1e-3)%n", device, dtype, allEqual, prompts,
                equalWhileMargin);
        for (String d : differ) System.out.println("  differs: " + d);
    }
}

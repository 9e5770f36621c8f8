package dev.retina.server.offline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.SamplingParams;
import dev.retina.server.config.Device;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The bundled demo model (models/retina-demo, trained by tools/train_demo.py) on its evaluation set: scenes drawn
 * after training with transformers' greedy answers (src/test/resources/demo-eval). Retina's answers, through the
 * offline API on CPU, must equal transformers' on every item, and the demo must answer colour, shape and count
 * questions at >= 95 %. CI runs the first 40 items of each question type; {@code -Dretina.demoEval=all} runs all.
 */
class DemoModelEvalTest {
    static final Path EVAL = Path.of(System.getProperty("retina.root", "..") + "/src/test/resources/demo-eval");
    static final int DEFAULT_PER_TYPE = 40;

    @Test
    void demoAnswersEqualTransformersAndAreRight() throws Exception {
        Path file = EVAL.resolve("eval.json");
        assumeTrue(Files.isRegularFile(file), "no demo eval set at " + EVAL);
        JsonNode eval = new ObjectMapper().readTree(file.toFile());
        int perType = "all".equals(System.getProperty("retina.demoEval")) ? Integer.MAX_VALUE : DEFAULT_PER_TYPE;
        List<JsonNode> items = new ArrayList<>();
        Map<String, Integer> taken = new LinkedHashMap<>();
        for (JsonNode item : eval.get("items"))
            if (taken.merge(item.get("type").asText(), 1, Integer::sum) <= perType) items.add(item);
        List<Prompt> prompts = new ArrayList<>();
        for (JsonNode item : items)
            prompts.add(Prompt.of("USER: <image>\n" + item.get("question").asText() + " ASSISTANT:",
                    SamplingParams.greedy(24), ImagePixelData.of(EVAL.resolve(item.get("file").asText()))));
        List<RequestResult> results;
        try (LLM llm = LLM.builder("demo").device(Device.CPU).build()) {
            results = llm.generate(prompts);
        }
        Map<String, int[]> byType = new LinkedHashMap<>(); // type -> {n, retina right, hf right, equal}
        List<String> differ = new ArrayList<>();
        for (int i = 0; i < items.size(); i++) {
            JsonNode item = items.get(i);
            String ours = results.get(i).outputs().getFirst().text();
            String expected = normalize(item.get("expected").asText());
            int[] c = byType.computeIfAbsent(item.get("type").asText(), k -> new int[4]);
            c[0]++;
            if (normalize(ours).equals(expected)) c[1]++;
            if (item.get("hf_correct").asBoolean()) c[2]++;
            if (ours.equals(item.get("hf_answer").asText())) c[3]++;
            else differ.add(item.get("file").asText() + " " + item.get("question").asText() + ": ours '" + ours
                    + "', transformers '" + item.get("hf_answer").asText() + "'");
        }
        System.out.println("| question type | items | transformers | Retina | answers equal |");
        System.out.println("|---|---|---|---|---|");
        byType.forEach((type, c) -> System.out.printf(Locale.ROOT, "| %s | %d | %.1f %% | %.1f %% | %d/%d |%n", type,
                c[0], 100.0 * c[2] / c[0], 100.0 * c[1] / c[0], c[3], c[0]));
        assertTrue(differ.isEmpty(), differ.size() + " answers differ from transformers':\n" + String.join("\n", differ));
        for (String type : List.of("color", "shape", "count")) {
            int[] c = byType.get(type);
            assertTrue(c[1] >= 0.95 * c[0], type + ": " + c[1] + "/" + c[0] + " right");
        }
        assertEquals(5, byType.size());
    }

    static String normalize(String answer) {
        String s = answer.strip().toLowerCase(Locale.ROOT);
        return s.endsWith(".") ? s.substring(0, s.length() - 1) : s;
    }
}

package dev.retina.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Against the checkpoints and goldens made by tools/make_fixtures.py with transformers: golden/tokenizer.json (texts
 * with HF's ids and decoded strings) and golden/&lt;case&gt;.json (the prompt's input ids, greedy text).
 */
class FixtureTokenizerTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static Path fixtures() {
        String dir = System.getProperty("retina.fixtures");
        Path path = dir == null ? null : Path.of(dir);
        assumeTrue(path != null && Files.isDirectory(path.resolve("models")), "fixtures not present");
        return path;
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(strings = {"llava15-336-mha", "llava-224-gqa-full-tied", "llava-30-mqa-llama3rope"})
    void matchesTransformers(String name) throws IOException {
        Path fixtures = fixtures();
        JsonNode texts = JSON.readTree(fixtures.resolve("golden/tokenizer.json").toFile());
        JsonNode golden = JSON.readTree(fixtures.resolve("golden/" + name + ".json").toFile());
        try (Tokenizer t = Tokenizer.load(fixtures.resolve("models/" + name))) {
            for (JsonNode c : texts) {
                String text = c.get("text").asText();
                int[] ids = ints(c.get("ids"));
                assertArrayEquals(ids, t.encode(text), text);
                assertEquals(c.get("decoded").asText(), t.decode(ids, false), text);
                List<String> deltas = IncrementalDetokenizerTest.stream(t, ids, false);
                assertEquals(c.get("decoded").asText(), String.join("", deltas), text);
            }

            SpecialTokens s = t.specialTokens();
            assertEquals("<s>", s.bosToken());
            assertEquals(1, s.bosTokenId());
            assertEquals("</s>", s.eosToken());
            assertEquals(2, s.eosTokenId());
            assertEquals("<unk>", s.unkToken());
            assertEquals(OptionalInt.of(s.padTokenId()), t.tokenToId("<pad>"));
            assertTrue(s.addBosToken());
            int imageTokenId = golden.get("image_token_id").asInt();
            assertEquals(OptionalInt.of(imageTokenId), t.tokenToId("<image>"));
            assertTrue(s.isSpecial(imageTokenId));
            assertEquals(List.of(golden.get("eos_token_id").asInt()), t.eosTokenIds());

            // The engine's prompt: the rendered chat template with <image> expanded, BOS added as HF does.
            String rendered = golden.get("rendered_prompt").asText();
            String expanded = rendered.replace("<image>", "<image>".repeat(golden.get("num_image_tokens").asInt()));
            for (JsonNode prompt : golden.get("prompts")) {
                assertArrayEquals(ints(prompt.get("input_ids")), t.encodePrompt(expanded));
                int[] greedy = ints(prompt.get("greedy_tokens"));
                int cut = 0;
                while (cut < greedy.length && greedy[cut] != 2) {
                    cut++;
                }
                int[] untilEos = java.util.Arrays.copyOf(greedy, cut);
                String text = prompt.get("text_until_eos").asText();
                assertEquals(text, t.decode(untilEos, true));
                assertEquals(text, String.join("", IncrementalDetokenizerTest.stream(t, untilEos, true)));
                assertEquals(t.decode(greedy, true), String.join("", IncrementalDetokenizerTest.stream(t, greedy, true)));
            }
        }
    }
}

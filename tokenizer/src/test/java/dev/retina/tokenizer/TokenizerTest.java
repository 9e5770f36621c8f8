package dev.retina.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.Arrays;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The toy tokenizers written by src/test/python/make_toy_tokenizer.py (Llama-style, byte fallback). */
class TokenizerTest {
    static Tokenizer v4;
    static Tokenizer v5;

    static Path resource(String name) {
        try {
            return Path.of(TokenizerTest.class.getResource("/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @BeforeAll
    static void load() throws IOException {
        v4 = Tokenizer.load(resource("toy-v4"));
        v5 = Tokenizer.load(resource("toy-v5"));
    }

    @AfterAll
    static void close() {
        v4.close();
        v5.close();
    }

    @Test
    void decodeInvertsEncodeIncludingLeadingSpacesAndBytes() {
        for (String text : List.of("USER: What is shown in this image? ASSISTANT:", " leading space", "two  spaces",
                "猫がいます。 emoji \uD83D\uDE00 end", "tabs\tand\nnewlines", "")) {
            assertEquals(text, v4.decode(v4.encode(text), false), text);
        }
    }

    @Test
    void specialTokenStringsInTextBecomeTheirIds() {
        int[] ids = v4.encode("<s>USER: <image>\nhi</s>");
        assertEquals(1, ids[0]);
        assertTrue(Arrays.stream(ids).anyMatch(id -> id == 440));
        assertEquals(2, ids[ids.length - 1]);
        // Text after an added token is normalised on its own, so it gets its own "▁" (Llama's legacy behaviour).
        assertEquals("USER:  \nhi", v4.decode(ids, true));
    }

    @Test
    void longTextsAreNotTruncatedAt512() {
        String text = "The quick brown fox jumps over the lazy dog. ".repeat(200);
        int[] ids = v4.encode(text);
        assertTrue(ids.length > 1000, "got " + ids.length);
        assertEquals(text, v4.decode(ids, false));
    }

    @Test
    void encodePromptAddsBosOnlyWhenTheTemplateDidNot() {
        int[] plain = v4.encode("USER: hi");
        int[] prompt = v4.encodePrompt("USER: hi");
        assertEquals(plain.length + 1, prompt.length);
        assertEquals(1, prompt[0]);
        assertArrayEquals(plain, Arrays.copyOfRange(prompt, 1, prompt.length));
        int[] withBos = v4.encodePrompt("<s>USER: hi");
        assertArrayEquals(v4.encode("<s>USER: hi"), withBos);
        assertEquals(1, Arrays.stream(withBos).filter(id -> id == 1).count());
        // v5's config has no add_bos_token: inferred from the "<s> $A" post-processor.
        assertTrue(v5.specialTokens().addBosToken());
        assertArrayEquals(prompt, v5.encodePrompt("USER: hi"));
    }

    @Test
    void bosFollowsThePostProcessorNotAddBosToken(@TempDir Path dir) throws IOException {
        // transformers 5.17 (every tokenizer_class the parity sweep tried): add_bos_token is ignored.
        Files.copy(resource("toy-v4").resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": false, \"bos_token\": \"<s>\"}");
        try (Tokenizer t = Tokenizer.load(dir)) {
            assertTrue(t.specialTokens().addBosToken());
            assertEquals(1, t.encodePrompt("USER: hi")[0]);
            assertEquals(1, t.encodeWithSpecialTokens("USER: hi")[0]);
            assertEquals(List.of(), t.eosTokenIds());
            assertNull(t.specialTokens().eosToken());
            assertEquals(-1, t.specialTokens().eosTokenId());
        }
        Path noPost = dir.resolve("no-post");
        Files.createDirectories(noPost);
        com.fasterxml.jackson.databind.node.ObjectNode json = (com.fasterxml.jackson.databind.node.ObjectNode)
                new com.fasterxml.jackson.databind.ObjectMapper().readTree(dir.resolve("tokenizer.json").toFile());
        json.putNull("post_processor");
        Files.writeString(noPost.resolve("tokenizer.json"), json.toString());
        Files.writeString(noPost.resolve("tokenizer_config.json"), "{\"add_bos_token\": true, \"bos_token\": \"<s>\"}");
        try (Tokenizer t = Tokenizer.load(noPost)) {
            assertFalse(t.specialTokens().addBosToken());
            assertArrayEquals(t.encode("USER: hi"), t.encodePrompt("USER: hi"));
            assertArrayEquals(t.encode("USER: hi"), t.encodeWithSpecialTokens("USER: hi"));
        }
    }

    @Test
    void textPromptsGetThePostProcessorsBosEvenAfterATemplateBos() {
        // HF's tokenizer(text) and vLLM's completions both give two BOS here; a rendered chat gets one.
        int[] text = v4.encodeWithSpecialTokens("<s>USER: hi");
        assertEquals(2, Arrays.stream(text).filter(id -> id == 1).count());
        assertEquals(1, Arrays.stream(v4.encodePrompt("<s>USER: hi")).filter(id -> id == 1).count());
    }

    @Test
    void specialTokensFromV4StringsAndV5Objects() {
        for (Tokenizer t : List.of(v4, v5)) {
            SpecialTokens s = t.specialTokens();
            assertEquals("<s>", s.bosToken());
            assertEquals(1, s.bosTokenId());
            assertEquals("</s>", s.eosToken());
            assertEquals(2, s.eosTokenId());
            assertEquals("<pad>", s.padToken());
            assertEquals(441, s.padTokenId());
            assertEquals("<unk>", s.unkToken());
            assertEquals(0, s.unkTokenId());
            assertEquals(Set.of(0, 1, 2, 440, 441), s.specialTokenIds());
        }
        assertEquals(List.of(2), v4.eosTokenIds());
        assertEquals(List.of(2, 440), v5.eosTokenIds());
    }

    @Test
    void vocabularyLookups() {
        assertEquals(442, v4.vocabSize());
        assertEquals(OptionalInt.of(440), v4.tokenToId("<image>"));
        assertEquals(OptionalInt.of(3 + 0xE7), v4.tokenToId("<0xE7>"));
        assertEquals(OptionalInt.empty(), v4.tokenToId("no such piece"));
        assertEquals("<0x00>", v4.idToToken(3));
        assertEquals("</s>", v4.idToToken(2));
        assertNull(v4.idToToken(442));
        assertNull(v4.idToToken(-1));
        assertTrue(v4.isByteFallback(3 + 0xE7));
        assertFalse(v4.isByteFallback(2));
    }

}

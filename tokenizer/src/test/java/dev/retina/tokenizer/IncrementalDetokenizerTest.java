package dev.retina.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class IncrementalDetokenizerTest {
    static Tokenizer tokenizer;

    @BeforeAll
    static void load() throws IOException {
        tokenizer = Tokenizer.load(TokenizerTest.resource("toy-v4"));
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    /** Streams ids through a detokenizer; returns the deltas, the last element being flush(). */
    static List<String> stream(Tokenizer t, int[] ids, boolean skipSpecialTokens) {
        IncrementalDetokenizer d = t.newDetokenizer(skipSpecialTokens);
        List<String> deltas = new ArrayList<>();
        for (int id : ids) {
            deltas.add(d.append(id));
        }
        deltas.add(d.flush());
        return deltas;
    }

    static void assertStreamsLikeDecode(Tokenizer t, int[] ids, boolean skip) {
        List<String> deltas = stream(t, ids, skip);
        String expected = t.decode(ids, skip);
        assertEquals(expected, String.join("", deltas), () -> "ids " + java.util.Arrays.toString(ids));
        for (String delta : deltas.subList(0, deltas.size() - 1)) {
            assertFalse(delta.endsWith("\uFFFD") && !expected.contains("\uFFFD"), "split character in " + deltas);
        }
    }

    @Test
    void textsStreamExactly() {
        for (String text : List.of("USER: What is shown in this image? ASSISTANT: A cat.", " leading space",
                "猫がいます。 Ñandú, naïve", "emoji \uD83D\uDE00\uD83D\uDE00 end", "tabs\tand\nnewlines",
                "<s>USER: hi</s> more <image> text")) {
            int[] ids = tokenizer.encode(text);
            assertStreamsLikeDecode(tokenizer, ids, false);
            assertStreamsLikeDecode(tokenizer, ids, true);
        }
    }

    @Test
    void multiByteCharactersAreNeverSplit() {
        int[] ids = tokenizer.encode("a 猫 b");
        List<String> deltas = stream(tokenizer, ids, false);
        assertEquals("a 猫 b", String.join("", deltas));
        for (String delta : deltas) {
            assertFalse(delta.contains("\uFFFD"), deltas.toString());
        }
        assertEquals(1, deltas.stream().filter(d -> d.contains("猫")).count());
    }

    @Test
    void randomIdSequencesStreamExactly() {
        Random random = new Random(42);
        int vocabSize = tokenizer.vocabSize();
        int[] bytes = {0xE7, 0x8C, 0xAB, 0xF0, 0x9F, 0x98, 0x80, 0xC3, 0xB1, 0x41, 0x80, 0xFF};
        for (int trial = 0; trial < 300; trial++) {
            int[] ids = new int[1 + random.nextInt(40)];
            for (int i = 0; i < ids.length; i++) {
                int kind = random.nextInt(4);
                ids[i] = switch (kind) {
                    case 0 -> 3 + bytes[random.nextInt(bytes.length)]; // byte-fallback pieces, valid and not
                    case 1 -> random.nextInt(5) == 0 ? random.nextInt(3) : 440 + random.nextInt(2); // specials
                    default -> random.nextInt(vocabSize);
                };
            }
            assertStreamsLikeDecode(tokenizer, ids, false);
            assertStreamsLikeDecode(tokenizer, ids, true);
        }
    }
}

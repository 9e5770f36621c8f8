package dev.retina.server.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import dev.retina.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The JSON automaton and its token masks: accepted texts, refused schemas, random walks that must validate, cost. */
class JsonAutomatonTest {
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));
    static final ObjectMapper JSON = new ObjectMapper();
    static final String PERSON = """
            {"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":12},
             "age":{"type":"integer"},"tags":{"type":"array","items":{"enum":["a","b",3,null]},"maxItems":3},
             "kind":{"anyOf":[{"type":"boolean"},{"const":"x"}]},"score":{"type":["number","null"]}},
             "required":["name","age"],"additionalProperties":false}""";

    private static Tokenizer tokenizer;

    @BeforeAll
    static void load() throws Exception {
        tokenizer = Tokenizer.load(FIXTURES.resolve("models/llava15-336-mha"));
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    static JsonAutomaton automaton(String schema) throws Exception {
        return new JsonAutomaton(JsonSchemaCompiler.compile(JSON.readTree(schema)));
    }

    static boolean accepts(JsonAutomaton a, String text) {
        List<JsonAutomaton.Stack> s = a.step(a.initial(), text.getBytes(StandardCharsets.UTF_8));
        return JsonAutomaton.isComplete(s);
    }

    @Test
    void acceptsSchemaTextsInPropertyOrderWithBoundedSpaces() throws Exception {
        JsonAutomaton a = automaton(PERSON);
        assertTrue(accepts(a, "{\"name\":\"Ann\",\"age\":41}"));
        assertTrue(accepts(a, "{\"name\": \"Ann\", \"age\": -3, \"tags\": [\"a\", 3, null], \"kind\": \"x\", \"score\": 1.5e3}"));
        assertTrue(accepts(a, "{\"name\":\"A\\u00e9\\n\",\"age\":0,\"score\":null}"));
        assertFalse(accepts(a, "{\"age\":41}"), "a required property is missing");
        assertFalse(accepts(a, "{\"age\":41,\"name\":\"Ann\"}"), "out of listed order");
        assertFalse(accepts(a, "{\"name\":\"\",\"age\":1}"), "minLength 1");
        assertFalse(accepts(a, "{\"name\":\"abcdefghijklm\",\"age\":1}"), "maxLength 12");
        assertFalse(accepts(a, "{\"name\":\"A\",\"age\":1.5}"), "integer");
        assertFalse(accepts(a, "{\"name\":\"A\",  \"age\":1}"), "two spaces");
        assertFalse(accepts(a, " {\"name\":\"A\",\"age\":1}"), "leading space");
        assertFalse(accepts(a, "{\"name\":\"A\",\"age\":1,\"tags\":[\"a\",\"a\",\"a\",\"a\"]}"), "maxItems 3");
        assertFalse(accepts(a, "{\"name\":\"A\",\"age\":1,\"extra\":1}"), "closed object");
        assertFalse(accepts(a, "{\"name\":\"A\",\"age\":01}"), "leading zero");
        JsonAutomaton any = JsonAutomaton.anyObject();
        assertTrue(accepts(any, "{\"a\": [1, {\"b\": null}, \"x\"], \"c\": true}"));
        assertFalse(accepts(any, "[1]"), "json_object is an object");
        assertFalse(accepts(any, "{\"a\":1}}"));
    }

    @Test
    void unsupportedKeywordsAreNamed() {
        for (String kw : List.of("pattern", "format", "$ref", "minimum", "allOf")) {
            String schema = "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\",\"" + kw + "\":\"1\"}}}";
            var e = assertThrows(JsonSchemaCompiler.UnsupportedSchemaException.class,
                    () -> JsonSchemaCompiler.compile(JSON.readTree(schema)));
            assertEquals(kw, e.keyword());
            assertTrue(e.getMessage().contains("schema.properties.x"), e.getMessage());
        }
    }

    @Test
    void randomTokenWalksAlwaysValidate() throws Exception {
        TokenVocabulary vocab = TokenVocabulary.of(tokenizer);
        Schema validator = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12).getSchema(PERSON);
        JsonConstraintFactory factory = new JsonConstraintFactory(automaton(PERSON), vocab);
        SplittableRandom rnd = new SplittableRandom(11);
        int completed = 0;
        for (int walk = 0; walk < 60; walk++) {
            String text = walk(factory, vocab, rnd, 400);
            if (text == null) continue;
            completed++;
            JsonNode value = JSON.readTree(text);
            assertTrue(validator.validate(value).isEmpty(), text + " -> " + validator.validate(value));
        }
        assertTrue(completed >= 50, "only " + completed + " of 60 walks completed within 400 tokens");
    }

    /** Samples uniformly among allowed tokens (EOS with weight 5 when complete); the text, or null if it ran out. */
    static String walk(JsonConstraintFactory factory, TokenVocabulary vocab, SplittableRandom rnd, int maxTokens) {
        var c = factory.create();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < maxTokens; i++) {
            BitSet allowed = c.allowedTokens();
            int n = allowed.cardinality();
            if (c.isComplete() && (n == 0 || rnd.nextInt(n + 5) < 5)) return out.toString(StandardCharsets.UTF_8);
            assertTrue(n > 0, "dead end after " + out.toString(StandardCharsets.UTF_8));
            int pick = rnd.nextInt(n);
            int id = allowed.nextSetBit(0);
            for (int k = 0; k < pick; k++) id = allowed.nextSetBit(id + 1);
            out.writeBytes(vocab.bytes(id));
            c.advance(id);
        }
        return null;
    }

    @Test
    void stepCostOnFixtureAndSynthetic32kVocabularies() throws Exception {
        TokenVocabulary fixture = TokenVocabulary.of(tokenizer);
        TokenVocabulary synthetic = synthetic32k();
        for (var v : List.of(fixture, synthetic)) {
            for (String name : List.of("json_object", "person")) {
                JsonAutomaton a = name.equals("person") ? automaton(PERSON) : JsonAutomaton.anyObject();
                SplittableRandom rnd = new SplittableRandom(3);
                long uncachedNanos = 0;
                long steps = 0;
                // A fresh factory per walk: every step pays the trie walk (a real server caches across requests).
                for (int w = 0; w < 10; w++) {
                    JsonConstraintFactory f = new JsonConstraintFactory(a, v);
                    var c = f.create();
                    for (int i = 0; i < 30; i++) {
                        long t0 = System.nanoTime();
                        BitSet allowed = c.allowedTokens();
                        uncachedNanos += System.nanoTime() - t0;
                        steps++;
                        if (allowed.isEmpty()) break;
                        int pick = rnd.nextInt(allowed.cardinality());
                        int id = allowed.nextSetBit(0);
                        for (int k = 0; k < pick; k++) id = allowed.nextSetBit(id + 1);
                        c.advance(id);
                    }
                }
                System.out.printf("structured-output step cost: vocab=%d trieNodes=%d schema=%s: %.0f us/step uncached%n",
                        v.vocabSize(), v.numTrieNodes(), name, uncachedNanos / 1e3 / steps);
            }
        }
    }

    /** 32000 pieces like a SentencePiece vocabulary: 256 byte pieces, then words with and without '▁'. */
    static TokenVocabulary synthetic32k() {
        String[] pieces = new String[32000];
        SplittableRandom rnd = new SplittableRandom(5);
        String alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789{}[]\":,._-'éü";
        pieces[0] = "<unk>";
        pieces[1] = "<s>";
        pieces[2] = "</s>";
        for (int b = 0; b < 256; b++) pieces[3 + b] = String.format("<0x%02X>", b);
        Set<String> seen = new java.util.HashSet<>();
        for (int id = 259; id < pieces.length; ) {
            StringBuilder sb = new StringBuilder();
            if (rnd.nextInt(3) > 0) sb.append('\u2581');
            int len = 1 + rnd.nextInt(8);
            for (int i = 0; i < len; i++) sb.append(alphabet.charAt(rnd.nextInt(rnd.nextInt(4) == 0 ? alphabet.length() : 26)));
            if (seen.add(sb.toString())) pieces[id++] = sb.toString();
        }
        return TokenVocabulary.fromPieces(pieces, Set.of(0, 1, 2));
    }
}

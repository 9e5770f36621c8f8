package dev.retina.server.structured;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.protocol.ApiException;
import org.junit.jupiter.api.Test;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A schema the vocabulary cannot spell is refused before decoding (400), instead of a reply that stops early and
 * breaks the schema (seen on a small byte-level vocabulary: content "" with finish_reason "stop").
 */
class SpellabilityTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String SCHEMA = "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}, "
            + "\"required\": [\"a\"]}";

    static JsonConstraintFactory factory(String... pieces) throws Exception {
        String[] all = new String[pieces.length + 3];
        all[0] = "<unk>";
        all[1] = "<s>";
        all[2] = "</s>";
        System.arraycopy(pieces, 0, all, 3, pieces.length);
        return new JsonConstraintFactory(new JsonAutomaton(JsonSchemaCompiler.compile(JSON.readTree(SCHEMA))),
                TokenVocabulary.fromPieces(all, Set.of(0, 1, 2)));
    }

    @Test
    void aVocabularyWithTheNeededPiecesCanSpellTheSchema() throws Exception {
        assertEquals(JsonConstraintFactory.Spellability.SPELLABLE,
                factory("{", "\"", "a", ":", "7", "}", "▁hello").spellability(1000, 1_000_000_000L));
        assertEquals(JsonConstraintFactory.Spellability.SPELLABLE,
                factory("{\"", "a\":", "12", "}").spellability(1000, 1_000_000_000L));
    }

    @Test
    void aMissingPieceMakesItUnspellable() throws Exception {
        // No "}" anywhere: every state the tokens reach is incomplete.
        assertEquals(JsonConstraintFactory.Spellability.UNSPELLABLE,
                factory("{", "\"", "a", ":", "7", "▁hello").spellability(1000, 1_000_000_000L));
        // No way to start an object.
        assertEquals(JsonConstraintFactory.Spellability.UNSPELLABLE,
                factory("\"", "a", ":", "7", "}").spellability(1000, 1_000_000_000L));
    }

    @Test
    void aTinySearchBudgetSaysUnknownNotUnspellable() throws Exception {
        assertEquals(JsonConstraintFactory.Spellability.UNKNOWN,
                factory("{", "\"", "a", ":", "7", "}", " ").spellability(1, 1_000_000_000L));
    }

    @Test
    void structuredOutputsRefusesAnUnspellableSchemaWith400() throws Exception {
        String[] pieces = {"<unk>", "<s>", "</s>", "\"", "a", ":", "7", "}"};
        StructuredOutputs outputs = new StructuredOutputs(() -> TokenVocabulary.fromPieces(pieces, Set.of(0, 1, 2)));
        StructuredRequest request = new StructuredRequest(JSON.readTree(SCHEMA), false,
                StructuredRequest.ToolMode.NONE, null, java.util.Map.of());
        ApiException e = assertThrows(ApiException.class, () -> outputs.constraintFor(request));
        assertEquals(400, e.status());
        assertTrue(e.toBody().toString().contains("response_format"), e.toBody().toString());
        assertTrue(e.getMessage().contains("cannot spell"), e.getMessage());
    }
}

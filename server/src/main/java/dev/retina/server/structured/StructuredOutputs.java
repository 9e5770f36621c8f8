package dev.retina.server.structured;

import dev.retina.engine.ConstraintFactory;
import dev.retina.server.protocol.ApiException;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * The server's structured-output service over one tokenizer: the vocabulary (built on first use, on the calling
 * thread, never the engine's) and compiled constraints cached by schema, so the per-state token masks carry over
 * from request to request. Thread-safe.
 */
public final class StructuredOutputs {
    /** Distinct schemas kept; beyond it the cache starts over. */
    static final int MAX_SCHEMAS = 32;

    private final Supplier<TokenVocabulary> vocabulary;
    private volatile TokenVocabulary built;
    private final Map<String, JsonConstraintFactory> factories = new ConcurrentHashMap<>();

    public StructuredOutputs(Supplier<TokenVocabulary> vocabulary) {
        this.vocabulary = vocabulary;
    }

    /** States and time the spellability search may take per schema (once: the result is cached with it). */
    static final int MAX_SEARCH_STATES = 20_000;
    static final long MAX_SEARCH_NANOS = 2_000_000_000L;

    /**
     * The constraint of a request; null when its output is unconstrained.
     *
     * @throws ApiException 400 when the model's vocabulary cannot spell any output the schema allows (a small or
     *                      pruned vocabulary without byte fallback), rather than a reply that breaks the schema
     */
    public ConstraintFactory constraintFor(StructuredRequest request) {
        if (!request.constrained()) return null;
        JsonConstraintFactory f = factories.get(request.cacheKey());
        if (f == null) {
            if (factories.size() >= MAX_SCHEMAS) factories.clear();
            f = factories.computeIfAbsent(request.cacheKey(),
                    k -> new JsonConstraintFactory(request.automaton(), vocabulary()));
        }
        if (f.spellability(MAX_SEARCH_STATES, MAX_SEARCH_NANOS) == JsonConstraintFactory.Spellability.UNSPELLABLE)
            throw ApiException.badRequest("This model's vocabulary cannot spell any output that "
                    + (request.toolMode() == StructuredRequest.ToolMode.NONE ? "response_format" : "the tool call")
                    + " allows: no sequence of its tokens makes a complete value",
                    request.toolMode() == StructuredRequest.ToolMode.NONE ? "response_format" : "tools");
        return f;
    }

    private TokenVocabulary vocabulary() {
        TokenVocabulary v = built;
        if (v == null) built = v = vocabulary.get();
        return v;
    }
}

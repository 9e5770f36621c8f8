package dev.retina.server.structured;

import dev.retina.engine.ConstraintFactory;

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

    /** The constraint of a request; null when its output is unconstrained. */
    public ConstraintFactory constraintFor(StructuredRequest request) {
        if (!request.constrained()) return null;
        JsonConstraintFactory f = factories.get(request.cacheKey());
        if (f != null) return f;
        if (factories.size() >= MAX_SCHEMAS) factories.clear();
        return factories.computeIfAbsent(request.cacheKey(),
                k -> new JsonConstraintFactory(request.automaton(), vocabulary()));
    }

    private TokenVocabulary vocabulary() {
        TokenVocabulary v = built;
        if (v == null) built = v = vocabulary.get();
        return v;
    }
}

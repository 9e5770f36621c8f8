package dev.retina.server.structured;

import dev.retina.engine.ConstraintFactory;
import dev.retina.engine.TokenConstraint;
import dev.retina.server.structured.JsonAutomaton.Stack;

import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Structured output for one compiled schema over one vocabulary: each sequence gets a {@link JsonConstraint} that
 * tracks the automaton state and answers the allowed tokens by walking the vocabulary trie through the automaton
 * (a subtree is pruned as soon as its prefix is rejected). Results are cached per automaton state, shared by every
 * sequence using this factory, so a state seen before costs a map lookup. Thread-safe.
 */
public final class JsonConstraintFactory implements ConstraintFactory {
    /** Cached states per factory; beyond it the cache starts over (a 32k-vocabulary entry is 4 KiB). */
    static final int MAX_CACHED_STATES = 1024;

    private final JsonAutomaton automaton;
    private final TokenVocabulary vocabulary;
    private final Map<List<Stack>, BitSet> cache = new ConcurrentHashMap<>();

    public JsonConstraintFactory(JsonAutomaton automaton, TokenVocabulary vocabulary) {
        this.automaton = automaton;
        this.vocabulary = vocabulary;
    }

    @Override
    public JsonConstraint create() {
        return new JsonConstraint(automaton.initial());
    }

    /** Tokens whose whole byte string the automaton accepts from {@code state}. */
    BitSet allowed(List<Stack> state) {
        BitSet hit = cache.get(state);
        if (hit != null) return hit;
        BitSet allowed = new BitSet(vocabulary.vocabSize());
        if (!state.isEmpty()) walk(0, state, allowed);
        if (cache.size() >= MAX_CACHED_STATES) cache.clear();
        cache.put(state, allowed);
        return allowed;
    }

    private void walk(int node, List<Stack> state, BitSet allowed) {
        for (int e = vocabulary.firstChild(node), end = vocabulary.endChild(node); e < end; e++) {
            List<Stack> next = automaton.step(state, vocabulary.childByte(e));
            if (next.isEmpty()) continue;
            int child = vocabulary.childNode(e);
            for (int k = vocabulary.firstToken(child), kEnd = vocabulary.endToken(child); k < kEnd; k++)
                allowed.set(vocabulary.tokenAt(k));
            walk(child, next, allowed);
        }
    }

    /** One sequence's progress through the automaton. Engine thread only. */
    public final class JsonConstraint implements TokenConstraint {
        private List<Stack> state;

        JsonConstraint(List<Stack> state) {
            this.state = state;
        }

        @Override
        public BitSet allowedTokens() {
            return allowed(state);
        }

        @Override
        public void advance(int tokenId) {
            byte[] bytes = vocabulary.bytes(tokenId);
            // A token the mask did not allow (cannot happen through the sampler) leaves a dead state: EOS next.
            state = bytes == null ? List.of() : automaton.step(state, bytes);
        }

        @Override
        public boolean isComplete() {
            return JsonAutomaton.isComplete(state);
        }
    }
}

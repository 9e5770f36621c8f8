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

    /** What {@link #spellability} found out about this schema and vocabulary. */
    public enum Spellability {
        /** A token sequence the vocabulary can produce reaches a complete value. */
        SPELLABLE,
        /** Every state reachable through the vocabulary was seen and none is complete. */
        UNSPELLABLE,
        /** The search budget ran out first (a large schema or vocabulary); treated as spellable. */
        UNKNOWN
    }

    private volatile Spellability spellability;

    /**
     * Whether the vocabulary can spell any value of the schema at all: a breadth-first search over the automaton
     * states reachable from the start through whole tokens (the masks the sampler uses), stopping at the first
     * complete state, after {@code maxStates} states, or after {@code maxNanos}. Cached; any thread.
     */
    public Spellability spellability(int maxStates, long maxNanos) {
        Spellability s = spellability;
        if (s != null) return s;
        long deadline = System.nanoTime() + maxNanos;
        java.util.ArrayDeque<List<Stack>> queue = new java.util.ArrayDeque<>();
        java.util.Set<List<Stack>> seen = new java.util.HashSet<>();
        List<Stack> start = automaton.initial();
        queue.add(start);
        seen.add(start);
        s = Spellability.UNSPELLABLE;
        search:
        while (!queue.isEmpty()) {
            List<Stack> state = queue.poll();
            BitSet allowed = allowed(state);
            for (int id = allowed.nextSetBit(0); id >= 0; id = allowed.nextSetBit(id + 1)) {
                List<Stack> next = automaton.step(state, vocabulary.bytes(id));
                if (next.isEmpty()) continue;
                if (JsonAutomaton.isComplete(next)) {
                    s = Spellability.SPELLABLE;
                    break search;
                }
                if (seen.add(next)) queue.add(next);
            }
            if (seen.size() > maxStates || System.nanoTime() > deadline) {
                s = Spellability.UNKNOWN;
                break;
            }
        }
        spellability = s;
        return s;
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

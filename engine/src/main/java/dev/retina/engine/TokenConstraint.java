package dev.retina.engine;

import java.util.BitSet;

/**
 * Constrains one sequence's output during decoding (structured output: a JSON grammar, a schema, a tool call). One
 * instance per sequence, created by the request's {@link ConstraintFactory}; used only on the engine thread, once per
 * sampling step: {@link #allowedTokens()} before the token is sampled, {@link #advance(int)} with the sampled token.
 *
 * <p>End of sequence: the engine allows the sequence's EOS ids only while {@link #isComplete()} holds, and nothing
 * else once {@link #allowedTokens()} is empty then (so a finished JSON value is followed by EOS at once). A dead end
 * (nothing allowed, not complete; only possible with a vocabulary that cannot spell what the grammar needs) also
 * ends the sequence with EOS rather than sampling from an empty distribution.
 */
public interface TokenConstraint {
    /** Token ids (EOS excluded: see the class comment) that may come next; the caller must not modify it. */
    BitSet allowedTokens();

    /** Consumes the sampled token (which {@link #allowedTokens()} allowed, or an EOS id). */
    void advance(int tokenId);

    /** Whether the output so far is a complete sentence of the constraint's language (so EOS may come now). */
    boolean isComplete();
}

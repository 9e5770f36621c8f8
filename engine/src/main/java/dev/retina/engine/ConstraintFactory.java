package dev.retina.engine;

/**
 * Creates the {@link TokenConstraint} of each sequence of a request (n choices get n independent instances). Held in
 * {@link SamplingParams}; must be thread-safe to call, since params are shared; {@link #create()} runs on the engine
 * thread, so it must be cheap (precompute vocabularies and automata before submitting the request).
 */
@FunctionalInterface
public interface ConstraintFactory {
    TokenConstraint create();
}

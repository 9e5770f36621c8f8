package dev.retina.server;

/** A generation in flight; {@link #cancel} aborts it (the engine frees its KV blocks). Thread-safe, idempotent. */
@FunctionalInterface
public interface Generation {
    void cancel();
}

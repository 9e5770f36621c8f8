package dev.retina.engine;

/**
 * Receives a request's outputs. Called on the engine thread, in order per choice: it must not block or do slow work
 * (hand off to another thread, e.g. by enqueueing); an exception thrown here aborts the request.
 */
@FunctionalInterface
public interface OutputSink {
    void accept(RequestOutput output);
}

package dev.retina.engine;

/** The engine cannot take requests: its thread died, or it was closed. Servers answer 503. */
public final class EngineStoppedException extends IllegalStateException {
    public EngineStoppedException(String message) {
        super(message);
    }
}

package dev.retina.server.metrics;

import dev.retina.engine.FinishReason;

/**
 * The timings of one request, fed by {@link MeteredChatBackend}'s listener; calls for one request are serialised
 * (the listener contract), so plain fields suffice.
 */
public final class RequestMetrics {
    private final RetinaMetrics metrics;
    private final long arrivalNanos;
    private long lastTokenNanos;
    private boolean started;
    private boolean ended;

    RequestMetrics(RetinaMetrics metrics, long arrivalNanos) {
        this.metrics = metrics;
        this.arrivalNanos = arrivalNanos;
    }

    /** The engine took the request (once per engine request: several for a multi-prompt completion). */
    public void engineTook(int numPromptTokens) {
        metrics.engineTook(System.nanoTime() - arrivalNanos, numPromptTokens);
    }

    /** New output text; the first marks TTFT, later ones an inter-token gap. */
    public void output() {
        long now = System.nanoTime();
        if (!started) {
            started = true;
            metrics.firstToken(now - arrivalNanos);
        } else {
            metrics.interTokenGap(now - lastTokenNanos);
        }
        lastTokenNanos = now;
    }

    public void choiceFinished(FinishReason reason, int numTokens) {
        metrics.choiceFinished(reason, numTokens);
    }

    public void end(boolean failed) {
        if (ended) return;
        ended = true;
        metrics.ended(started, System.nanoTime() - arrivalNanos, failed);
    }
}

package dev.retina.server.offline;

/**
 * When a request passed each stage, in {@link System#nanoTime()} units (vLLM's {@code RequestMetrics}).
 *
 * @param arrivalNanos    when it was submitted
 * @param firstTokenNanos when its first output token came out of the engine
 * @param finishedNanos   when its last choice finished
 */
public record RequestMetrics(long arrivalNanos, long firstTokenNanos, long finishedNanos) {
    /** Time to first token, in seconds. */
    public double ttftSeconds() {
        return (firstTokenNanos - arrivalNanos) / 1e9;
    }

    /** Mean time per output token after the first, in seconds (0 for a single token). */
    public double tpotSeconds(int numOutputTokens) {
        return numOutputTokens <= 1 ? 0 : (finishedNanos - firstTokenNanos) / 1e9 / (numOutputTokens - 1);
    }
}

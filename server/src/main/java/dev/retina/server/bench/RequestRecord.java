package dev.retina.server.bench;

/**
 * One request of a serving benchmark as the client saw it: times in seconds from the moment it was sent.
 *
 * @param ok            whether the whole stream arrived (HTTP 200, {@code [DONE]}, no error event)
 * @param error         the status and message when not ok, else null
 * @param ttft          time to the first chunk that carried text
 * @param latency       time to the end of the stream
 * @param itl           gaps between successive text chunks
 * @param promptTokens  from the final usage chunk (0 if the server sent none)
 * @param outputTokens  from the usage chunk, else the number of text chunks
 */
public record RequestRecord(boolean ok, String error, double ttft, double latency, double[] itl, int promptTokens,
                            int outputTokens) {
    /** Time per output token after the first: (latency - TTFT) / (n - 1); NaN for one token. */
    public double tpot() {
        return outputTokens > 1 ? (latency - ttft) / (outputTokens - 1) : Double.NaN;
    }

    static RequestRecord failed(String error, double latency) {
        return new RequestRecord(false, error, Double.NaN, latency, new double[0], 0, 0);
    }
}

package dev.retina.engine;

/**
 * Counters of the vision encoder and its cache, for tests and metrics; a snapshot, safe to read from any thread.
 *
 * @param numEncoderPasses images run through the vision tower (and projector) since start
 * @param numCacheHits     images whose features came from the encoder cache
 * @param numCacheMisses   cacheable images (with a content hash) that were not in the cache and were encoded
 * @param numCachedImages  entries held now
 * @param numCachedTokens  feature rows (image tokens) held now; at most the cache's capacity
 * @param encoderNanos     wall time spent in vision-tower passes (projector included), summed over
 *                         {@code numEncoderPasses}; each pass is timed until its features are on the host's clock
 *                         (one element is read back, so on a GPU the time covers the kernels, not just their launch)
 */
public record EncoderCacheStats(long numEncoderPasses, long numCacheHits, long numCacheMisses, int numCachedImages,
                                int numCachedTokens, long encoderNanos) {
    /** Without encoder time. */
    public EncoderCacheStats(long numEncoderPasses, long numCacheHits, long numCacheMisses, int numCachedImages,
                             int numCachedTokens) {
        this(numEncoderPasses, numCacheHits, numCacheMisses, numCachedImages, numCachedTokens, 0L);
    }

    /** These counts with the time left out (for comparing counts). */
    public EncoderCacheStats counts() {
        return new EncoderCacheStats(numEncoderPasses, numCacheHits, numCacheMisses, numCachedImages, numCachedTokens);
    }
}

package dev.retina.engine;

/**
 * Counters of the vision encoder and its cache, for tests and metrics; a snapshot, safe to read from any thread.
 *
 * @param numEncoderPasses images run through the vision tower (and projector) since start
 * @param numCacheHits     images whose features came from the encoder cache
 * @param numCacheMisses   cacheable images (with a content hash) that were not in the cache and were encoded
 * @param numCachedImages  entries held now
 * @param numCachedTokens  feature rows (image tokens) held now; at most the cache's capacity
 * @param encoderNanos     time spent in vision-tower passes (projector included), summed over
 *                         {@code numEncoderPasses}: on the CPU their wall time; on a GPU the host's pixel stacking and
 *                         upload plus the passes' GPU time (CUDA events), which is read without waiting for the device
 *                         and so counts by the engine's next step at the latest
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

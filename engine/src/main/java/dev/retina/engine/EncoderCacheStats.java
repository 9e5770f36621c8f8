package dev.retina.engine;

/**
 * Counters of the vision encoder and its cache, for tests and metrics; a snapshot, safe to read from any thread.
 *
 * @param numEncoderPasses images run through the vision tower (and projector) since start
 * @param numCacheHits     images whose features came from the encoder cache
 * @param numCacheMisses   cacheable images (with a content hash) that were not in the cache and were encoded
 * @param numCachedImages  entries held now
 * @param numCachedTokens  feature rows (image tokens) held now; at most the cache's capacity
 */
public record EncoderCacheStats(long numEncoderPasses, long numCacheHits, long numCacheMisses, int numCachedImages,
                                int numCachedTokens) {
}

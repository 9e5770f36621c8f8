package dev.retina.engine;

/**
 * The engine's settings, built once from the CLI flags and validated on construction.
 *
 * @param maxNumSeqs            most sequences running at once (vLLM's max_num_seqs)
 * @param maxNumBatchedTokens   most tokens per step; must be at least the largest image's token count, so each
 *                              request's images fit one step's encoder budget (checked per request)
 * @param blockSize             tokens per KV block
 * @param maxModelLen           most tokens (prompt plus output) per sequence
 * @param numGpuBlocksOverride  if &gt; 0, use exactly this many KV blocks (tests, benchmarks); 0 = size from memory
 * @param kvCacheMemoryBytes    KV cache budget on CPU, in bytes (on GPU the budget comes from
 *                              {@code gpuMemoryUtilization})
 * @param gpuMemoryUtilization  fraction of the GPU's memory Retina may use in total (weights, activations, KV)
 */
public record EngineConfig(int maxNumSeqs, int maxNumBatchedTokens, int blockSize, int maxModelLen,
                           int numGpuBlocksOverride, long kvCacheMemoryBytes, double gpuMemoryUtilization) {
    public static final int DEFAULT_MAX_NUM_SEQS = 256;
    public static final int DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192;
    public static final int DEFAULT_BLOCK_SIZE = 16;
    public static final long DEFAULT_KV_CACHE_MEMORY_BYTES = 1L << 30;
    public static final double DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;

    public EngineConfig {
        if (maxNumSeqs < 1) throw new IllegalArgumentException("maxNumSeqs must be >= 1, got " + maxNumSeqs);
        if (maxNumBatchedTokens < maxNumSeqs)
            throw new IllegalArgumentException("maxNumBatchedTokens (" + maxNumBatchedTokens + ") must be >= maxNumSeqs ("
                    + maxNumSeqs + ")");
        if (blockSize < 1 || blockSize > 1024) throw new IllegalArgumentException("blockSize must be in [1, 1024], got " + blockSize);
        if (maxModelLen < 2) throw new IllegalArgumentException("maxModelLen must be >= 2, got " + maxModelLen);
        if (numGpuBlocksOverride < 0) throw new IllegalArgumentException("numGpuBlocksOverride must be >= 0");
        if (kvCacheMemoryBytes < 0) throw new IllegalArgumentException("kvCacheMemoryBytes must be >= 0");
        if (!(gpuMemoryUtilization > 0 && gpuMemoryUtilization <= 1))
            throw new IllegalArgumentException("gpuMemoryUtilization must be in (0, 1], got " + gpuMemoryUtilization);
    }

    /** Defaults (vLLM's where it has one) for a model whose context is {@code maxModelLen}. */
    public static EngineConfig defaults(int maxModelLen) {
        return new EngineConfig(DEFAULT_MAX_NUM_SEQS, Math.max(DEFAULT_MAX_NUM_BATCHED_TOKENS, DEFAULT_MAX_NUM_SEQS),
                DEFAULT_BLOCK_SIZE, maxModelLen, 0, DEFAULT_KV_CACHE_MEMORY_BYTES, DEFAULT_GPU_MEMORY_UTILIZATION);
    }

    public SchedulerConfig schedulerConfig() {
        return new SchedulerConfig(maxNumSeqs, maxNumBatchedTokens, maxModelLen);
    }

    /**
     * KV blocks to allocate: the override if set, else {@code budgetBytes / bytesPerBlock}. The caller computes the
     * budget: {@link #kvCacheMemoryBytes} on CPU; on GPU, total memory times {@link #gpuMemoryUtilization} minus what
     * weights and a peak step use. Fails if the result cannot hold one {@code maxModelLen} sequence.
     */
    public int numBlocks(long bytesPerBlock, long budgetBytes) {
        long n = numGpuBlocksOverride > 0 ? numGpuBlocksOverride : budgetBytes / Math.max(1, bytesPerBlock);
        long needed = (maxModelLen + blockSize - 1) / blockSize;
        if (n < needed)
            throw new IllegalArgumentException("KV cache of " + n + " blocks (" + budgetBytes + " bytes at " + bytesPerBlock
                    + " per block) cannot hold one sequence of maxModelLen " + maxModelLen + " (" + needed + " blocks)");
        return (int) Math.min(n, Integer.MAX_VALUE);
    }
}

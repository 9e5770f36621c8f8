package dev.retina.server.config;

import java.util.Locale;

/**
 * The batching engine's flags ({@code --max-num-seqs}, {@code --max-num-batched-tokens}, {@code --block-size},
 * {@code --gpu-memory-utilization}, {@code --kv-cache-memory}, {@code --num-gpu-blocks-override}), validated here;
 * checked against the checkpoint (image token count, max model length) when the engine is built.
 *
 * @param numGpuBlocksOverride exact number of KV blocks, or null to size the cache from memory
 * @param kvCacheMemoryBytes   KV cache budget on CPU
 */
public record EngineArgs(int maxNumSeqs, int maxNumBatchedTokens, int blockSize, double gpuMemoryUtilization,
                         long kvCacheMemoryBytes, Integer numGpuBlocksOverride, int dataParallelSize) {
    public static final int DEFAULT_MAX_NUM_SEQS = 256;
    public static final int DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192;
    /**
     * Offline runs on a GPU of at least {@link #LARGE_GPU_BYTES}: vLLM's default for its LLM class there (8192 stays
     * its serving default). Longer prefill steps cost queued requests latency, which offline throughput ignores.
     */
    public static final int LARGE_GPU_OFFLINE_MAX_NUM_BATCHED_TOKENS = 16384;
    public static final long LARGE_GPU_BYTES = 70L << 30;
    public static final int DEFAULT_BLOCK_SIZE = 16;
    public static final double DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;
    public static final long DEFAULT_KV_CACHE_MEMORY_BYTES = 1L << 30;

    public EngineArgs {
        if (maxNumSeqs < 1) throw new ConfigException("--max-num-seqs must be >= 1, got " + maxNumSeqs);
        if (maxNumBatchedTokens < maxNumSeqs)
            throw new ConfigException("--max-num-batched-tokens (" + maxNumBatchedTokens + ") must be >= --max-num-seqs ("
                    + maxNumSeqs + ") so every running sequence can decode in one step");
        if (blockSize < 1 || blockSize > 1024) throw new ConfigException("--block-size must be in 1..1024, got " + blockSize);
        if (!(gpuMemoryUtilization > 0 && gpuMemoryUtilization <= 1))
            throw new ConfigException("--gpu-memory-utilization must be in (0, 1], got " + gpuMemoryUtilization);
        if (kvCacheMemoryBytes < 1) throw new ConfigException("--kv-cache-memory must be positive, got " + kvCacheMemoryBytes);
        if (numGpuBlocksOverride != null && numGpuBlocksOverride < 1)
            throw new ConfigException("--num-gpu-blocks-override must be >= 1, got " + numGpuBlocksOverride);
        if (dataParallelSize < 1 || dataParallelSize > 64)
            throw new ConfigException("--data-parallel-size must be in 1..64, got " + dataParallelSize);
    }

    /** One engine (no data parallelism). */
    public EngineArgs(int maxNumSeqs, int maxNumBatchedTokens, int blockSize, double gpuMemoryUtilization,
                      long kvCacheMemoryBytes, Integer numGpuBlocksOverride) {
        this(maxNumSeqs, maxNumBatchedTokens, blockSize, gpuMemoryUtilization, kvCacheMemoryBytes, numGpuBlocksOverride,
                1);
    }

    /** The same flags with {@code --data-parallel-size n}. */
    public EngineArgs withDataParallelSize(int n) {
        return new EngineArgs(maxNumSeqs, maxNumBatchedTokens, blockSize, gpuMemoryUtilization, kvCacheMemoryBytes,
                numGpuBlocksOverride, n);
    }

    /** The --max-num-batched-tokens default for an offline run on a device with {@code deviceBytes} (0: CPU). */
    public static int offlineMaxNumBatchedTokens(long deviceBytes) {
        return deviceBytes >= LARGE_GPU_BYTES ? LARGE_GPU_OFFLINE_MAX_NUM_BATCHED_TOKENS : DEFAULT_MAX_NUM_BATCHED_TOKENS;
    }

    public static EngineArgs defaults() {
        return new EngineArgs(DEFAULT_MAX_NUM_SEQS, DEFAULT_MAX_NUM_BATCHED_TOKENS, DEFAULT_BLOCK_SIZE,
                DEFAULT_GPU_MEMORY_UTILIZATION, DEFAULT_KV_CACHE_MEMORY_BYTES, null);
    }

    public EngineArgs withNumGpuBlocksOverride(Integer numBlocks) {
        return new EngineArgs(maxNumSeqs, maxNumBatchedTokens, blockSize, gpuMemoryUtilization, kvCacheMemoryBytes,
                numBlocks, dataParallelSize);
    }

    public EngineArgs withMaxNumSeqs(int n) {
        return new EngineArgs(n, Math.max(n, maxNumBatchedTokens), blockSize, gpuMemoryUtilization, kvCacheMemoryBytes,
                numGpuBlocksOverride, dataParallelSize);
    }

    /** Parses a byte count: a plain number, or one with a K/M/G/T suffix (powers of 1024; "4G", "512MiB", "1.5g"). */
    public static long parseBytes(String value) {
        String v = value.strip().toUpperCase(Locale.ROOT);
        if (v.endsWith("IB")) v = v.substring(0, v.length() - 2);
        else if (v.endsWith("B")) v = v.substring(0, v.length() - 1);
        long unit = 1;
        if (!v.isEmpty()) {
            int shift = switch (v.charAt(v.length() - 1)) {
                case 'K' -> 10;
                case 'M' -> 20;
                case 'G' -> 30;
                case 'T' -> 40;
                default -> 0;
            };
            if (shift > 0) {
                unit = 1L << shift;
                v = v.substring(0, v.length() - 1);
            }
        }
        double number;
        try {
            number = Double.parseDouble(v.strip());
        } catch (NumberFormatException e) {
            throw new ConfigException("--kv-cache-memory must be a byte count like 1073741824, 512M or 4G, got '" + value + "'");
        }
        if (!(number > 0) || Double.isInfinite(number))
            throw new ConfigException("--kv-cache-memory must be positive, got '" + value + "'");
        return (long) (number * unit);
    }
}

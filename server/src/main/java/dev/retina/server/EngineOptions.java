package dev.retina.server;

import dev.retina.server.config.EngineArgs;
import picocli.CommandLine.Option;

/** The batching engine's flags, shared by {@code retina serve} and {@code retina bench} (a Picocli mixin). */
public final class EngineOptions {
    @Option(names = "--max-num-seqs", defaultValue = "" + EngineArgs.DEFAULT_MAX_NUM_SEQS,
            description = "Most sequences running at once.")
    int maxNumSeqs;

    @Option(names = "--max-num-batched-tokens", description = "Most tokens per engine step; must be >= one image's "
            + "token count (e.g. 576). Default " + EngineArgs.DEFAULT_MAX_NUM_BATCHED_TOKENS + "; "
            + EngineArgs.LARGE_GPU_OFFLINE_MAX_NUM_BATCHED_TOKENS + " for `retina bench` on a GPU with at least 70 GiB "
            + "(vLLM's defaults for serving and for its offline LLM class).")
    Integer maxNumBatchedTokens;

    @Option(names = "--block-size", defaultValue = "" + EngineArgs.DEFAULT_BLOCK_SIZE, description = "Tokens per KV cache block.")
    int blockSize;

    @Option(names = "--gpu-memory-utilization", defaultValue = "" + EngineArgs.DEFAULT_GPU_MEMORY_UTILIZATION,
            description = "Fraction of GPU memory Retina may use (weights, activations, KV cache).")
    double gpuMemoryUtilization;

    @Option(names = "--kv-cache-memory", defaultValue = "1G",
            description = "KV cache budget on CPU, in bytes; suffixes K, M, G, T (powers of 1024), e.g. 4G.")
    String kvCacheMemory;

    @Option(names = "--num-gpu-blocks-override", description = "Exactly this many KV blocks, instead of sizing from memory.")
    Integer numGpuBlocksOverride;

    @Option(names = {"--data-parallel-size", "-dp"}, defaultValue = "1", description = "Engine replicas in this "
            + "process, one per visible GPU (on CPU all on the CPU), each with its own KV cache and engine thread; "
            + "requests go to the replica with the least outstanding work.")
    int dataParallelSize;

    EngineArgs engineArgs() {
        return engineArgs(EngineArgs.DEFAULT_MAX_NUM_BATCHED_TOKENS);
    }

    /** The flags, with {@code defaultMaxNumBatchedTokens} where --max-num-batched-tokens was not given. */
    EngineArgs engineArgs(int defaultMaxNumBatchedTokens) {
        int batchedTokens = maxNumBatchedTokens != null ? maxNumBatchedTokens : defaultMaxNumBatchedTokens;
        return new EngineArgs(maxNumSeqs, batchedTokens, blockSize, gpuMemoryUtilization,
                EngineArgs.parseBytes(kvCacheMemory), numGpuBlocksOverride, dataParallelSize);
    }
}

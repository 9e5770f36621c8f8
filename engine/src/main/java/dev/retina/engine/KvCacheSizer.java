package dev.retina.engine;

import ai.djl.Device;
import ai.djl.util.cuda.CudaUtils;
import dev.retina.engine.model.KvCache;
import dev.retina.engine.model.LlavaModel;
import java.lang.management.MemoryUsage;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decides how many KV blocks the cache gets. On CPU: {@link EngineConfig#kvCacheMemoryBytes} divided by the bytes
 * of one block. On GPU (vLLM's rule): run one profiling step at the worst case the scheduler can produce (a full
 * {@code maxNumBatchedTokens} batch whose first sequence carries the largest image), then give the KV cache what is
 * left of {@code total * gpuMemoryUtilization} after the weights and that step's peak. PyTorch's caching allocator
 * keeps the step's peak reserved, so "used" after the step includes it. Called once, before the engine starts.
 */
public final class KvCacheSizer {
    private static final Logger log = LoggerFactory.getLogger(KvCacheSizer.class);

    private KvCacheSizer() {
    }

    /**
     * @param largestImage the largest image input a request may carry (pixel size and token count), or null for none
     */
    public static int numBlocks(LlavaModel model, EngineConfig config, ImageInput largestImage) {
        long bytesPerBlock = KvCache.bytesPerBlock(model.config(), config.blockSize(), model.dtype());
        if (config.numGpuBlocksOverride() > 0) return config.numBlocks(bytesPerBlock, 0);
        Device device = model.device();
        if (!device.isGpu()) return config.numBlocks(bytesPerBlock, config.kvCacheMemoryBytes());
        profile(model, config, largestImage);
        MemoryUsage memory = CudaUtils.getGpuMemory(device);
        long total = memory.getMax();
        long used = memory.getUsed();
        long budget = (long) (total * config.gpuMemoryUtilization()) - used;
        log.info("GPU memory: {} MiB total, {} MiB used after a profiling step of {} tokens; KV budget {} MiB "
                        + "(utilization {})", total >> 20, used >> 20, config.maxNumBatchedTokens(),
                budget >> 20, config.gpuMemoryUtilization());
        if (budget <= 0)
            throw new IllegalArgumentException("no GPU memory is left for the KV cache: " + (used >> 20) + " MiB of "
                    + (total >> 20) + " MiB are in use after the profiling step; raise --gpu-memory-utilization or "
                    + "lower --max-num-batched-tokens");
        return config.numBlocks(bytesPerBlock, budget);
    }

    /**
     * Runs one step of {@code maxNumBatchedTokens} prompt tokens (sequences of at most {@code maxModelLen - 1}
     * tokens each; the first starts with the largest image) through a runner with a cache just big enough.
     *
     * @return the image tokens the step carried (0 when no image was given or it did not fit the first sequence)
     */
    static int profile(LlavaModel model, EngineConfig config, ImageInput largestImage) {
        int blockSize = config.blockSize();
        int budget = config.maxNumBatchedTokens();
        int maxLen = config.maxModelLen() - 1;
        int numSeqs = Math.min(config.maxNumSeqs(), (budget + maxLen - 1) / maxLen);
        int numBlocks = 0;
        int numTokens = 0;
        List<int[]> prompts = new ArrayList<>();
        for (int s = 0, left = budget; s < numSeqs && left > 0; s++) {
            int len = Math.min(maxLen, left);
            left -= len;
            numTokens += len;
            prompts.add(new int[len]);
            numBlocks += (len + blockSize - 1) / blockSize;
        }
        int imageTokenId = model.config().imageTokenIndex();
        List<ImageInput> images = List.of();
        if (largestImage != null && largestImage.numImageTokens() <= prompts.getFirst().length) {
            java.util.Arrays.fill(prompts.getFirst(), 0, largestImage.numImageTokens(), imageTokenId);
            images = List.of(largestImage);
        }
        long start = System.nanoTime();
        boolean directPrefill = model.directPrefill();
        try (LlavaModelRunner runner = new LlavaModelRunner(model, numBlocks, blockSize)) {
            // A step stacks up to MAX_IMAGES_PER_ENCODE new requests' images into one vision-tower call: profile
            // that batch too (its activations peak before the language model runs, so the two peaks do not add).
            if (!images.isEmpty() && !largestImage.isTiled() && largestImage.imageFeatures() == null)
                runner.profileEncoder(largestImage, LlavaModelRunner.MAX_IMAGES_PER_ENCODE);
            // On the GPU, fresh prompts go through the direct path, whose buffers persist, while later chunks of a
            // prompt take the DJL-op layers: the step runs both ways so that both are in the memory it leaves used.
            for (int pass = 0; pass < (directPrefill && model.device().isGpu() ? 2 : 1); pass++) {
                model.setDirectPrefill(pass == 0 && directPrefill);
                List<ScheduledSequence> seqs = new ArrayList<>();
                int nextBlock = 0;
                for (int s = 0; s < prompts.size(); s++) {
                    int[] prompt = prompts.get(s);
                    int[] blockTable = new int[(prompt.length + blockSize - 1) / blockSize];
                    for (int b = 0; b < blockTable.length; b++) blockTable[b] = nextBlock++;
                    seqs.add(new ScheduledSequence((long) pass * prompts.size() + s, "profile-" + pass + "-" + s, 0,
                            prompt, 0, blockTable, true, prompt, new int[0], 0.5, SamplingParams.greedy(1), List.of(),
                            s == 0 ? images : List.of()));
                }
                runner.execute(new SchedulerOutput(seqs, numTokens, List.of(), Set.of()));
            }
        } finally {
            model.setDirectPrefill(directPrefill);
        }
        log.info("profiling step: {} sequences, {} tokens{} in {} ms", prompts.size(), numTokens,
                images.isEmpty() ? "" : ", one image of " + largestImage.numTiles() + " tile(s), "
                        + largestImage.numImageTokens() + " tokens"
                        + (largestImage.isTiled() ? "" : " (and a vision batch of " + LlavaModelRunner.MAX_IMAGES_PER_ENCODE + ")"),
                (System.nanoTime() - start) / 1_000_000);
        return images.isEmpty() ? 0 : largestImage.numImageTokens();
    }
}

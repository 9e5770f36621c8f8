package dev.retina.engine;

import dev.retina.engine.model.LlavaConfig;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.LoadFormat;
import dev.retina.engine.model.ModelLoadConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Builds a running engine from plain values, so callers outside the engine module (the server, the offline API,
 * the benchmark) never name a DJL type: loads the model on the chosen device and dtype, sizes the KV cache
 * ({@link KvCacheSizer}) and starts {@link LlmEngine} over a {@link LlavaModelRunner}.
 */
public final class EngineFactory {
    private static final Logger log = LoggerFactory.getLogger(EngineFactory.class);

    private EngineFactory() {
    }

    /** A loaded model and the engine running it; closing stops the engine, then frees the model. */
    public record Loaded(LlavaModel model, LlmEngine engine, int numBlocks) implements AutoCloseable {
        /** "float32" or "float16": the dtype actually in use. */
        public String dtypeName() {
            return model.dtype().toString().toLowerCase(Locale.ROOT);
        }

        /** "cpu()" or "gpu(0)". */
        public String deviceName() {
            return model.device().toString();
        }

        @Override
        public void close() {
            engine.close();
            boolean gpu = model.device().isGpu();
            model.close();
            // Hand the freed weights and KV cache back to the driver: PyTorch's caching allocator would keep them, and
            // the next engine's KV sizing (device memory in use) would count them as taken.
            if (gpu) ai.djl.pytorch.jni.JniUtils.emptyCudaCache();
        }
    }

    /**
     * @param dummyWeights random weights of the right shapes (benchmarks without a checkpoint)
     * @param seed         seed of the dummy weights
     */
    public static LlavaModel loadModel(Path modelDir, DeviceKind device, ComputeDtype dtype, boolean dummyWeights,
                                       long seed) throws IOException {
        return loadModel(modelDir, device, 0, 1, dtype, dummyWeights, seed);
    }

    /** The model for data-parallel replica {@code replica} of {@code replicas} (its own device; see DeviceKind). */
    public static LlavaModel loadModel(Path modelDir, DeviceKind device, int replica, int replicas, ComputeDtype dtype,
                                       boolean dummyWeights, long seed) throws IOException {
        return LlavaModel.load(modelDir, new ModelLoadConfig(device.toDevice(replica, replicas), dtype.toDataType(),
                dummyWeights ? LoadFormat.DUMMY : LoadFormat.AUTO, seed));
    }

    /**
     * Sizes the KV cache and starts the engine over {@code model} (which the returned value then owns).
     *
     * @param largestImage the largest image a request may carry (for the token-budget check and GPU profiling),
     *                     or null when requests carry no images
     * @throws IllegalArgumentException when an image cannot fit one step or the cache cannot hold one sequence
     */
    public static Loaded start(LlavaModel model, EngineConfig config, ImageInput largestImage) {
        return start(model, config, largestImage, LlavaModelRunner.DEFAULT_ENCODER_CACHE_SIZE);
    }

    /** As {@link #start(LlavaModel, EngineConfig, ImageInput)}, with the encoder cache bounded to that many image tokens. */
    public static Loaded start(LlavaModel model, EngineConfig config, ImageInput largestImage, int encoderCacheSize) {
        if (largestImage != null) {
            // The profile image has the most tiles; for LLaVA-NeXT another pinpoint may still give more tokens.
            int maxImageTokens = Math.max(largestImage.numImageTokens(), maxImageTokens(model.config()));
            if (maxImageTokens > config.maxNumBatchedTokens())
                throw new IllegalArgumentException("--max-num-batched-tokens " + config.maxNumBatchedTokens()
                        + " is smaller than one image's " + maxImageTokens + " tokens; raise it to at least "
                        + maxImageTokens);
        }
        int numBlocks = KvCacheSizer.numBlocks(model, config, largestImage);
        log.info("KV cache: {} blocks of {} tokens = {} tokens", numBlocks, config.blockSize(),
                (long) numBlocks * config.blockSize());
        LlavaModelRunner runner = new LlavaModelRunner(model, numBlocks, config.blockSize(), encoderCacheSize);
        runner.warmUpDecodeGraphs(config.maxNumSeqs());
        return new Loaded(model, new LlmEngine(config, numBlocks, FaultInjectingRunner.fromSystemProperty(runner)),
                numBlocks);
    }

    /**
     * The largest pixel input a request may carry, blank, for the worst-case profile. LLaVA-1.5: one image of the
     * model's input size, (3, side, side). LLaVA-NeXT: an image exactly the size of the pinpoint with the most tiles
     * (ties: the most tokens), so it is cut into that pinpoint's grid plus the base tile,
     * (numTiles, 3, side, side), with that size's token count; the vision tower's activations grow with the tiles.
     */
    public static ImageInput blankImage(LlavaModel model) {
        return blankImage(model.config());
    }

    /** {@link #blankImage(LlavaModel)} from the config alone. */
    public static ImageInput blankImage(LlavaConfig config) {
        int side = config.visionConfig().imageSize();
        if (!config.isNext()) return ImageInput.ofPixels(new float[3 * side * side], side, side, config.numImageTokens());
        int[] largest = null;
        int largestTiles = 0;
        int largestTokens = 0;
        for (int[] p : config.imageGridPinpoints()) { // {height, width}
            int numTiles = config.numTiles(p[0], p[1]);
            int numTokens = config.numImageTokens(p[0], p[1]);
            if (numTiles > largestTiles || (numTiles == largestTiles && numTokens > largestTokens)) {
                largest = p;
                largestTiles = numTiles;
                largestTokens = numTokens;
            }
        }
        return ImageInput.ofTiles(new float[largestTiles * 3 * side * side], largestTiles, side, largest[0], largest[1],
                largestTokens, null);
    }

    /**
     * Most placeholder tokens one image can take. LLaVA-NeXT: an image of a pinpoint's exact aspect loses no rows or
     * columns to unpadding, so the maximum over images is the maximum over the pinpoints' own sizes.
     */
    public static int maxImageTokens(LlavaConfig config) {
        if (!config.isNext()) return config.numImageTokens();
        int max = 0;
        for (int[] p : config.imageGridPinpoints()) max = Math.max(max, config.numImageTokens(p[0], p[1]));
        return max;
    }
}

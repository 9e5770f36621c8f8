package dev.retina.engine;

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
            model.close();
        }
    }

    /**
     * @param dummyWeights random weights of the right shapes (benchmarks without a checkpoint)
     * @param seed         seed of the dummy weights
     */
    public static LlavaModel loadModel(Path modelDir, DeviceKind device, ComputeDtype dtype, boolean dummyWeights,
                                       long seed) throws IOException {
        return LlavaModel.load(modelDir, new ModelLoadConfig(device.toDevice(), dtype.toDataType(),
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
        if (largestImage != null && largestImage.numImageTokens() > config.maxNumBatchedTokens())
            throw new IllegalArgumentException("--max-num-batched-tokens " + config.maxNumBatchedTokens()
                    + " is smaller than one image's " + largestImage.numImageTokens() + " tokens; raise it to at least "
                    + largestImage.numImageTokens());
        int numBlocks = KvCacheSizer.numBlocks(model, config, largestImage);
        log.info("KV cache: {} blocks of {} tokens = {} tokens", numBlocks, config.blockSize(),
                (long) numBlocks * config.blockSize());
        LlavaModelRunner runner = new LlavaModelRunner(model, numBlocks, config.blockSize());
        return new Loaded(model, new LlmEngine(config, numBlocks, runner), numBlocks);
    }

    /**
     * A blank LLaVA-1.5 pixel image of the model's input size, (3, side, side), for the worst-case profile; null for
     * LLaVA-NeXT, whose tiled input the runner takes in another shape (its worst case is not profiled yet).
     */
    public static ImageInput blankImage(LlavaModel model) {
        if (model.config().isNext()) return null;
        int side = model.config().visionConfig().imageSize();
        return ImageInput.ofPixels(new float[3 * side * side], side, side, model.config().numImageTokens());
    }
}

package dev.retina.server.offline;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.EngineStats;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.VlmConfig;
import dev.retina.server.input.ImagePipeline;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The offline API (vLLM's {@code LLM} class): loads a checkpoint with the same options and defaults as
 * {@code retina serve} ({@link ServerConfig}), starts the same batching engine, and generates for a list of
 * {@link Prompt}s at once. Prompts are raw (no chat template); images are preprocessed by the server's own image
 * loader ({@link ImagePipeline}: CLIP for LLaVA-1.5; for LLaVA-NeXT the static {@code --image-input-shape} resize,
 * anyres tiles and each image's token count from the model config).
 *
 * <pre>{@code
 * try (LLM llm = LLM.builder("demo").device(Device.CPU).build()) {
 *     List<RequestResult> results = llm.generate(List.of(
 *             Prompt.of("USER: <image>\nWhat is shown? ASSISTANT:", SamplingParams.greedy(16),
 *                     ImagePixelData.of(Path.of("cat.png")))));
 * }
 * }</pre>
 *
 * <p>Thread-safe: {@link #generate} and {@link #submit} may be called from several threads; all prompts run
 * concurrently through the engine. A model directory without tokenizer files (e.g. a config-only directory with
 * {@code --load-format dummy}) takes only token-id prompts, and its outputs carry no text.
 */
public final class LLM implements AutoCloseable {
    private final OfflineModel model;               // checkpoint, tokenizer, image pipeline, engine, output thread
    private final PromptPreprocessor preprocessor;

    /**
     * Loads the model and starts the engine.
     *
     * @throws ConfigException when an option contradicts the checkpoint
     * @throws IOException     when the checkpoint cannot be read
     */
    public LLM(ServerConfig config) throws IOException {
        model = new OfflineModel(config);
        ServerConfig.Resolved resolved = model.resolved();
        ImagePreparer images = new ImagePreparer(resolved.vlm(), model.llava().textConfig().hiddenSize(),
                model.images(), config.media().maxImagePixels());
        preprocessor = new PromptPreprocessor(model.modelDir(), model.tokenizer(), config.maxImagesPerPrompt(),
                resolved.maxModelLen(), model.eosTokenIds(), images,
                new PlaceholderExpander(resolved.vlm().imageTokenId()));
    }

    /** A builder over {@link ServerConfig}'s options, starting from {@code retina serve}'s defaults. */
    public static Builder builder(String model) {
        return new Builder(model);
    }

    /** Generates for every prompt concurrently; results come back in input order. */
    public List<RequestResult> generate(List<Prompt> prompts) {
        List<EngineRequest> requests = new ArrayList<>(prompts.size());
        // Every prompt is checked before any runs.
        for (Prompt p : prompts) requests.add(preprocessor.toEngineRequest(p));
        List<CompletableFuture<RequestResult>> futures = new ArrayList<>(requests.size());
        for (EngineRequest r : requests) futures.add(submit(r));
        List<RequestResult> results = new ArrayList<>(futures.size());
        try {
            for (CompletableFuture<RequestResult> f : futures) results.add(f.join());
        } catch (CompletionException e) {
            for (EngineRequest r : requests) model.engine().abort(r.requestId());
            throw e.getCause() instanceof RuntimeException re ? re : e;
        }
        return results;
    }

    public RequestResult generate(Prompt prompt) {
        return generate(List.of(prompt)).getFirst();
    }

    /**
     * Submits one prompt and returns at once; the future completes when all its choices finish (or fails with the
     * engine's error).
     *
     * @throws IllegalArgumentException when the prompt is invalid (placeholders vs images, lengths, feature shapes)
     */
    public CompletableFuture<RequestResult> submit(Prompt prompt) {
        return submit(preprocessor.toEngineRequest(prompt));
    }

    private CompletableFuture<RequestResult> submit(EngineRequest request) {
        OutputCollector collector = new OutputCollector(request, System.nanoTime(), model.tokenizer());
        model.engine().addRequest(request, collector);
        return collector.done().thenApplyAsync(collector::result, model.outputExecutor());
    }

    /** The engine's load (running, waiting, free KV blocks, preemptions). */
    public EngineStats engineStats() {
        return model.engine().stats();
    }

    /** Image placeholder tokens per image (image_feature_size). */
    public int numImageTokens() {
        return model.resolved().vlm().imageFeatureSize();
    }

    public int imageTokenId() {
        return model.resolved().vlm().imageTokenId();
    }

    public int maxModelLen() {
        return model.resolved().maxModelLen();
    }

    public int vocabSize() {
        return model.llava().textConfig().vocabSize();
    }

    /** The vision tower's input side, e.g. 336. */
    public int imageSize() {
        return model.llava().visionConfig().imageSize();
    }

    public int numKvBlocks() {
        return model.loaded().numBlocks();
    }

    /** "cpu()" or "gpu(0)". */
    public String deviceName() {
        return model.loaded().deviceName();
    }

    /** "float32" or "float16". */
    public String dtypeName() {
        return model.loaded().dtypeName();
    }

    /** Whether text prompts are accepted (the checkpoint has tokenizer files). */
    public boolean hasTokenizer() {
        return model.tokenizer() != null;
    }

    @Override
    public void close() {
        model.close();
    }

    /** {@code retina serve}'s options for offline use; unset ones keep the server's defaults. */
    public static final class Builder {
        private ServerConfig config;

        private Builder(String model) {
            config = ServerConfig.defaults(model);
        }

        private Builder with(Device device, Dtype dtype, Integer maxModelLen, Long seed, LoadFormat loadFormat,
                             VlmConfig vlm, EngineArgs engine) {
            ServerConfig c = config;
            config = new ServerConfig(c.model(), c.servedModelName(), c.host(), c.port(), c.chatTemplate(),
                    dtype != null ? dtype : c.dtype(), device != null ? device : c.device(),
                    maxModelLen != null ? maxModelLen : c.maxModelLen(), seed != null ? seed : c.seed(),
                    loadFormat != null ? loadFormat : c.loadFormat(), vlm != null ? vlm : c.vlm(),
                    c.imageFetchTimeout(), c.maxRequestBytes(), c.maxImageBytes(), engine != null ? engine : c.engine(),
                    c.media());
            return this;
        }

        /** The media options that apply offline: {@code --max-image-pixels}, {@code --limit-mm-per-prompt}. */
        public Builder media(dev.retina.server.config.MediaConfig media) {
            config = config.withMedia(media);
            return this;
        }

        public Builder device(Device device) {
            return with(device, null, null, null, null, null, null);
        }

        public Builder dtype(Dtype dtype) {
            return with(null, dtype, null, null, null, null, null);
        }

        public Builder maxModelLen(int maxModelLen) {
            return with(null, null, maxModelLen, null, null, null, null);
        }

        public Builder seed(long seed) {
            return with(null, null, null, seed, null, null, null);
        }

        public Builder loadFormat(LoadFormat loadFormat) {
            return with(null, null, null, null, loadFormat, null, null);
        }

        /** The VLM options ({@code image_input_type}, {@code image_feature_size}, ...). */
        public Builder vlm(VlmConfig vlm) {
            return with(null, null, null, null, null, vlm, null);
        }

        /** Shorthand for {@link #vlm} with only the image-processor backend changed (null: transformers 5's pick). */
        public Builder imageProcessorBackend(dev.retina.vision.ImageProcessorBackend backend) {
            return vlm(config.vlm().withImageProcessorBackend(backend));
        }

        /** Shorthand for {@link #vlm} with only the input type changed. */
        public Builder imageInputType(ImageInputType type) {
            VlmConfig v = config.vlm();
            return vlm(new VlmConfig(type, v.imageTokenId(), v.imageInputShape(), v.imageFeatureSize(),
                    v.imageProcessor(), v.imageProcessorRevision(), v.disableImageProcessor(),
                    v.imageProcessorBackend()));
        }

        /** The batching engine's options (max-num-seqs, KV cache size, ...). */
        public Builder engine(EngineArgs engine) {
            return with(null, null, null, null, null, null, engine);
        }

        public ServerConfig config() {
            return config;
        }

        public LLM build() throws IOException {
            return new LLM(config);
        }
    }
}

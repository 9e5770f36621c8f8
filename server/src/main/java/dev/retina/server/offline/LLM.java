package dev.retina.server.offline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.EngineFactory;
import dev.retina.engine.EngineRequest;
import dev.retina.engine.EngineStats;
import dev.retina.engine.FinishReason;
import dev.retina.engine.ImageInput;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.engine.TokenLogprobs;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.server.backend.DemoModel;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.VlmConfig;
import dev.retina.server.input.DecodedImageLoader;
import dev.retina.server.input.ImageDetail;
import dev.retina.server.input.ImagePipeline;
import dev.retina.tokenizer.Tokenizer;
import dev.retina.vision.ClipProcessorConfig;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageException;
import dev.retina.vision.RgbImage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

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
    private final Path modelDir;
    private final LlavaConfig llava;
    private final ServerConfig.Resolved resolved;
    private final Tokenizer tokenizer;          // null: token-id prompts only
    private final ImagePipeline images;         // null: no pixel images (disabled, image_features, no processor config)
    private final ImageDecoder decoder;         // the server's --max-image-pixels
    private final int maxImagesPerPrompt;
    private final List<Integer> eosTokenIds;
    private final EngineFactory.Loaded loaded;
    private final ExecutorService outputExecutor;
    private final AtomicLong nextRequestId = new AtomicLong();

    /**
     * Loads the model and starts the engine.
     *
     * @throws ConfigException when an option contradicts the checkpoint
     * @throws IOException     when the checkpoint cannot be read
     */
    public LLM(ServerConfig config) throws IOException {
        modelDir = config.isDemoModel() ? DemoModel.directory() : Path.of(config.model());
        if (!Files.isRegularFile(modelDir.resolve("config.json")))
            throw new ConfigException("model " + config.model() + " is not a checkpoint directory (no config.json)");
        llava = LlavaConfig.load(modelDir);
        resolved = config.resolve(LlavaBackendLoader.facts(llava), modelDir.toString());
        boolean hasTokenizer = Files.isRegularFile(modelDir.resolve("tokenizer.json"));
        tokenizer = hasTokenizer ? Tokenizer.load(modelDir) : null;
        eosTokenIds = tokenizer != null ? tokenizer.eosTokenIds() : configEosTokenIds(modelDir);
        decoder = new ImageDecoder(config.media().maxImagePixels());
        maxImagesPerPrompt = config.maxImagesPerPrompt();
        String processorDir = resolved.vlm().imageProcessor();
        boolean pixels = resolved.vlm().imageInputType() == ImageInputType.PIXEL_VALUES && processorDir != null
                && Files.isRegularFile(Path.of(processorDir).resolve(ClipProcessorConfig.PREPROCESSOR_CONFIG));
        try {
            // The serving pipeline itself, so processor checks (tile size, pinpoints) and preprocessing are the same.
            images = pixels ? ImagePipeline.create(config, resolved, llava) : null;
        } catch (RuntimeException e) {
            if (tokenizer != null) tokenizer.close();
            throw e;
        }
        try {
            loaded = LlavaBackendLoader.startEngine(config, modelDir, resolved.maxModelLen());
        } catch (IOException | RuntimeException e) {
            closeInputs();
            throw e;
        } catch (Exception e) {
            closeInputs();
            throw new IOException(e);
        }
        outputExecutor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "retina-offline-output");
            t.setDaemon(true);
            return t;
        });
    }

    /** A builder over {@link ServerConfig}'s options, starting from {@code retina serve}'s defaults. */
    public static Builder builder(String model) {
        return new Builder(model);
    }

    /** Generates for every prompt concurrently; results come back in input order. */
    public List<RequestResult> generate(List<Prompt> prompts) {
        List<EngineRequest> requests = new ArrayList<>(prompts.size());
        for (Prompt p : prompts) requests.add(toEngineRequest(p)); // every prompt is checked before any runs
        List<CompletableFuture<RequestResult>> futures = new ArrayList<>(requests.size());
        for (EngineRequest r : requests) futures.add(submit(r));
        List<RequestResult> results = new ArrayList<>(futures.size());
        try {
            for (CompletableFuture<RequestResult> f : futures) results.add(f.join());
        } catch (CompletionException e) {
            for (EngineRequest r : requests) loaded.engine().abort(r.requestId());
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
        return submit(toEngineRequest(prompt));
    }

    private CompletableFuture<RequestResult> submit(EngineRequest request) {
        Collector collector = new Collector(request, System.nanoTime());
        loaded.engine().addRequest(request, collector);
        return collector.done.thenApplyAsync(collector::result, outputExecutor);
    }

    /** Turns a prompt into an engine request: tokenize, preprocess images, expand placeholders. */
    EngineRequest toEngineRequest(Prompt prompt) {
        int[] ids;
        if (prompt.text() != null) {
            if (tokenizer == null)
                throw new IllegalArgumentException("the model at " + modelDir + " has no tokenizer.json; give "
                        + "prompts as token ids");
            ids = tokenizer.encodePrompt(prompt.text());
        } else {
            ids = prompt.promptTokenIds();
        }
        if (prompt.images().size() > maxImagesPerPrompt)
            throw new IllegalArgumentException("the prompt carries " + prompt.images().size() + " images; at most "
                    + maxImagesPerPrompt + " per prompt are allowed (limit_mm_per_prompt image=N)");
        List<ImageInput> images = new ArrayList<>(prompt.images().size());
        for (int i = 0; i < prompt.images().size(); i++) images.add(toImageInput(prompt.images().get(i), i));
        int[] promptTokenIds = expandPlaceholders(ids, images);
        if (promptTokenIds.length >= resolved.maxModelLen())
            throw new IllegalArgumentException("the prompt takes " + promptTokenIds.length + " tokens (images "
                    + "included); the model's context is " + resolved.maxModelLen());
        String requestId = "offline-" + nextRequestId.getAndIncrement();
        return new EngineRequest(requestId, promptTokenIds, images, prompt.params(), eosTokenIds);
    }

    private ImageInput toImageInput(ImageData image, int index) {
        int numImageTokens = resolved.vlm().imageFeatureSize();
        ImageInputType type = resolved.vlm().imageInputType();
        return switch (image) {
            case ImageFeatureData f -> {
                if (type != ImageInputType.IMAGE_FEATURES)
                    throw new IllegalArgumentException("image " + index + " is ImageFeatureData, but this LLM takes "
                            + type.cliName() + " (build it with image_input_type image_features)");
                int hidden = llava.textConfig().hiddenSize();
                if (f.numImageTokens() != numImageTokens || f.hiddenSize() != hidden)
                    throw new IllegalArgumentException("image " + index + ": image features have shape "
                            + f.shapeString() + ", expected (" + numImageTokens + ", " + hidden + ")");
                yield new ImageInput(null, 0, 0, f.features(), numImageTokens, null);
            }
            case ImagePixelData p -> {
                if (type != ImageInputType.PIXEL_VALUES)
                    throw new IllegalArgumentException("image " + index + " is ImagePixelData, but this LLM takes "
                            + "image_features (give ImageFeatureData)");
                if (images == null)
                    throw new IllegalArgumentException("this LLM has no image processor (disabled, or no "
                            + "preprocessor_config.json in " + resolved.vlm().imageProcessor() + ")");
                DecodedImageLoader loader = images.loader();
                // AUTO detail: the full anyres grid for LLaVA-NeXT, as the server's default.
                yield loader.prepare(decode(p, index), ImageDetail.AUTO);
            }
        };
    }

    private RgbImage decode(ImagePixelData p, int index) {
        if (p.image() != null) return p.image();
        try {
            byte[] bytes = p.encoded() != null ? p.encoded() : Files.readAllBytes(p.path());
            return decoder.read(bytes);
        } catch (ImageException | IOException e) {
            throw new IllegalArgumentException("image " + index + (p.path() != null ? " (" + p.path() + ")" : "")
                    + ": " + e.getMessage(), e);
        }
    }

    /**
     * Expands each image's placeholder to that image's token count (fixed for LLaVA-1.5, per image size for
     * LLaVA-NeXT). A run of placeholder ids starting at image k is either the seed's pre-expanded form (exactly the
     * token counts of images k, k+1, ... added up: kept as is) or one placeholder per image (each expanded, as the
     * server does).
     */
    int[] expandPlaceholders(int[] ids, List<ImageInput> images) {
        int imageTokenId = resolved.vlm().imageTokenId();
        int[] out = new int[ids.length];
        int k = 0;
        int image = 0; // the next image to place
        for (int i = 0; i < ids.length; ) {
            if (ids[i] != imageTokenId) {
                if (k == out.length) out = Arrays.copyOf(out, out.length * 2);
                out[k++] = ids[i++];
                continue;
            }
            int run = 0;
            while (i + run < ids.length && ids[i + run] == imageTokenId) run++;
            i += run;
            int last = image;
            long preExpanded = 0;
            while (last < images.size() && preExpanded < run) preExpanded += images.get(last++).numImageTokens();
            if (preExpanded != run) {
                if (run > images.size() - image) {
                    if (image < images.size())
                        throw new IllegalArgumentException("the prompt has a run of " + run + " image placeholders: "
                                + "neither one placeholder per image nor the image tokens of image(s) " + image
                                + ".. (" + tokenCounts(images, image) + ")");
                    int found = image + run;
                    for (int j = i; j < ids.length; j++) if (ids[j] == imageTokenId) found++;
                    throw new IllegalArgumentException("the prompt has placeholders for " + found + " image(s) but "
                            + "carries " + images.size() + " image(s)");
                }
                last = image + run; // one placeholder per image
            }
            for (; image < last; image++) {
                int n = images.get(image).numImageTokens();
                if (k + n > out.length) out = Arrays.copyOf(out, Math.max(out.length * 2, k + n));
                Arrays.fill(out, k, k + n, imageTokenId);
                k += n;
            }
        }
        if (image != images.size())
            throw new IllegalArgumentException("the prompt has placeholders for " + image + " image(s) but carries "
                    + images.size() + " image(s)");
        return Arrays.copyOf(out, k);
    }

    private static String tokenCounts(List<ImageInput> images, int from) {
        return String.join(", ", images.subList(from, images.size()).stream()
                .map(i -> String.valueOf(i.numImageTokens())).toList());
    }

    /** The engine's load (running, waiting, free KV blocks, preemptions). */
    public EngineStats engineStats() {
        return loaded.engine().stats();
    }

    /** Image placeholder tokens per image (image_feature_size). */
    public int numImageTokens() {
        return resolved.vlm().imageFeatureSize();
    }

    public int imageTokenId() {
        return resolved.vlm().imageTokenId();
    }

    public int maxModelLen() {
        return resolved.maxModelLen();
    }

    public int vocabSize() {
        return llava.textConfig().vocabSize();
    }

    /** The vision tower's input side, e.g. 336. */
    public int imageSize() {
        return llava.visionConfig().imageSize();
    }

    public int numKvBlocks() {
        return loaded.numBlocks();
    }

    /** "cpu()" or "gpu(0)". */
    public String deviceName() {
        return loaded.deviceName();
    }

    /** "float32" or "float16". */
    public String dtypeName() {
        return loaded.dtypeName();
    }

    /** Whether text prompts are accepted (the checkpoint has tokenizer files). */
    public boolean hasTokenizer() {
        return tokenizer != null;
    }

    @Override
    public void close() {
        loaded.close();
        outputExecutor.shutdownNow();
        closeInputs();
    }

    private void closeInputs() {
        if (images != null) images.close();
        if (tokenizer != null) tokenizer.close();
    }

    private static List<Integer> configEosTokenIds(Path modelDir) throws IOException {
        for (String file : new String[]{"generation_config.json", "config.json"}) {
            Path path = modelDir.resolve(file);
            if (!Files.isRegularFile(path)) continue;
            JsonNode root = new ObjectMapper().readTree(path.toFile());
            JsonNode eos = root.path("eos_token_id");
            if (eos.isMissingNode()) eos = root.path("text_config").path("eos_token_id");
            if (eos.isInt()) return List.of(eos.asInt());
            if (eos.isArray()) {
                List<Integer> ids = new ArrayList<>();
                eos.forEach(e -> ids.add(e.asInt()));
                return List.copyOf(ids);
            }
        }
        return List.of();
    }

    /** Gathers one request's outputs on the engine thread (cheap appends only); decoding happens after. */
    private final class Collector implements OutputSink {
        private final EngineRequest request;
        private final long arrivalNanos;
        private final List<List<Integer>> tokens = new ArrayList<>();
        private final List<List<TokenLogprobs>> logprobs = new ArrayList<>();
        private final FinishReason[] reasons;
        private int numFinished;
        private long firstTokenNanos = -1;
        private long finishedNanos;
        final CompletableFuture<Void> done = new CompletableFuture<>();

        Collector(EngineRequest request, long arrivalNanos) {
            this.request = request;
            this.arrivalNanos = arrivalNanos;
            int n = request.params().n();
            reasons = new FinishReason[n];
            for (int i = 0; i < n; i++) {
                tokens.add(new ArrayList<>());
                logprobs.add(request.params().logprobs() == null ? null : new ArrayList<>());
            }
        }

        @Override
        public void accept(RequestOutput out) {
            if (out.error() != null) {
                done.completeExceptionally(new IllegalStateException("request " + request.requestId() + ": "
                        + out.error()));
                return;
            }
            int c = out.choiceIndex();
            if (firstTokenNanos < 0 && out.newTokenIds().length > 0) firstTokenNanos = System.nanoTime();
            for (int id : out.newTokenIds()) tokens.get(c).add(id);
            if (out.logprobs() != null && logprobs.get(c) != null) logprobs.get(c).addAll(out.logprobs());
            if (out.finished() && reasons[c] == null) {
                reasons[c] = out.finishReason();
                if (++numFinished == reasons.length) {
                    finishedNanos = System.nanoTime();
                    done.complete(null);
                }
            }
        }

        RequestResult result(Void ignored) {
            List<CompletionOutput> outputs = new ArrayList<>(reasons.length);
            for (int c = 0; c < reasons.length; c++) {
                int[] ids = tokens.get(c).stream().mapToInt(Integer::intValue).toArray();
                String text = tokenizer == null ? null : tokenizer.decode(ids, true);
                List<TokenLogprobs> lp = logprobs.get(c) == null ? null : List.copyOf(logprobs.get(c));
                outputs.add(new CompletionOutput(c, text, ids, reasons[c], lp));
            }
            long first = firstTokenNanos < 0 ? finishedNanos : firstTokenNanos;
            return new RequestResult(request.requestId(), request.promptTokenIds(), outputs,
                    new RequestMetrics(arrivalNanos, first, finishedNanos));
        }
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

        /** Shorthand for {@link #vlm} with only the input type changed. */
        public Builder imageInputType(ImageInputType type) {
            VlmConfig v = config.vlm();
            return vlm(new VlmConfig(type, v.imageTokenId(), v.imageInputShape(), v.imageFeatureSize(),
                    v.imageProcessor(), v.imageProcessorRevision(), v.disableImageProcessor()));
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

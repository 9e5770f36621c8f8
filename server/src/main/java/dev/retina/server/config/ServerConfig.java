package dev.retina.server.config;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * Everything {@code retina serve} was told, built once from the command line (the only place that reads flags and
 * environment variables) and validated here. Facts of the checkpoint are checked later, through {@link #resolve}.
 *
 * @param model             a checkpoint directory, or {@link #DEMO_MODEL} for the bundled demo checkpoint
 * @param servedModelName   the name clients must send as {@code model}
 * @param host              the address to bind
 * @param port              the TCP port; 0 picks a free one (tests)
 * @param chatTemplate      a Jinja chat template file overriding the checkpoint's, or null
 * @param maxModelLen       the longest prompt plus completion, or null for the checkpoint's
 * @param seed              the engine's random seed
 * @param imageFetchTimeout how long one image URL may take to fetch
 * @param maxRequestBytes   the largest HTTP request body accepted (413 above)
 * @param maxImageBytes     the largest image a URL may return
 * @param engine            the batching engine's flags
 * @param media             image URL policy, images per prompt, encoder cache ({@link MediaConfig})
 */
public record ServerConfig(String model, String servedModelName, String host, int port, Path chatTemplate,
                           Dtype dtype, Device device, Integer maxModelLen, long seed, LoadFormat loadFormat,
                           VlmConfig vlm, Duration imageFetchTimeout, int maxRequestBytes, long maxImageBytes,
                           EngineArgs engine, MediaConfig media) {

    /** The {@code --model} value that selects the tiny random LLaVA-1.5 checkpoint bundled in the jar. */
    public static final String DEMO_MODEL = "demo";

    public ServerConfig {
        Objects.requireNonNull(model, "model");
        if (model.isBlank()) throw new ConfigException("--model must not be empty");
        if (servedModelName == null || servedModelName.isBlank()) servedModelName = model;
        Objects.requireNonNull(host, "host");
        if (port < 0 || port > 65535) throw new ConfigException("--port must be in 0..65535, got " + port);
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(loadFormat, "loadFormat");
        Objects.requireNonNull(vlm, "vlm");
        if (maxModelLen != null && maxModelLen < 1)
            throw new ConfigException("--max-model-len must be >= 1, got " + maxModelLen);
        if (imageFetchTimeout == null || imageFetchTimeout.isNegative() || imageFetchTimeout.isZero())
            throw new ConfigException("the image fetch timeout must be positive, got " + imageFetchTimeout);
        if (maxRequestBytes < 1024) throw new ConfigException("--max-request-bytes must be >= 1024, got " + maxRequestBytes);
        if (maxImageBytes < 1) throw new ConfigException("--max-image-bytes must be >= 1, got " + maxImageBytes);
        if (chatTemplate != null && !java.nio.file.Files.isRegularFile(chatTemplate))
            throw new ConfigException("--chat-template " + chatTemplate + " is not a readable file");
        if (engine == null) engine = EngineArgs.defaults();
        if (media == null) media = MediaConfig.defaults();
        if (media.limitImagesPerPrompt() != null && vlm.imageInputShape() != null
                && !media.limitImagesPerPrompt().equals(vlm.imageInputShape().get(0)))
            throw new ConfigException("--limit-mm-per-prompt image=" + media.limitImagesPerPrompt()
                    + " contradicts --image-input-shape, whose N is " + vlm.imageInputShape().get(0));
    }

    /** Without engine flags: the engine's defaults. */
    public ServerConfig(String model, String servedModelName, String host, int port, Path chatTemplate,
                        Dtype dtype, Device device, Integer maxModelLen, long seed, LoadFormat loadFormat,
                        VlmConfig vlm, Duration imageFetchTimeout, int maxRequestBytes, long maxImageBytes,
                        MediaConfig media) {
        this(model, servedModelName, host, port, chatTemplate, dtype, device, maxModelLen, seed, loadFormat, vlm,
                imageFetchTimeout, maxRequestBytes, maxImageBytes, EngineArgs.defaults(), media);
    }

    /** Without media settings: {@link MediaConfig#defaults()}. */
    public ServerConfig(String model, String servedModelName, String host, int port, Path chatTemplate,
                        Dtype dtype, Device device, Integer maxModelLen, long seed, LoadFormat loadFormat,
                        VlmConfig vlm, Duration imageFetchTimeout, int maxRequestBytes, long maxImageBytes,
                        EngineArgs engine) {
        this(model, servedModelName, host, port, chatTemplate, dtype, device, maxModelLen, seed, loadFormat, vlm,
                imageFetchTimeout, maxRequestBytes, maxImageBytes, engine, MediaConfig.defaults());
    }

    /** Without engine flags and media settings: their defaults. */
    public ServerConfig(String model, String servedModelName, String host, int port, Path chatTemplate,
                        Dtype dtype, Device device, Integer maxModelLen, long seed, LoadFormat loadFormat,
                        VlmConfig vlm, Duration imageFetchTimeout, int maxRequestBytes, long maxImageBytes) {
        this(model, servedModelName, host, port, chatTemplate, dtype, device, maxModelLen, seed, loadFormat, vlm,
                imageFetchTimeout, maxRequestBytes, maxImageBytes, EngineArgs.defaults(), MediaConfig.defaults());
    }

    public ServerConfig withEngine(EngineArgs newEngine) {
        return new ServerConfig(model, servedModelName, host, port, chatTemplate, dtype, device, maxModelLen, seed,
                loadFormat, vlm, imageFetchTimeout, maxRequestBytes, maxImageBytes, newEngine, media);
    }

    public ServerConfig withMedia(MediaConfig newMedia) {
        return new ServerConfig(model, servedModelName, host, port, chatTemplate, dtype, device, maxModelLen, seed,
                loadFormat, vlm, imageFetchTimeout, maxRequestBytes, maxImageBytes, engine, newMedia);
    }

    /**
     * Images one request may carry: {@code --limit-mm-per-prompt image=N}, else the N of an explicit
     * {@code --image-input-shape} (vLLM 0.4's meaning), else {@link MediaConfig#DEFAULT_LIMIT_IMAGES_PER_PROMPT}.
     */
    public int maxImagesPerPrompt() {
        if (media.limitImagesPerPrompt() != null) return media.limitImagesPerPrompt();
        if (vlm.imageInputShape() != null) return vlm.imageInputShape().get(0);
        return MediaConfig.DEFAULT_LIMIT_IMAGES_PER_PROMPT;
    }

    /** A configuration with every default, for the given model (tests and examples). */
    public static ServerConfig defaults(String model) {
        return new ServerConfig(model, null, "127.0.0.1", 0, null, Dtype.AUTO, Device.AUTO, null, 0L, LoadFormat.AUTO,
                VlmConfig.defaults(), Duration.ofSeconds(5), 20 * 1024 * 1024, 20L * 1024 * 1024);
    }

    /** The same settings for another model location; the served name stays what it was (e.g. the Hub id). */
    public ServerConfig withModel(String newModel) {
        return new ServerConfig(newModel, servedModelName, host, port, chatTemplate, dtype, device, maxModelLen, seed,
                loadFormat, vlm, imageFetchTimeout, maxRequestBytes, maxImageBytes, engine, media);
    }

    public ServerConfig withPort(int newPort) {
        return new ServerConfig(model, servedModelName, host, newPort, chatTemplate, dtype, device, maxModelLen, seed,
                loadFormat, vlm, imageFetchTimeout, maxRequestBytes, maxImageBytes, engine, media);
    }

    public ServerConfig withImageFetchTimeout(Duration timeout) {
        return new ServerConfig(model, servedModelName, host, port, chatTemplate, dtype, device, maxModelLen, seed,
                loadFormat, vlm, timeout, maxRequestBytes, maxImageBytes, engine, media);
    }

    public boolean isDemoModel() {
        return DEMO_MODEL.equals(model);
    }

    /**
     * Checks the flags against the checkpoint.
     *
     * @param modelDir the checkpoint directory actually used (the extracted demo model for {@link #DEMO_MODEL})
     * @throws ConfigException naming both values when a flag contradicts the checkpoint
     */
    public Resolved resolve(CheckpointFacts facts, String modelDir) {
        int modelLen = facts.maxPositionEmbeddings();
        if (maxModelLen != null) {
            if (maxModelLen > facts.maxPositionEmbeddings())
                throw new ConfigException("--max-model-len " + maxModelLen + " exceeds the checkpoint's "
                        + "max_position_embeddings " + facts.maxPositionEmbeddings());
            modelLen = maxModelLen;
        }
        VlmConfig.Resolved resolvedVlm = vlm.resolve(facts, modelDir);
        if (modelLen <= resolvedVlm.imageFeatureSize())
            throw new ConfigException("max model length " + modelLen + " leaves no room beside one image's "
                    + resolvedVlm.imageFeatureSize() + " image tokens");
        return new Resolved(modelLen, resolvedVlm);
    }

    /** The settings in force after checking against the checkpoint. */
    public record Resolved(int maxModelLen, VlmConfig.Resolved vlm) {
    }
}

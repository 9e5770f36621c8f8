package dev.retina.server;

import dev.retina.server.config.ConfigException;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.MediaConfig;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.config.ServingOptions;
import dev.retina.server.config.VlmConfig;
import dev.retina.vision.ImageProcessorBackend;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code retina serve}: parses flags (and the image-fetch-timeout environment variables: the only place Retina reads
 * the environment) into one {@link ServerConfig}, then runs the server until it is stopped.
 */
@Command(name = "serve", mixinStandardHelpOptions = true, showDefaultValues = true,
        description = "Serve a LLaVA checkpoint over the OpenAI chat completions API.%n"
                + "Environment: RETINA_IMAGE_FETCH_TIMEOUT or VLLM_IMAGE_FETCH_TIMEOUT = seconds one image URL may "
                + "take (default 5; RETINA_ wins when both are set).")
public final class ServeCommand implements Callable<Integer> {
    static final double DEFAULT_IMAGE_FETCH_TIMEOUT_SECONDS = 5;
    /** How long in-flight requests may finish after SIGTERM. */
    @Option(names = "--revision", defaultValue = "main",
            description = "Branch, tag or commit of a Hugging Face model id given as --model. Default: ${DEFAULT-VALUE}.")
    String revision;

    @Option(names = "--drain-timeout", paramLabel = "SECONDS", defaultValue = "30",
            description = "On SIGTERM: how long requests in flight may still run while new ones get 503 and /ready "
                    + "fails, before the process exits (Kubernetes' terminationGracePeriodSeconds should exceed it). "
                    + "Default: ${DEFAULT-VALUE}.")
    int drainTimeoutSeconds;


    @Option(names = "--served-model-name", description = "Model name clients send as 'model' (default: the --model value).")
    String servedModelName;

    @Option(names = "--host", defaultValue = "0.0.0.0",
            description = "Address to bind; all interfaces by default, as vLLM does (use 127.0.0.1 for local only).")
    String host;

    @Option(names = "--port", defaultValue = "8000", description = "TCP port.")
    int port;

    @Option(names = "--chat-template", description = "Jinja chat template file, overriding the checkpoint's.")
    Path chatTemplate;






    @Option(names = "--image-input-type", defaultValue = "pixel_values",
            description = "pixel_values|image_features: what the model receives per image.")
    String imageInputType;

    @Option(names = "--image-token-id", description = "Id of the image placeholder token (default and check: the checkpoint's image_token_index).")
    Integer imageTokenId;

    @Option(names = "--image-input-shape", description = "Largest image input, N,C,H,W for pixel_values (e.g. 1,3,336,336) or N,F,D for image_features; N = images per prompt (default: 1 and the checkpoint's sizes).")
    String imageInputShape;

    @Option(names = "--image-feature-size", description = "Image tokens per image (default and check: the checkpoint's, e.g. 576).")
    Integer imageFeatureSize;

    @Option(names = "--image-processor", description = "Directory with preprocessor_config.json (default: the model's).")
    String imageProcessor;

    @Option(names = "--image-processor-revision", description = "Hub revision of the image processor (Hub ids only).")
    String imageProcessorRevision;

    @Option(names = "--image-processor-backend", paramLabel = "auto|pil|torchvision",
            description = "Whose pixels to reproduce bit for bit: transformers 5's torchvision image processors or the "
                    + "PIL ones (CLIPImageProcessorPil, transformers 4's slow processors). auto (default): what "
                    + "transformers 5's AutoImageProcessor loads for the checkpoint, i.e. torchvision unless "
                    + "preprocessor_config.json names a ...Pil class.")
    String imageProcessorBackend;

    @Option(names = "--disable-image-processor", description = "Load no image processor; requests with images are then refused.")
    boolean disableImageProcessor;

    @Option(names = {"--max-request-body", "--max-request-bytes"}, defaultValue = "20971520",
            description = "Largest HTTP request body in bytes (413 above).")
    int maxRequestBytes;

    @Option(names = "--max-image-bytes", defaultValue = "20971520", description = "Largest image an image URL may return.")
    long maxImageBytes;

    // ---- Batching engine flags (grouped; shared with retina bench) ----
    @Mixin
    ModelOptions modelOptions = new ModelOptions();

    @Mixin
    EngineOptions engine = new EngineOptions();

    EngineArgs engineArgs() {
        return engine.engineArgs();
    }
    // ---- end of engine flags ----

    // Media flags (issue 5): image URL policy, images per prompt, encoder cache. Grouped into MediaConfig.
    @Option(names = "--allowed-local-media-path", description = "Directory under which file: URLs and absolute paths "
            + "may be read as images (default: none; local files refused).")
    Path allowedLocalMediaPath;

    @Option(names = "--allow-private-media-urls", description = "Let image URLs reach loopback, private, link-local "
            + "and other non-public addresses (refused by default).")
    boolean allowPrivateMediaUrls;

    @Option(names = "--allowed-media-domains", description = "Comma-separated hosts image URLs may use, each with its "
            + "subdomains (default: any public host).")
    String allowedMediaDomains;

    @Option(names = "--max-media-redirects", defaultValue = "3", description = "Redirects followed per image URL.")
    int maxMediaRedirects;

    @Option(names = "--max-image-pixels", defaultValue = "89478485",
            description = "Largest decoded image, width x height (Pillow's limit by default).")
    long maxImagePixels;

    @Option(names = "--limit-mm-per-prompt", description = "Images per request, as image=N or {\"image\": N} "
            + "(default: the N of --image-input-shape if given, else 4).")
    String limitMmPerPrompt;

    @Option(names = "--encoder-cache-size", defaultValue = "16384", description = "Vision-encoder outputs kept by "
            + "image content, in image tokens (576 per LLaVA-1.5 image); 0 disables the cache.")
    int encoderCacheSize;

    // ---- Front-door flags (issue 4): auth, CORS, admission, timeouts, logs, TLS, response shaping. See ServingOptions.
    @Option(names = "--api-key", description = "Key clients must send as 'Authorization: Bearer <key>' on /v1/*, "
            + "/tokenize and /detokenize (401 otherwise); repeat for several keys. Also from env RETINA_API_KEY. "
            + "/health, /ready, /metrics and /version stay open. Default: no auth.")
    List<String> apiKeys;

    @Option(names = "--allowed-origins", split = ",", defaultValue = "*", description = "CORS origins, comma-separated.")
    List<String> allowedOrigins;

    @Option(names = "--allowed-methods", split = ",", defaultValue = "*", description = "CORS methods, comma-separated.")
    List<String> allowedMethods;

    @Option(names = "--allowed-headers", split = ",", defaultValue = "*", description = "CORS request headers, comma-separated.")
    List<String> allowedHeaders;

    @Option(names = "--max-num-waiting", defaultValue = "0", description = "Most generation requests waiting beyond "
            + "those the engine runs; above it 429 with Retry-After. 0 = unbounded.")
    int maxNumWaiting;

    @Option(names = "--request-timeout", description = "Seconds a request may take; after that it is aborted "
            + "(504, code request_timeout; a started stream is cut). Default: no limit.")
    Double requestTimeoutSeconds;

    @Option(names = "--log-level", defaultValue = "info", description = "trace|debug|info|warn|error (Retina's loggers; "
            + "-Dlogback.configurationFile=FILE replaces the whole logging setup).")
    String logLevel;

    @Option(names = "--disable-log-requests", description = "No INFO line per request.")
    boolean disableLogRequests;

    @Option(names = "--enable-request-id-headers", description = "Echo X-Request-Id on every response (a UUID when the "
            + "client sent none).")
    boolean enableRequestIdHeaders;

    @Option(names = "--ssl-keyfile", description = "PEM private key (PKCS#8) for HTTPS; with --ssl-certfile.")
    Path sslKeyFile;

    @Option(names = "--ssl-certfile", description = "PEM certificate chain for HTTPS; with --ssl-keyfile.")
    Path sslCertFile;

    @Option(names = "--response-role", defaultValue = "assistant", description = "Role written in chat responses.")
    String responseRole;

    @Option(names = "--return-tokens-as-token-ids", description = "Write logprob tokens as 'token_id:N'.")
    boolean returnTokensAsTokenIds;

    /** The front-door flags plus RETINA_API_KEY from {@code env}, validated. */
    ServingOptions servingOptions(Map<String, String> env) {
        List<String> keys = new java.util.ArrayList<>(apiKeys == null ? List.of() : apiKeys);
        String envKey = env.get("RETINA_API_KEY");
        if (envKey != null && !envKey.isBlank()) keys.add(envKey.strip());
        Duration timeout = null;
        if (requestTimeoutSeconds != null) {
            if (!(requestTimeoutSeconds > 0) || requestTimeoutSeconds.isInfinite())
                throw new ConfigException("--request-timeout must be a positive number of seconds, got " + requestTimeoutSeconds);
            timeout = Duration.ofNanos(Math.round(requestTimeoutSeconds * 1e9));
        }
        return new ServingOptions(keys, allowedOrigins, allowedMethods, allowedHeaders, maxNumWaiting, timeout,
                !disableLogRequests, enableRequestIdHeaders, sslKeyFile, sslCertFile, responseRole,
                returnTokensAsTokenIds);
    }

    /** Sets Retina's log level (the CLI layer owns logging setup). */
    static void applyLogLevel(String level) {
        ch.qos.logback.classic.Level parsed = ch.qos.logback.classic.Level.toLevel(level, null);
        if (parsed == null) throw new ConfigException("--log-level must be trace, debug, info, warn or error, got '" + level + "'");
        if (org.slf4j.LoggerFactory.getILoggerFactory() instanceof ch.qos.logback.classic.LoggerContext ctx)
            ctx.getLogger("dev.retina").setLevel(parsed);
    }
    // ---- end of front-door flags ----

    /** How the model gets loaded; replaced in tests. */
    BackendLoader loader = BackendLoaders.standard();

    @Override
    public Integer call() throws Exception {
        ServerConfig config;
        ServingOptions options;
        try {
            config = toConfig(System.getenv());
            options = servingOptions(System.getenv());
            applyLogLevel(logLevel);
            if (drainTimeoutSeconds < 0)
                throw new ConfigException("--drain-timeout must be >= 0 seconds, got " + drainTimeoutSeconds);
        } catch (ConfigException e) {
            System.err.println("retina serve: " + e.getMessage());
            return 2;
        }
        try {
            config = resolveHubModel(config, System.getenv());
        } catch (ConfigException e) {
            System.err.println("retina serve: " + e.getMessage());
            return 2;
        }
        try (RetinaServer server = RetinaServer.start(config, options, loader)) {
            // SIGTERM (Kubernetes, docker stop): stop taking generations (503 + Retry-After, /ready 503), let those in
            // flight finish within --drain-timeout, then exit 0: the JVM's own SIGTERM exit would report 143.
            Duration drain = Duration.ofSeconds(drainTimeoutSeconds);
            sun.misc.Signal.handle(new sun.misc.Signal("TERM"), signal -> Thread.ofPlatform().name("retina-drain").start(() -> {
                org.slf4j.LoggerFactory.getLogger(ServeCommand.class).info(
                        "SIGTERM: draining (up to {} s), then exiting", drainTimeoutSeconds);
                boolean finished = server.drain(drain);
                server.close();
                org.slf4j.LoggerFactory.getLogger(ServeCommand.class).info("drained ({}); exiting",
                        finished ? "every request finished" : "the drain timeout cut requests off");
                System.exit(0);
            }));
            // Other exits (SIGINT, System.exit elsewhere): drain briefly on the way out.
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                server.drain(drain);
                server.close();
            }, "retina-shutdown"));
            server.awaitClose();
        } catch (ConfigException e) {
            System.err.println("retina serve: " + e.getMessage());
            return 2;
        }
        return 0;
    }

    /**
     * A {@code --model} that names a Hugging Face repository ({@code org/name}, not a local directory) is fetched
     * into the Hub cache first: {@code HF_ENDPOINT} (default https://huggingface.co), {@code HF_HOME} (default
     * ~/.cache/huggingface), {@code HF_TOKEN} for gated or private models, {@code HF_HUB_OFFLINE=1} for the cache
     * only. The served name stays the id.
     */
    ServerConfig resolveHubModel(ServerConfig config, Map<String, String> env) throws Exception {
        if (config.isDemoModel() || !HubDownloader.isRepoId(config.model())) return config;
        String home = env.get("HF_HOME");
        if (home == null || home.isBlank()) {
            String xdg = env.get("XDG_CACHE_HOME");
            home = (xdg == null || xdg.isBlank() ? System.getProperty("user.home") + "/.cache" : xdg) + "/huggingface";
        }
        String token = env.getOrDefault("HF_TOKEN", env.get("HUGGING_FACE_HUB_TOKEN"));
        String offline = env.getOrDefault("HF_HUB_OFFLINE", "0");
        HubDownloader hub = new HubDownloader(env.getOrDefault("HF_ENDPOINT", "https://huggingface.co"),
                java.nio.file.Path.of(home), token, offline.equals("1") || offline.equalsIgnoreCase("true"),
                System.console() != null ? System.err : null);
        return config.withModel(hub.fetch(config.model(), revision).toString());
    }

    /** The flags (already parsed into this object) plus the environment, as one validated config. */
    ServerConfig toConfig(Map<String, String> env) {
        VlmConfig vlm = new VlmConfig(parseImageInputType(imageInputType), imageTokenId,
                imageInputShape == null ? null : VlmConfig.parseShape(imageInputShape), imageFeatureSize,
                imageProcessor, imageProcessorRevision, disableImageProcessor,
                imageProcessorBackend == null ? null : parseBackend(imageProcessorBackend));
        ModelOptions m = modelOptions;
        return new ServerConfig(m.model, servedModelName, host, port, chatTemplate, m.dtype, m.device, m.maxModelLen,
                m.seed, m.loadFormat, vlm, imageFetchTimeout(env), maxRequestBytes, maxImageBytes, engineArgs(), mediaConfig());
    }

    MediaConfig mediaConfig() {
        return new MediaConfig(allowedLocalMediaPath, allowPrivateMediaUrls, MediaConfig.parseDomains(allowedMediaDomains),
                maxMediaRedirects, maxImagePixels,
                limitMmPerPrompt == null ? null : MediaConfig.parseImageLimit(limitMmPerPrompt), encoderCacheSize);
    }

    static ImageProcessorBackend parseBackend(String value) {
        if (value.equalsIgnoreCase("auto")) return null;
        try {
            return ImageProcessorBackend.parse(value);
        } catch (IllegalArgumentException e) {
            throw new ConfigException("--image-processor-backend must be auto, pil or torchvision, got '" + value + "'");
        }
    }

    static ImageInputType parseImageInputType(String value) {
        for (ImageInputType t : ImageInputType.values())
            if (t.cliName().equalsIgnoreCase(value)) return t;
        throw new ConfigException("--image-input-type must be pixel_values or image_features, got '" + value + "'");
    }

    /** RETINA_IMAGE_FETCH_TIMEOUT, else VLLM_IMAGE_FETCH_TIMEOUT, else 5 seconds; fractional seconds allowed. */
    static Duration imageFetchTimeout(Map<String, String> env) {
        for (String name : new String[]{"RETINA_IMAGE_FETCH_TIMEOUT", "VLLM_IMAGE_FETCH_TIMEOUT"}) {
            String value = env.get(name);
            if (value == null || value.isBlank()) continue;
            double seconds;
            try {
                seconds = Double.parseDouble(value.strip());
            } catch (NumberFormatException e) {
                seconds = Double.NaN;
            }
            if (!(seconds > 0) || Double.isInfinite(seconds))
                throw new ConfigException(name + " must be a positive number of seconds, got '" + value + "'");
            return Duration.ofNanos(Math.round(seconds * 1e9));
        }
        return Duration.ofNanos(Math.round(DEFAULT_IMAGE_FETCH_TIMEOUT_SECONDS * 1e9));
    }

}

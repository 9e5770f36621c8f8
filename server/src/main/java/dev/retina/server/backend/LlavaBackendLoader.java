package dev.retina.server.backend;

import dev.retina.engine.ComputeDtype;
import dev.retina.engine.DeviceKind;
import dev.retina.engine.EngineConfig;
import dev.retina.engine.EngineFactory;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.engine.model.LlavaModel;
import dev.retina.server.config.EngineArgs;
import dev.retina.server.BackendLoader;
import dev.retina.server.config.CheckpointFacts;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.input.ImagePipeline;
import dev.retina.server.input.ImageStageObserver;
import dev.retina.server.input.InputProcessor;
import dev.retina.server.structured.StructuredOutputs;
import dev.retina.server.structured.TokenVocabulary;
import dev.retina.server.input.PromptTokenizer;
import dev.retina.templates.ChatTemplate;
import dev.retina.tokenizer.Tokenizer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Loads a LLaVA-1.5 checkpoint directory into a serving {@link EngineChatBackend}: checks the flags against
 * config.json, loads tokenizer, chat template (flag, else checkpoint, else built-in llava), CLIP image processor and
 * the model, and starts the batching engine ({@link EngineFactory}) with the engine flags.
 */
public final class LlavaBackendLoader implements BackendLoader {
    private static final Logger log = LoggerFactory.getLogger(LlavaBackendLoader.class);

    @Override
    public LoadedModel load(ServerConfig config) throws Exception {
        return load(config, ImageStageObserver.NONE);
    }

    @Override
    public LoadedModel load(ServerConfig config, ImageStageObserver imageObserver) throws Exception {
        Path modelDir = config.isDemoModel() ? DemoModel.directory() : Path.of(config.model());
        if (!Files.isRegularFile(modelDir.resolve("config.json")))
            throw new ConfigException("--model " + config.model() + " is not a checkpoint directory (no config.json)");
        LlavaConfig llava = LlavaConfig.load(modelDir);
        ServerConfig.Resolved resolved = config.resolve(facts(llava), modelDir.toString());
        if (resolved.vlm().imageInputType() == ImageInputType.IMAGE_FEATURES)
            throw new ConfigException("--image-input-type image_features cannot be served: clients send images as "
                    + "URLs, which need pixel_values");

        Tokenizer tokenizer = Tokenizer.load(modelDir);
        PromptTokenizer prompts = new TokenizerAdapter(tokenizer);
        ChatTemplate template = config.chatTemplate() != null ? ChatTemplate.fromFile(config.chatTemplate())
                : ChatTemplate.fromCheckpoint(modelDir).orElseGet(() -> {
                    log.info("the checkpoint has no chat template; using the built-in llava template");
                    return ChatTemplate.builtin("llava");
                });

        ImagePipeline images = ImagePipeline.create(config, resolved, llava, imageObserver); // fetch policy, preprocessor, pool

        Engines engines = startEngines(config, modelDir, resolved.maxModelLen());
        EngineFactory.Loaded loaded = engines.first();
        ExecutorService inputExecutor = newInputExecutor();
        InputProcessor inputs = images.inputProcessor(template, prompts, inputExecutor);
        TokenizerAdapter adapter = new TokenizerAdapter(tokenizer);
        EngineChatBackend backend = new EngineChatBackend(inputs, engines.client(), adapter, adapter,
                inputExecutor, new EngineChatBackend.TextLimits(resolved.maxModelLen(), resolved.vlm().imageTokenId()),
                new StructuredOutputs(() -> TokenVocabulary.of(tokenizer)),
                engines.closeables(inputExecutor::shutdownNow, tokenizer, images));
        String summary = String.format(java.util.Locale.ROOT,
                "%s, %s, %s, max %d tokens per request, KV cache %d tokens (%d blocks of %d)%s",
                llava.isNext() ? "LLaVA-NeXT" : "LLaVA-1.5", engines.deviceNames(), loaded.dtypeName(),
                resolved.maxModelLen(), (long) loaded.numBlocks() * config.engine().blockSize(), loaded.numBlocks(),
                config.engine().blockSize(), engines.size() > 1 ? " per replica, " + engines.size() + " replicas" : "");
        return new LoadedModel(backend, modelDir.toString(), resolved.maxModelLen(),
                new EngineTokenization(tokenizer, inputs), summary);
    }

    /**
     * Loads the model on the configured device and dtype and starts the batching engine with the engine flags,
     * checked against the checkpoint (one image must fit one step's token budget). Shared with the offline API.
     */
    public static EngineFactory.Loaded startEngine(ServerConfig config, Path modelDir, int maxModelLen) throws Exception {
        return startEngine(config, modelDir, maxModelLen, 0, 1);
    }

    /**
     * {@code --data-parallel-size} engines, replica i on GPU i (or all on the CPU), each with its own model copy, KV
     * cache and engine thread, behind one {@link EngineClient} that routes by outstanding work. One engine without
     * the router when the size is 1. On failure, replicas already started are closed.
     */
    public static Engines startEngines(ServerConfig config, Path modelDir, int maxModelLen) throws Exception {
        int n = config.engine().dataParallelSize();
        java.util.List<EngineFactory.Loaded> replicas = new java.util.ArrayList<>(n);
        try {
            for (int i = 0; i < n; i++) {
                if (n > 1) log.info("data parallel: starting replica {} of {}", i, n);
                replicas.add(startEngine(config, modelDir, maxModelLen, i, n));
            }
        } catch (Exception | Error e) {
            for (EngineFactory.Loaded r : replicas) r.close();
            throw e;
        }
        return Engines.of(replicas);
    }

    private static EngineFactory.Loaded startEngine(ServerConfig config, Path modelDir, int maxModelLen, int replica,
                                                    int replicas) throws Exception {
        LlavaModel model;
        try {
            model = EngineFactory.loadModel(modelDir, deviceKind(config), replica, replicas, computeDtype(config),
                    config.loadFormat() == dev.retina.server.config.LoadFormat.DUMMY, config.seed());
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage());
        }
        EngineArgs a = config.engine();
        try {
            EngineConfig engineConfig = new EngineConfig(a.maxNumSeqs(), a.maxNumBatchedTokens(), a.blockSize(),
                    maxModelLen, a.numGpuBlocksOverride() == null ? 0 : a.numGpuBlocksOverride(),
                    a.kvCacheMemoryBytes(), a.gpuMemoryUtilization());
            return EngineFactory.start(model, engineConfig, EngineFactory.blankImage(model),
                    config.media().encoderCacheSize());
        } catch (IllegalArgumentException e) {
            model.close();
            throw new ConfigException(e.getMessage());
        } catch (RuntimeException | Error e) {
            model.close();
            throw e;
        }
    }

    /** The checkpoint facts the flags are checked against (shared with the offline API). */
    public static CheckpointFacts facts(LlavaConfig c) {
        return new CheckpointFacts() {
            @Override
            public int imageTokenId() {
                return c.imageTokenIndex();
            }

            @Override
            public int visionImageSize() {
                return c.visionConfig().imageSize();
            }

            @Override
            public int visionNumChannels() {
                return c.visionConfig().numChannels();
            }

            @Override
            public int numImageTokens() {
                return c.numImageTokens();
            }

            @Override
            public int textHiddenSize() {
                return c.textConfig().hiddenSize();
            }

            @Override
            public int maxPositionEmbeddings() {
                return c.textConfig().maxPositionEmbeddings();
            }

            @Override
            public boolean anyres() {
                return c.isNext();
            }
        };
    }

    private static DeviceKind deviceKind(ServerConfig config) {
        return switch (config.device()) {
            case AUTO -> DeviceKind.AUTO;
            case CPU -> DeviceKind.CPU;
            case GPU -> DeviceKind.GPU;
        };
    }

    private static ComputeDtype computeDtype(ServerConfig config) {
        return switch (config.dtype()) {
            case AUTO -> ComputeDtype.AUTO;
            case FLOAT32 -> ComputeDtype.FLOAT32;
            case FLOAT16 -> ComputeDtype.FLOAT16;
        };
    }

    private static ExecutorService newInputExecutor() {
        int threads = Math.max(2, Runtime.getRuntime().availableProcessors());
        AtomicInteger n = new AtomicInteger();
        return new ThreadPoolExecutor(threads, threads, 60, TimeUnit.SECONDS, new ArrayBlockingQueue<>(1024), r -> {
            Thread t = new Thread(r, "retina-input-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }
}

package dev.retina.server.backend;

import ai.djl.Device;
import ai.djl.engine.Engine;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.engine.model.LlavaGenerator;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.ModelLoadConfig;
import dev.retina.server.BackendLoader;
import dev.retina.server.config.CheckpointFacts;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.input.ImagePipeline;
import dev.retina.server.input.InputProcessor;
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
 * the model, and runs generation on {@link SerialGreedyEngine} (the batching engine has no LLaVA runner yet).
 */
public final class LlavaBackendLoader implements BackendLoader {
    private static final Logger log = LoggerFactory.getLogger(LlavaBackendLoader.class);

    @Override
    public LoadedModel load(ServerConfig config) throws Exception {
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

        ImagePipeline images = ImagePipeline.create(config, resolved, llava); // fetch policy, preprocessor, pool

        LlavaModel model = LlavaModel.load(modelDir, new ModelLoadConfig(device(config), null,
                loadFormat(config), config.seed()));
        checkDtype(config, model);
        ExecutorService inputExecutor = newInputExecutor();
        InputProcessor inputs = images.inputProcessor(template, prompts, inputExecutor);
        SerialGreedyEngine engine = SerialGreedyEngine.over(new LlavaGenerator(model));
        EngineChatBackend backend = new EngineChatBackend(inputs, engine, prompts, inputExecutor,
                inputExecutor::shutdownNow, model, tokenizer, images);
        return new LoadedModel(backend, modelDir.toString(), resolved.maxModelLen());
    }

    static CheckpointFacts facts(LlavaConfig c) {
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

    private static Device device(ServerConfig config) {
        return switch (config.device()) {
            case CPU -> Device.cpu();
            case GPU -> {
                if (Engine.getInstance().getGpuCount() == 0) throw new ConfigException("--device gpu: no GPU is visible");
                yield Device.gpu();
            }
            case AUTO -> Engine.getInstance().getGpuCount() > 0 ? Device.gpu() : Device.cpu();
        };
    }

    private static dev.retina.engine.model.LoadFormat loadFormat(ServerConfig config) {
        return switch (config.loadFormat()) {
            case AUTO -> dev.retina.engine.model.LoadFormat.AUTO;
            case SAFETENSORS -> dev.retina.engine.model.LoadFormat.SAFETENSORS;
            case DUMMY -> dev.retina.engine.model.LoadFormat.DUMMY;
        };
    }

    /**
     * The server may not name DJL's tensor types, so the dtype is left to the model's auto rule (float16 on GPU,
     * float32 on CPU) and an explicit --dtype must agree with it.
     */
    private static void checkDtype(ServerConfig config, LlavaModel model) {
        String actual = model.dtype().toString().toLowerCase(java.util.Locale.ROOT);
        if (config.dtype() != Dtype.AUTO && !config.dtype().name().equalsIgnoreCase(actual)) {
            model.close();
            throw new ConfigException("--dtype " + config.dtype().name().toLowerCase(java.util.Locale.ROOT)
                    + " is not available on " + model.device() + " yet (this build uses " + actual + " there)");
        }
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

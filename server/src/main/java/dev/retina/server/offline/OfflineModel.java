package dev.retina.server.offline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.EngineFactory;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.server.backend.DemoModel;
import dev.retina.server.backend.Engines;
import dev.retina.server.backend.LlavaBackendLoader;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.input.ImagePipeline;
import dev.retina.tokenizer.Tokenizer;
import dev.retina.vision.ClipProcessorConfig;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Startup and lifetime of what {@link LLM} holds open: reads the checkpoint, resolves the {@link ServerConfig}
 * against it, loads the tokenizer and the serving image pipeline, starts the batching engine and the output thread,
 * and closes them all. Constructed and closed only by {@link LLM} (its constructor and {@link LLM#close()}, on the
 * caller's thread); its accessors may be read from any thread (every field is final).
 */
final class OfflineModel implements AutoCloseable {
    private final Path modelDir;
    private final LlavaConfig llava;
    private final ServerConfig.Resolved resolved;
    private final Tokenizer tokenizer;          // null: token-id prompts only
    private final ImagePipeline images;         // null: no pixel images (disabled, image_features, no processor config)
    private final List<Integer> eosTokenIds;
    private final Engines engines;
    private final ExecutorService outputExecutor;

    /**
     * Loads the model and starts the engine; on failure closes whatever it had opened.
     *
     * @throws ConfigException when an option contradicts the checkpoint
     * @throws IOException     when the checkpoint cannot be read
     */
    OfflineModel(ServerConfig config) throws IOException {
        modelDir = config.isDemoModel() ? DemoModel.directory() : Path.of(config.model());
        if (!Files.isRegularFile(modelDir.resolve("config.json")))
            throw new ConfigException("model " + config.model() + " is not a checkpoint directory (no config.json)");
        llava = LlavaConfig.load(modelDir);
        resolved = config.resolve(LlavaBackendLoader.facts(llava), modelDir.toString());
        boolean hasTokenizer = Files.isRegularFile(modelDir.resolve("tokenizer.json"));
        tokenizer = hasTokenizer ? Tokenizer.load(modelDir) : null;
        eosTokenIds = tokenizer != null ? tokenizer.eosTokenIds() : configEosTokenIds(modelDir);
        String processorDir = resolved.vlm().imageProcessor();
        boolean pixels = resolved.vlm().imageInputType() == ImageInputType.PIXEL_VALUES && processorDir != null
                && ClipProcessorConfig.isPresentIn(Path.of(processorDir));
        try {
            // The serving pipeline itself, so processor checks (tile size, pinpoints) and preprocessing are the same.
            images = pixels ? ImagePipeline.create(config, resolved, llava) : null;
        } catch (RuntimeException e) {
            if (tokenizer != null) tokenizer.close();
            throw e;
        }
        try {
            engines = LlavaBackendLoader.startEngines(config, modelDir, resolved.maxModelLen());
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

    Path modelDir() {
        return modelDir;
    }

    LlavaConfig llava() {
        return llava;
    }

    ServerConfig.Resolved resolved() {
        return resolved;
    }

    /** Null when the checkpoint has no tokenizer.json. */
    Tokenizer tokenizer() {
        return tokenizer;
    }

    /** Null when this model takes no pixel images. */
    ImagePipeline images() {
        return images;
    }

    /** The tokenizer's EOS ids, else those of generation_config.json / config.json. */
    List<Integer> eosTokenIds() {
        return eosTokenIds;
    }

    /** The first (or only) replica: device, dtype, KV blocks. */
    EngineFactory.Loaded loaded() {
        return engines.first();
    }

    /** Where requests go: the engine, or the data-parallel router over the replicas. */
    dev.retina.server.backend.EngineClient engine() {
        return engines.client();
    }

    /** The single daemon thread that decodes finished requests into results, off the engine thread. */
    ExecutorService outputExecutor() {
        return outputExecutor;
    }

    @Override
    public void close() {
        engines.close();
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
}

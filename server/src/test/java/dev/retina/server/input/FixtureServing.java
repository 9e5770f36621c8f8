package dev.retina.server.input;

import ai.djl.Device;
import dev.retina.engine.EngineConfig;
import dev.retina.engine.EngineRequest;
import dev.retina.engine.LlavaModelRunner;
import dev.retina.engine.LlmEngine;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.LoadFormat;
import dev.retina.engine.model.ModelLoadConfig;
import dev.retina.server.config.CheckpointFacts;
import dev.retina.server.config.ServerConfig;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.templates.ChatTemplate;
import dev.retina.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * One fixture checkpoint served the way {@code retina serve} does it, minus HTTP: {@link ImagePipeline} (fetch
 * policy, preprocessor) and {@link InputProcessor} over the checkpoint's tokenizer and template, then the batching
 * {@link LlmEngine} with the real {@link LlavaModelRunner}. For tests that compare with Hugging Face's tokens.
 */
final class FixtureServing implements AutoCloseable {
    static final Path FIXTURES = Path.of(System.getProperty("retina.fixtures", "src/test/resources/fixtures"));

    final LlavaConfig llava;
    final LlavaModel model;
    final ImagePipeline images;
    final InputProcessor inputs;
    final LlavaModelRunner runner;
    final LlmEngine engine;
    private final ExecutorService inputExecutor = Executors.newFixedThreadPool(2);

    FixtureServing(String modelCase, ServerConfig config) throws Exception {
        Path dir = FIXTURES.resolve("models").resolve(modelCase);
        llava = LlavaConfig.load(dir);
        ServerConfig.Resolved resolved = config.resolve(facts(llava), dir.toString());
        images = ImagePipeline.create(config, resolved, llava);
        Tokenizer tokenizer = Tokenizer.load(dir);
        inputs = images.inputProcessor(ChatTemplate.fromCheckpoint(dir).orElseThrow(), new Adapter(tokenizer),
                inputExecutor);
        model = LlavaModel.load(dir, new ModelLoadConfig(Device.cpu(), null, LoadFormat.AUTO, 0));
        EngineConfig ec = new EngineConfig(8, 4096, 16, resolved.maxModelLen(), 256, 0, 0.9);
        runner = new LlavaModelRunner(model, 256, 16, config.media().encoderCacheSize());
        engine = new LlmEngine(ec, 256, runner);
    }

    static ServerConfig config(String modelCase) {
        return ServerConfig.defaults(FIXTURES.resolve("models").resolve(modelCase).toString());
    }

    /** Prepares the request like the server, then runs it: every output token, or the engine's error. */
    List<Integer> run(ChatCompletionRequest request, String id) throws Exception {
        PreparedRequest p = inputs.process(request, id).get(60, TimeUnit.SECONDS);
        return generate(p.engineRequest());
    }

    List<Integer> generate(EngineRequest request) throws Exception {
        CompletableFuture<List<Integer>> done = new CompletableFuture<>();
        List<Integer> ids = new ArrayList<>();
        engine.addRequest(request, (OutputSink) (RequestOutput out) -> {
            for (int t : out.newTokenIds()) ids.add(t);
            if (out.error() != null) done.completeExceptionally(new IllegalStateException(out.error()));
            else if (out.finished()) done.complete(List.copyOf(ids));
        });
        return done.get(120, TimeUnit.SECONDS);
    }

    @Override
    public void close() {
        engine.close();
        model.close();
        images.close();
        inputExecutor.shutdownNow();
    }

    static CheckpointFacts facts(LlavaConfig c) {
        return new CheckpointFacts() {
            public int imageTokenId() { return c.imageTokenIndex(); }
            public int visionImageSize() { return c.visionConfig().imageSize(); }
            public int visionNumChannels() { return c.visionConfig().numChannels(); }
            public int numImageTokens() { return c.numImageTokens(); }
            public int textHiddenSize() { return c.textConfig().hiddenSize(); }
            public int maxPositionEmbeddings() { return c.textConfig().maxPositionEmbeddings(); }
            public boolean anyres() { return c.isNext(); }
        };
    }

    record Adapter(Tokenizer tokenizer) implements PromptTokenizer {
        public int[] encodePrompt(String rendered) { return tokenizer.encodePrompt(rendered); }
        public String decode(int[] ids, boolean skip) { return tokenizer.decode(ids, skip); }
        public String bosToken() { return tokenizer.specialTokens().bosToken(); }
        public String eosToken() { return tokenizer.specialTokens().eosToken(); }
        public List<Integer> eosTokenIds() { return tokenizer.eosTokenIds(); }
    }
}

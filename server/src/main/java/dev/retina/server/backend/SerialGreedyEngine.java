package dev.retina.server.backend;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.FinishReason;
import dev.retina.engine.ImageInput;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.engine.model.LlavaGenerator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Interim engine: runs one request at a time on one thread with {@link LlavaGenerator}'s greedy loop, until the
 * batching {@code LlmEngine} has a LLaVA model runner. Greedy only; an abort takes effect only before the request
 * starts. The generator has no EOS check, so it runs the full {@code max_tokens} and the output is cut at the first
 * EOS or stop token id here.
 */
public final class SerialGreedyEngine implements EngineClient {
    private static final Logger log = LoggerFactory.getLogger(SerialGreedyEngine.class);

    /** The generation step, as a function so tests can run without a model. */
    @FunctionalInterface
    public interface Generator {
        int[] greedy(int[] inputIds, float[] pixelValues, int numImages, int maxNewTokens);
    }

    private final Generator generator;
    private final ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "retina-serial-engine");
        t.setDaemon(true);
        return t;
    });
    private final Set<String> aborted = ConcurrentHashMap.newKeySet();

    public SerialGreedyEngine(Generator generator) {
        this.generator = generator;
    }

    public static SerialGreedyEngine over(LlavaGenerator generator) {
        return new SerialGreedyEngine((ids, pixels, numImages, maxNew) ->
                generator.greedy(ids, pixels, numImages, maxNew, 0).tokenIds());
    }

    @Override
    public boolean supportsSampling() {
        return false;
    }

    @Override
    public void addRequest(EngineRequest request, OutputSink sink) {
        thread.execute(() -> run(request, sink));
    }

    @Override
    public void abort(String requestId) {
        aborted.add(requestId);
    }

    private void run(EngineRequest request, OutputSink sink) {
        String id = request.requestId();
        int numPrompt = request.promptTokenIds().length;
        if (aborted.remove(id)) {
            sink.accept(new RequestOutput(id, 0, new int[0], null, FinishReason.ABORT, numPrompt, 0, 0, null));
            return;
        }
        try {
            float[] pixels = concatPixels(request);
            int[] generated = generator.greedy(request.promptTokenIds(), pixels, request.images().size(),
                    request.params().maxTokens());
            Set<Integer> stopIds = new HashSet<>(request.params().stopTokenIds());
            if (!request.params().ignoreEos()) stopIds.addAll(request.eosTokenIds());
            int n = generated.length;
            FinishReason reason = FinishReason.LENGTH;
            for (int i = request.params().minTokens(); i < generated.length; i++) {
                if (stopIds.contains(generated[i])) {
                    n = i + 1; // the EOS token is part of the output (decoding skips it), as in vLLM
                    reason = FinishReason.STOP;
                    break;
                }
            }
            int[] out = Arrays.copyOf(generated, n);
            sink.accept(new RequestOutput(id, 0, out, null, reason, numPrompt, n, 0, null));
        } catch (RuntimeException e) {
            log.error("generation failed for {}", id, e);
            sink.accept(new RequestOutput(id, 0, new int[0], null, FinishReason.ABORT, numPrompt, 0, 0,
                    "generation failed"));
        } finally {
            aborted.remove(id);
        }
    }

    private static float[] concatPixels(EngineRequest request) {
        if (request.images().isEmpty()) return null;
        int total = 0;
        for (ImageInput image : request.images()) {
            if (image.pixelValues() == null) throw new IllegalArgumentException("precomputed image features are not supported");
            total += image.pixelValues().length;
        }
        float[] all = new float[total]; // (numImages, 3, H, W)
        int at = 0;
        for (ImageInput image : request.images()) {
            System.arraycopy(image.pixelValues(), 0, all, at, image.pixelValues().length);
            at += image.pixelValues().length;
        }
        return all;
    }

    @Override
    public void close() {
        thread.shutdownNow();
    }
}

package dev.retina.server.backend;

import dev.retina.engine.FinishReason;
import dev.retina.engine.RequestOutput;
import dev.retina.server.ChatBackend;
import dev.retina.server.ChatResult;
import dev.retina.server.input.InputProcessor;
import dev.retina.server.input.PreparedRequest;
import dev.retina.server.input.PromptTokenizer;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * The real {@link ChatBackend}: input processing (images, template, tokens) on the input executor, generation on the
 * engine, then decoding and stop strings on the input executor again (never on the engine thread).
 */
public final class EngineChatBackend implements ChatBackend {
    private static final Logger log = LoggerFactory.getLogger(EngineChatBackend.class);

    private final InputProcessor inputs;
    private final EngineClient engine;
    private final PromptTokenizer tokenizer;
    private final Executor outputExecutor;
    private final AutoCloseable[] owned;

    /** @param owned closed with this backend (the engine's model, executors) */
    public EngineChatBackend(InputProcessor inputs, EngineClient engine, PromptTokenizer tokenizer,
                             Executor outputExecutor, AutoCloseable... owned) {
        this.inputs = inputs;
        this.engine = engine;
        this.tokenizer = tokenizer;
        this.outputExecutor = outputExecutor;
        this.owned = owned.clone();
    }

    /** Collected engine output of one request. */
    private record Generated(int[] tokenIds, FinishReason finishReason, int numPromptTokens) {
    }

    @Override
    public CompletableFuture<ChatResult> complete(ChatCompletionRequest request) {
        String requestId = "req-" + UUID.randomUUID();
        CompletableFuture<ChatResult> result = new CompletableFuture<>();
        inputs.process(request, requestId).whenComplete((prepared, failure) -> {
            if (failure != null) {
                result.completeExceptionally(failure);
                return;
            }
            if (result.isDone()) return; // cancelled while preparing
            if (!engine.supportsSampling() && !prepared.engineRequest().params().isGreedy()) {
                result.completeExceptionally(ApiException.badRequest("This server decodes greedily only for now: "
                        + "send temperature 0", "temperature"));
                return;
            }
            CompletableFuture<Generated> generated = new CompletableFuture<>();
            IntAccumulator ids = new IntAccumulator();
            // Runs on the engine thread: only collect; decoding happens on the output executor.
            engine.addRequest(prepared.engineRequest(), (RequestOutput out) -> {
                ids.addAll(out.newTokenIds());
                if (out.error() != null) generated.completeExceptionally(new IllegalStateException(out.error()));
                else if (out.finished())
                    generated.complete(new Generated(ids.toArray(), out.finishReason(), out.numPromptTokens()));
            });
            result.whenComplete((r, t) -> {
                if (result.isCancelled()) engine.abort(requestId);
            });
            generated.thenApplyAsync(g -> finish(g, prepared), outputExecutor).whenComplete((r, t) -> {
                if (t != null) result.completeExceptionally(t);
                else result.complete(r);
            });
        });
        return result;
    }

    private ChatResult finish(Generated g, PreparedRequest prepared) {
        if (g.finishReason() == FinishReason.ABORT) throw new IllegalStateException("request aborted");
        String text = tokenizer.decode(g.tokenIds(), prepared.skipSpecialTokens());
        StopCut cut = StopCut.apply(text, prepared.stop());
        if (cut == null)
            return new ChatResult(text, g.finishReason(), g.numPromptTokens(), g.tokenIds().length);
        int numTokens = cut.tokensThrough(g.tokenIds(), ids -> tokenizer.decode(ids, prepared.skipSpecialTokens()));
        return new ChatResult(cut.text(), FinishReason.STOP, g.numPromptTokens(), numTokens);
    }

    @Override
    public void close() {
        engine.close();
        for (AutoCloseable c : owned) {
            try {
                c.close();
            } catch (Exception e) {
                log.warn("closing {} failed", c, e);
            }
        }
    }

    /** A growable int list (the engine thread appends, the output side reads after completion). */
    private static final class IntAccumulator {
        private int[] values = new int[16];
        private int size;

        synchronized void addAll(int[] more) {
            if (size + more.length > values.length) values = java.util.Arrays.copyOf(values, Math.max(values.length * 2, size + more.length));
            System.arraycopy(more, 0, values, size, more.length);
            size += more.length;
        }

        synchronized int[] toArray() {
            return java.util.Arrays.copyOf(values, size);
        }
    }

}

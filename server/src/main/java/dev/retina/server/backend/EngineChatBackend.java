package dev.retina.server.backend;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.EngineStats;
import dev.retina.server.ChatBackend;
import dev.retina.server.Generation;
import dev.retina.server.GenerationListener;
import dev.retina.server.input.InputProcessor;
import dev.retina.server.input.PromptTokenizer;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.CompletionRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The real {@link ChatBackend}: input processing (images, template, tokens) on the input executor, generation on the
 * batching engine, then detokenization, stop strings and logprobs on the output executor ({@link RequestTracker};
 * never on the engine thread).
 */
public final class EngineChatBackend implements ChatBackend {
    private static final Logger log = LoggerFactory.getLogger(EngineChatBackend.class);

    /** What {@code /v1/completions} checks prompts against. */
    public record TextLimits(int maxModelLen, int imageTokenId) {
    }

    private final InputProcessor inputs;
    private final EngineClient engine;
    private final PromptTokenizer promptTokenizer;
    private final OutputTokenizer outputTokenizer;
    private final Executor executor;
    private final TextLimits limits;
    private final AutoCloseable[] owned;
    private final dev.retina.server.structured.StructuredOutputs structured; // null: response_format/tools refused

    /**
     * @param executor where completions prompts are tokenized and outputs are decoded
     * @param owned    closed with this backend (the engine's model, executors)
     */
    public EngineChatBackend(InputProcessor inputs, EngineClient engine, PromptTokenizer promptTokenizer,
                             OutputTokenizer outputTokenizer, Executor executor, TextLimits limits,
                             AutoCloseable... owned) {
        this(inputs, engine, promptTokenizer, outputTokenizer, executor, limits, null, owned);
    }

    /** @param structured constrained decoding for response_format and forced tool calls (null: refused with 400) */
    public EngineChatBackend(InputProcessor inputs, EngineClient engine, PromptTokenizer promptTokenizer,
                             OutputTokenizer outputTokenizer, Executor executor, TextLimits limits,
                             dev.retina.server.structured.StructuredOutputs structured, AutoCloseable... owned) {
        this.structured = structured;
        this.inputs = inputs;
        this.engine = engine;
        this.promptTokenizer = promptTokenizer;
        this.outputTokenizer = outputTokenizer;
        this.executor = executor;
        this.limits = limits;
        this.owned = owned.clone();
    }

    /** Vision-encoder passes and encoder-cache hits (metrics); null when the engine does not count them. */
    public dev.retina.engine.EncoderCacheStats encoderCacheStats() {
        return engine.encoderCacheStats();
    }

    /** Requests routed to each data-parallel replica since start (empty for a single engine). */
    public long[] replicaRouted() {
        if (!(engine instanceof DataParallelClient dp)) return new long[0];
        long[] out = new long[dp.size()];
        for (int i = 0; i < out.length; i++) out[i] = dp.routed(i);
        return out;
    }

    /** Each data-parallel replica's load (one entry for a single engine). */
    public java.util.List<EngineStats> replicaStats() {
        return engine.replicaStats();
    }

    /** The engine's load (tests, metrics); null when the engine does not say. */
    public EngineStats engineStats() {
        return engine.stats();
    }

    @Override
    public Generation chat(ChatCompletionRequest request, GenerationListener listener) {
        String requestId = "chat-" + UUID.randomUUID();
        AtomicBoolean cancelled = new AtomicBoolean();
        inputs.process(request, requestId).whenComplete((prepared, failure) -> {
            if (failure != null) {
                listener.onError(unwrap(failure));
                return;
            }
            if (cancelled.get()) return;
            EngineRequest base = prepared.engineRequest();
            dev.retina.engine.ConstraintFactory constraint;
            try {
                constraint = constraintFor(request);
            } catch (RuntimeException e) {
                listener.onError(e);
                return;
            }
            EngineRequest engineRequest = new EngineRequest(requestId, base.promptTokenIds(), base.images(),
                    Sampling.withChoices(base.params(), request.numChoices(), request.engineLogprobs())
                            .withLogitBiasAndConstraint(
                                    dev.retina.server.protocol.ChatRequestValidator.logitBias(request.logitBias()),
                                    constraint),
                    base.eosTokenIds());
            if (request.user() != null)
                log.info("request {} for user '{}'", requestId, ApiException.truncate(request.user()));
            submit(engineRequest, 0, new RequestTracker.OutputSpec(prepared.skipSpecialTokens(), prepared.stop(),
                    request.engineLogprobs() != null), listener, cancelled);
        });
        return () -> {
            cancelled.set(true);
            engine.abort(requestId);
        };
    }

    /** The request's output constraint (built on this thread: the vocabulary and masks never load the engine's). */
    private dev.retina.engine.ConstraintFactory constraintFor(ChatCompletionRequest request) {
        dev.retina.server.structured.StructuredRequest s = dev.retina.server.structured.StructuredRequest.of(request);
        if (!s.constrained()) return null;
        if (structured == null)
            throw ApiException.badRequest("This server cannot constrain output (no vocabulary)", "response_format");
        return structured.constraintFor(s);
    }

    @Override
    public Generation completion(CompletionRequest request, GenerationListener listener) {
        List<CompletionRequest.Prompt> prompts = request.prompts();
        GroupListener group = new GroupListener(listener, prompts.size());
        List<String> requestIds = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) requestIds.add("cmpl-" + UUID.randomUUID() + "-" + i);
        AtomicBoolean cancelled = new AtomicBoolean();
        Generation generation = () -> {
            cancelled.set(true);
            requestIds.forEach(engine::abort);
        };
        group.onFailure(generation::cancel);
        RequestTracker.OutputSpec spec = new RequestTracker.OutputSpec(!Boolean.FALSE.equals(request.skipSpecialTokens()),
                request.stop() == null ? List.of() : request.stop(), request.logprobs() != null);
        CompletableFuture.supplyAsync(() -> {
            List<EngineRequest> out = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) out.add(textRequest(requestIds.get(i), prompts.get(i), request));
            return out;
        }, executor).whenComplete((engineRequests, failure) -> {
            if (failure != null) {
                listener.onError(unwrap(failure));
                return;
            }
            for (int i = 0; i < engineRequests.size(); i++)
                submit(engineRequests.get(i), i * request.numChoices(), spec, group, cancelled);
        });
        return generation;
    }

    private EngineRequest textRequest(String requestId, CompletionRequest.Prompt prompt, CompletionRequest req) {
        int[] ids = switch (prompt) {
            case CompletionRequest.TextPrompt t -> promptTokenizer.encodeText(t.text());
            case CompletionRequest.TokenPrompt t -> t.tokenIds();
        };
        for (int id : ids) {
            if (id == limits.imageTokenId())
                throw ApiException.badRequest("The prompt holds the image placeholder token; /v1/completions takes no "
                        + "images (use /v1/chat/completions)", "prompt");
        }
        if (ids.length >= limits.maxModelLen())
            throw ApiException.contextLengthExceeded("This model's maximum context length is " + limits.maxModelLen()
                    + " tokens, but the prompt takes " + ids.length + " tokens", "prompt");
        int maxTokens = req.maxTokens() == null ? CompletionRequest.DEFAULT_MAX_TOKENS : req.maxTokens();
        if (ids.length + maxTokens > limits.maxModelLen())
            throw ApiException.contextLengthExceeded("This model's maximum context length is " + limits.maxModelLen()
                    + " tokens. However, you requested " + (ids.length + maxTokens) + " tokens (" + ids.length
                    + " in the prompt, " + maxTokens + " in the completion)", "max_tokens");
        if (req.user() != null) log.info("request {} for user '{}'", requestId, ApiException.truncate(req.user()));
        return new EngineRequest(requestId, ids, List.of(), Sampling.of(req, maxTokens), promptTokenizer.eosTokenIds());
    }

    private void submit(EngineRequest request, int choiceOffset, RequestTracker.OutputSpec spec,
                        GenerationListener listener, AtomicBoolean cancelled) {
        RequestTracker tracker = new RequestTracker(request.requestId(), request.params().n(), choiceOffset, spec,
                outputTokenizer, executor, listener, () -> engine.abort(request.requestId()));
        if (!engine.isAlive()) { // before anything is sent: the client gets a plain 503
            listener.onError(ApiException.unavailable(ENGINE_STOPPED));
            return;
        }
        listener.onStart(request.promptTokenIds().length);
        try {
            engine.addRequest(request, tracker);
        } catch (dev.retina.engine.EngineStoppedException e) { // died just now
            listener.onError(ApiException.unavailable(ENGINE_STOPPED));
            return;
        }
        if (cancelled.get()) engine.abort(request.requestId()); // cancelled while we were submitting
    }

    @Override
    public boolean isHealthy() {
        return engine.isAlive();
    }

    static final String ENGINE_STOPPED = "The engine stopped and cannot take requests; the server must be restarted";

    private static Throwable unwrap(Throwable t) {
        return t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
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
}

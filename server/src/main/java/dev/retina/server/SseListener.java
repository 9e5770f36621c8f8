package dev.retina.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.engine.FinishReason;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.SseEmitter;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionResponse.Usage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Streams a generation as SSE. Until the engine has taken the request, a failure is an ordinary HTTP error (the
 * response future fails); from {@link #onStart} on, the response is a stream, and a failure becomes one error event
 * then {@code [DONE]}. The chunk shapes come from a {@link Format} (chat or legacy completions).
 */
final class SseListener implements GenerationListener {
    private static final Logger log = LoggerFactory.getLogger(SseListener.class);

    /** Builds each event's JSON object. */
    interface Format {
        /** Events opening the stream once the request runs (chat: one role delta per choice). */
        List<Object> opening();

        Object text(int choiceIndex, String text, List<LogprobEntry> logprobs);

        Object finish(int choiceIndex, String finishReason);

        Object usage(Usage usage);
    }

    private final ObjectMapper mapper;
    private final SseEmitter emitter;
    private final CompletableFuture<ApiResponse> response;
    private final Format format;
    private final boolean includeUsage;
    private int numPromptTokens;
    private int numCompletionTokens;
    private boolean started;

    SseListener(ObjectMapper mapper, SseEmitter emitter, CompletableFuture<ApiResponse> response, Format format,
                boolean includeUsage) {
        this.mapper = mapper;
        this.emitter = emitter;
        this.response = response;
        this.format = format;
        this.includeUsage = includeUsage;
    }

    @Override
    public synchronized void onStart(int numPromptTokens) {
        this.numPromptTokens = numPromptTokens;
        started = true;
        for (Object event : format.opening()) send(event);
        response.complete(ApiResponse.stream(emitter));
    }

    @Override
    public synchronized void onText(int choiceIndex, String text, List<LogprobEntry> logprobs) {
        send(format.text(choiceIndex, text, logprobs));
    }

    @Override
    public synchronized void onFinish(int choiceIndex, FinishReason reason, int numCompletionTokens) {
        this.numCompletionTokens += numCompletionTokens;
        send(format.finish(choiceIndex, reason.openAiName()));
    }

    @Override
    public synchronized void onDone() {
        if (includeUsage) send(format.usage(Usage.of(numPromptTokens, numCompletionTokens)));
        emitter.complete();
    }

    @Override
    public synchronized void onError(Throwable error) {
        if (!started) {
            response.completeExceptionally(error);
            return;
        }
        Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
        ApiException api = cause instanceof ApiException a ? a : ApiException.internal();
        if (!(cause instanceof ApiException)) log.error("streamed generation failed", cause);
        send(api.toBody());
        emitter.complete();
    }

    @Override
    public boolean isReady() {
        return emitter.isWritable();
    }

    @Override
    public void resumeWith(Runnable resume) {
        emitter.onWritable(resume);
    }

    private void send(Object event) {
        try {
            emitter.send(mapper.writeValueAsString(event));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise a stream event", e);
        }
    }
}

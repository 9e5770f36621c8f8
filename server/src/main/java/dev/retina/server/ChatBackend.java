package dev.retina.server;

import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.CompletionRequest;

/**
 * The seam between HTTP and the model: takes a validated request and reports its generation, choice by choice, to a
 * {@link GenerationListener} (streamed or collected by the caller). Called from the server's request executor, never
 * from an event loop; returns at once and works elsewhere.
 *
 * <p>Failures the client caused (a bad image URL, too many images, a prompt longer than the model) reach
 * {@link GenerationListener#onError} as {@link ApiException}; anything else becomes a 500 with a fixed message.
 * {@link Generation#cancel()} (the client went away) aborts the generation and frees its KV blocks.
 */
public interface ChatBackend extends AutoCloseable {

    Generation chat(ChatCompletionRequest request, GenerationListener listener);

    /** {@code POST /v1/completions}: text or token-id prompts, no images. */
    default Generation completion(CompletionRequest request, GenerationListener listener) {
        listener.onError(ApiException.badRequest("This model does not serve /v1/completions", null));
        return () -> {
        };
    }

    /** False when the backend can no longer serve (e.g. its engine thread died): /health then answers 503. */
    default boolean isHealthy() {
        return true;
    }

    /** Stops accepting work and frees the model; pending generations fail. */
    @Override
    default void close() {
    }
}

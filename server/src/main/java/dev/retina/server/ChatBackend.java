package dev.retina.server;

import dev.retina.server.protocol.ChatCompletionRequest;

import java.util.concurrent.CompletableFuture;

/**
 * The seam between HTTP and the model: takes a validated chat request, returns its completion. Called from the
 * server's request executor, never from an event loop; implementations must not block the caller for the length
 * of a generation (they return a future and work elsewhere).
 *
 * <p>Failures the client caused (a bad image URL, too many images, a prompt longer than the model) complete the
 * future exceptionally with {@link dev.retina.server.protocol.ApiException}; anything else becomes a 500 with a fixed
 * message. Cancelling the returned future (the client went away) aborts the generation.
 *
 * <p>Streaming will be a second method taking a sink of text deltas ({@code stream(request, ChatStreamSink)}); the
 * non-streaming {@link #complete} stays the aggregate of it.
 */
public interface ChatBackend extends AutoCloseable {

    CompletableFuture<ChatResult> complete(ChatCompletionRequest request);

    /** Stops accepting work and frees the model; pending futures fail. */
    @Override
    default void close() {
    }
}

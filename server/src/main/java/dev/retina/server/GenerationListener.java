package dev.retina.server;

import dev.retina.engine.FinishReason;

import java.util.List;

/**
 * Receives one generation's progress, choice by choice, from the output side (never the engine thread, never an
 * event loop). Calls for one generation are serialised. Order: {@link #onStart} once, then per choice any number of
 * {@link #onText} and one {@link #onFinish}, then {@link #onDone}; or {@link #onError} at any point, after which
 * nothing follows. Concatenating a choice's texts gives exactly its non-streamed text.
 */
public interface GenerationListener {
    /** Input processing succeeded and the engine took the request. */
    default void onStart(int numPromptTokens) {
    }

    /** New text of one choice (may be empty when only logprobs arrive); {@code logprobs} null unless requested. */
    void onText(int choiceIndex, String text, List<LogprobEntry> logprobs);

    /** @param numCompletionTokens tokens this choice generated (through a matched stop string) */
    void onFinish(int choiceIndex, FinishReason reason, int numCompletionTokens);

    /** Every choice finished. */
    void onDone();

    /** The generation failed; an {@link dev.retina.server.protocol.ApiException} is the client's fault. */
    void onError(Throwable error);

    /** Whether the consumer can take more now (back-pressure); when false the producer waits for {@link #resumeWith}. */
    default boolean isReady() {
        return true;
    }

    /** Registers what to run once {@link #isReady} turns true again. */
    default void resumeWith(Runnable resume) {
    }

    /**
     * One generated token's log-probability, as OpenAI reports it: text, UTF-8 bytes, and the most likely
     * alternatives (most likely first).
     */
    record LogprobEntry(String token, float logprob, byte[] bytes, List<TopLogprob> topLogprobs, int tokenId) {
        /** Without the token id (-1: unknown). */
        public LogprobEntry(String token, float logprob, byte[] bytes, List<TopLogprob> topLogprobs) {
            this(token, logprob, bytes, topLogprobs, -1);
        }

        /** The entries with each token (and top token) written as {@code token_id:N}, as vLLM's flag does. */
        public static List<LogprobEntry> asTokenIds(List<LogprobEntry> entries) {
            if (entries == null) return null;
            return entries.stream().map(e -> new LogprobEntry(idText(e.tokenId, e.token), e.logprob, e.bytes,
                    e.topLogprobs.stream().map(t -> new TopLogprob(idText(t.tokenId(), t.token()), t.logprob(),
                            t.bytes(), t.tokenId())).toList(), e.tokenId)).toList();
        }

        private static String idText(int id, String token) {
            return id < 0 ? token : "token_id:" + id;
        }
    }

    record TopLogprob(String token, float logprob, byte[] bytes, int tokenId) {
        public TopLogprob(String token, float logprob, byte[] bytes) {
            this(token, logprob, bytes, -1);
        }
    }
}

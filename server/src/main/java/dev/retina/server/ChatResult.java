package dev.retina.server;

import dev.retina.engine.FinishReason;

import java.util.Objects;

/**
 * One finished completion: the assistant text (special tokens skipped, cut before a matched stop string) and counts.
 *
 * @param promptTokens prompt length in tokens, image tokens included (what the model processed)
 */
public record ChatResult(String text, FinishReason finishReason, int promptTokens, int completionTokens) {
    public ChatResult {
        Objects.requireNonNull(text, "text");
        Objects.requireNonNull(finishReason, "finishReason");
        if (promptTokens < 0 || completionTokens < 0) throw new IllegalArgumentException("negative token count");
    }
}

package dev.retina.server.offline;

import dev.retina.engine.FinishReason;
import dev.retina.engine.TokenLogprobs;

import java.util.List;

/**
 * One choice of a finished offline request (vLLM's {@code CompletionOutput}).
 *
 * @param index        the choice index, 0 .. n-1
 * @param text         the decoded text (special tokens skipped); null when the model has no tokenizer
 * @param logprobs     one entry per token, or null when logprobs were not requested
 */
public record CompletionOutput(int index, String text, int[] tokenIds, FinishReason finishReason,
                               List<TokenLogprobs> logprobs) {
}

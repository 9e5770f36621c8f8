package dev.retina.engine;

import java.util.List;

/**
 * One step's news for one choice of a request, delivered to its {@link OutputSink}.
 *
 * @param newTokenIds        ids generated since the previous output of this choice (usually one)
 * @param logprobs           one entry per new token, or null when logprobs were not requested
 * @param finishReason       null while the choice is still running
 * @param numCachedTokens    prompt tokens this choice reused from another choice's KV blocks (n &gt; 1)
 * @param error              non-null when the request failed inside the engine (then {@code finishReason} is ABORT)
 */
public record RequestOutput(String requestId, int choiceIndex, int[] newTokenIds, List<TokenLogprobs> logprobs,
                            FinishReason finishReason, int numPromptTokens, int numGeneratedTokens,
                            int numCachedTokens, String error) {
    public boolean finished() { return finishReason != null; }
}

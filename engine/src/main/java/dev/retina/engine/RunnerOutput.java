package dev.retina.engine;

import java.util.List;

/**
 * What the runner returns for one step, in the order of the {@link SchedulerOutput}'s sampling sequences.
 *
 * @param sampledTokenIds one id per sequence with {@code sample == true}
 * @param logprobs        same order; an entry is null where the request asked for no logprobs
 */
public record RunnerOutput(int[] sampledTokenIds, List<TokenLogprobs> logprobs) {
    public RunnerOutput {
        if (logprobs != null && logprobs.size() != sampledTokenIds.length)
            throw new IllegalArgumentException(logprobs.size() + " logprobs for " + sampledTokenIds.length + " ids");
    }

    public TokenLogprobs logprobsAt(int i) {
        return logprobs == null ? null : logprobs.get(i);
    }
}

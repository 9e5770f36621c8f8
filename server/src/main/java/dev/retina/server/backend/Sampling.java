package dev.retina.server.backend;

import dev.retina.engine.SamplingParams;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.CompletionRequest;

/** Builds the engine's {@link SamplingParams} from API fields (defaults as OpenAI's, extras as vLLM's). */
final class Sampling {
    private Sampling() {
    }

    /** {@code p} with the API's {@code n} and logprobs (the chat input processor builds one greedy-shaped choice). */
    static SamplingParams withChoices(SamplingParams p, int n, Integer logprobs) {
        return p.withChoices(n, logprobs);
    }

    static SamplingParams of(CompletionRequest req, int maxTokens) {
        try {
            return new SamplingParams(req.numChoices(),
                    req.temperature() == null ? 1f : req.temperature().floatValue(),
                    req.topP() == null ? 1f : req.topP().floatValue(),
                    req.topK() == null ? -1 : req.topK(),
                    req.minP() == null ? 0f : req.minP().floatValue(),
                    req.seed(),
                    req.presencePenalty() == null ? 0f : req.presencePenalty().floatValue(),
                    req.frequencyPenalty() == null ? 0f : req.frequencyPenalty().floatValue(),
                    req.repetitionPenalty() == null ? 1f : req.repetitionPenalty().floatValue(),
                    maxTokens,
                    req.minTokens() == null ? 0 : req.minTokens(),
                    req.stopTokenIds(),
                    Boolean.TRUE.equals(req.ignoreEos()),
                    req.logprobs(),
                    dev.retina.server.protocol.ChatRequestValidator.logitBias(req.logitBias()),
                    null);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("Invalid sampling parameters: " + e.getMessage(), null);
        }
    }
}

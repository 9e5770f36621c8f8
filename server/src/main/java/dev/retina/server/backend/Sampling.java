package dev.retina.server.backend;

import dev.retina.engine.SamplingParams;
import dev.retina.server.protocol.ChatRequestValidator;
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
        return req.toSamplingParams(req.numChoices(), maxTokens, req.logprobs(),
                ChatRequestValidator.logitBias(req.logitBias()));
    }
}

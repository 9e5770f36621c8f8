package dev.retina.server.protocol;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;

/** Checks a bound {@link CompletionRequest} and names the offending parameter, as {@link ChatRequestValidator}. */
public final class CompletionRequestValidator {
    static final int MAX_LEGACY_LOGPROBS = 5;

    private CompletionRequestValidator() {
    }

    public static void validate(CompletionRequest req, String servedModelName) {
        if (req.model() == null || req.model().isEmpty())
            throw ApiException.badRequest("you must provide a model parameter", "model");
        if (!req.model().equals(servedModelName)) throw ApiException.modelNotFound(req.model());
        prompts(req.prompt());
        ChatRequestValidator.range(req.temperature(), 0, 2, "temperature");
        if (req.topP() != null && !(req.topP() > 0 && req.topP() <= 1))
            throw ApiException.badRequest("top_p must be in (0, 1], got " + req.topP(), "top_p");
        ChatRequestValidator.range(req.presencePenalty(), -2, 2, "presence_penalty");
        ChatRequestValidator.range(req.frequencyPenalty(), -2, 2, "frequency_penalty");
        ChatRequestValidator.range(req.minP(), 0, 1, "min_p");
        if (req.repetitionPenalty() != null && !(req.repetitionPenalty() > 0))
            throw ApiException.badRequest("repetition_penalty must be > 0, got " + req.repetitionPenalty(), "repetition_penalty");
        if (req.topK() != null && (req.topK() == 0 || req.topK() < -1))
            throw ApiException.badRequest("top_k must be -1 (off) or >= 1, got " + req.topK(), "top_k");
        ChatRequestValidator.atLeast(req.maxTokens(), 1, "max_tokens");
        ChatRequestValidator.atLeast(req.minTokens(), 0, "min_tokens");
        int maxTokens = req.maxTokens() == null ? CompletionRequest.DEFAULT_MAX_TOKENS : req.maxTokens();
        if (req.minTokens() != null && req.minTokens() > maxTokens)
            throw ApiException.badRequest("min_tokens (" + req.minTokens() + ") must not exceed max_tokens (" + maxTokens + ")",
                    "min_tokens");
        ChatRequestValidator.checkN(req.n());
        if (req.bestOf() != null && req.bestOf() != req.numChoices())
            throw ApiException.badRequest("best_of other than n is not supported", "best_of");
        if (Boolean.TRUE.equals(req.echo())) throw ApiException.badRequest("echo is not supported", "echo");
        if (req.suffix() != null && !req.suffix().isEmpty())
            throw ApiException.badRequest("suffix is not supported", "suffix");
        if (req.logprobs() != null && (req.logprobs() < 0 || req.logprobs() > MAX_LEGACY_LOGPROBS))
            throw ApiException.badRequest("logprobs must be in [0, " + MAX_LEGACY_LOGPROBS + "], got " + req.logprobs(),
                    "logprobs");
        if (req.streamOptions() != null && !req.isStream())
            throw ApiException.badRequest("stream_options is only allowed when stream is true", "stream_options");
        ChatRequestValidator.checkStops(req.stop(), req.stopTokenIds());
        ChatRequestValidator.logitBias(req.logitBias());
    }

    /** The prompt field as a list of prompts; 400 naming {@code prompt} when it has another shape. */
    static List<CompletionRequest.Prompt> prompts(JsonNode prompt) {
        if (prompt == null || prompt.isNull()) throw ApiException.badRequest("prompt is required", "prompt");
        if (prompt.isTextual()) return List.of(text(prompt.asText()));
        if (!prompt.isArray() || prompt.isEmpty())
            throw ApiException.badRequest("prompt must be a string, a list of strings, a list of token ids or a list "
                    + "of token-id lists", "prompt");
        if (prompt.get(0).isIntegralNumber()) return List.of(tokens(prompt, "prompt"));
        List<CompletionRequest.Prompt> out = new ArrayList<>();
        for (int i = 0; i < prompt.size(); i++) {
            JsonNode p = prompt.get(i);
            if (p.isTextual()) out.add(text(p.asText()));
            else if (p.isArray() && !p.isEmpty()) out.add(tokens(p, "prompt[" + i + "]"));
            else throw ApiException.badRequest("prompt[" + i + "] must be a string or a non-empty list of token ids",
                        "prompt");
        }
        return out;
    }

    private static CompletionRequest.Prompt text(String s) {
        if (s.isEmpty()) throw ApiException.badRequest("prompt must not be empty", "prompt");
        return new CompletionRequest.TextPrompt(s);
    }

    private static CompletionRequest.Prompt tokens(JsonNode array, String at) {
        int[] ids = new int[array.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode id = array.get(i);
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.asInt() < 0)
                throw ApiException.badRequest(at + " must hold non-negative token ids", "prompt");
            ids[i] = id.asInt();
        }
        return new CompletionRequest.TokenPrompt(ids);
    }
}

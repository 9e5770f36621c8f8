package dev.retina.server.protocol;

import java.util.List;
import java.util.Set;

/**
 * Checks a bound {@link ChatCompletionRequest} before any work is done and names the offending parameter the way
 * OpenAI does ({@code messages}, {@code messages[1].content[0].image_url}, {@code temperature}). Stateless.
 */
public final class ChatRequestValidator {
    private static final Set<String> ROLES = Set.of("system", "user", "assistant", "tool");
    private static final int MAX_STOP_SEQUENCES = 4;
    static final int MAX_N = 128;
    static final int MAX_TOP_LOGPROBS = 20;

    private ChatRequestValidator() {
    }

    /**
     * @param servedModelName the only model this server answers to
     * @throws ApiException 400 for a bad value, 404 for another model
     */
    public static void validate(ChatCompletionRequest req, String servedModelName) {
        if (req.model() == null || req.model().isEmpty())
            throw ApiException.badRequest("you must provide a model parameter", "model");
        if (!req.model().equals(servedModelName)) throw ApiException.modelNotFound(req.model());
        validateMessages(req.messages());
        range(req.temperature(), 0, 2, "temperature");
        if (req.topP() != null && !(req.topP() > 0 && req.topP() <= 1))
            throw ApiException.badRequest("top_p must be in (0, 1], got " + req.topP(), "top_p");
        range(req.presencePenalty(), -2, 2, "presence_penalty");
        range(req.frequencyPenalty(), -2, 2, "frequency_penalty");
        range(req.minP(), 0, 1, "min_p");
        if (req.repetitionPenalty() != null && !(req.repetitionPenalty() > 0))
            throw ApiException.badRequest("repetition_penalty must be > 0, got " + req.repetitionPenalty(), "repetition_penalty");
        if (req.topK() != null && (req.topK() == 0 || req.topK() < -1))
            throw ApiException.badRequest("top_k must be -1 (off) or >= 1, got " + req.topK(), "top_k");
        atLeast(req.maxTokens(), 1, "max_tokens");
        atLeast(req.maxCompletionTokens(), 1, "max_completion_tokens");
        atLeast(req.minTokens(), 0, "min_tokens");
        Integer maxTokens = req.requestedMaxTokens();
        if (req.minTokens() != null && maxTokens != null && req.minTokens() > maxTokens)
            throw ApiException.badRequest("min_tokens (" + req.minTokens() + ") must not exceed max_tokens (" + maxTokens + ")",
                    "min_tokens");
        checkN(req.n());
        if (req.topLogprobs() != null) {
            if (req.topLogprobs() < 0 || req.topLogprobs() > MAX_TOP_LOGPROBS)
                throw ApiException.badRequest("top_logprobs must be in [0, " + MAX_TOP_LOGPROBS + "], got "
                        + req.topLogprobs(), "top_logprobs");
            if (!Boolean.TRUE.equals(req.logprobs()))
                throw ApiException.badRequest("top_logprobs requires logprobs to be true", "top_logprobs");
        }
        if (req.streamOptions() != null && !req.isStream())
            throw ApiException.badRequest("stream_options is only allowed when stream is true", "stream_options");
        checkStops(req.stop(), req.stopTokenIds());
        logitBias(req.logitBias());
        dev.retina.server.structured.StructuredRequest.of(req); // response_format, tools, tool_choice
    }

    /** OpenAI's logit_bias: token ids (as JSON object keys) to a bias in [-100, 100]; null when absent. */
    public static java.util.Map<Integer, Float> logitBias(java.util.Map<String, Double> bias) {
        if (bias == null || bias.isEmpty()) return java.util.Map.of();
        java.util.Map<Integer, Float> out = new java.util.HashMap<>();
        for (java.util.Map.Entry<String, Double> e : bias.entrySet()) {
            int id;
            try {
                id = Integer.parseInt(e.getKey().trim());
            } catch (NumberFormatException ex) {
                throw ApiException.badRequest("logit_bias keys must be token ids, got '"
                        + ApiException.truncate(e.getKey()) + "'", "logit_bias");
            }
            if (id < 0) throw ApiException.badRequest("logit_bias token ids must be >= 0, got " + id, "logit_bias");
            Double v = e.getValue();
            if (v == null || !(v >= -100 && v <= 100))
                throw ApiException.badRequest("logit_bias values must be in [-100, 100], got " + v + " for token "
                        + id, "logit_bias");
            out.put(id, v.floatValue());
        }
        return out;
    }

    static void checkN(Integer n) {
        if (n != null && (n < 1 || n > MAX_N))
            throw ApiException.badRequest("n must be in [1, " + MAX_N + "], got " + n, "n");
    }

    static void checkStops(List<String> stop, List<Integer> stopTokenIds) {
        if (stop != null) {
            if (stop.size() > MAX_STOP_SEQUENCES)
                throw ApiException.badRequest("at most " + MAX_STOP_SEQUENCES + " stop sequences are allowed, got "
                        + stop.size(), "stop");
            for (String s : stop)
                if (s == null || s.isEmpty()) throw ApiException.badRequest("stop sequences must be non-empty strings", "stop");
        }
        if (stopTokenIds != null && stopTokenIds.stream().anyMatch(id -> id == null || id < 0))
            throw ApiException.badRequest("stop_token_ids must be non-negative integers", "stop_token_ids");
    }

    public static void validateMessages(List<ChatMessage> messages) {
        if (messages == null || messages.isEmpty())
            throw ApiException.badRequest("messages must be a non-empty list", "messages");
        for (int i = 0; i < messages.size(); i++) {
            ChatMessage m = messages.get(i);
            String at = "messages[" + i + "]";
            if (m == null) throw ApiException.badRequest(at + " must be an object", at);
            if (m.role() == null) throw ApiException.badRequest(at + ".role is required", at + ".role");
            if (!ROLES.contains(m.role()))
                throw ApiException.badRequest("unsupported role '" + ApiException.truncate(m.role()) + "' in " + at
                        + "; use system, user, assistant or tool", at + ".role");
            switch (m.content()) {
                case null -> {
                    // OpenAI allows a null content only on assistant messages (which then carry tool calls).
                    if (!m.role().equals("assistant"))
                        throw ApiException.badRequest(at + ".content is required", at + ".content");
                }
                case MessageContent.Text t -> {
                }
                case MessageContent.Parts p -> validateParts(p.parts(), m.role(), at + ".content");
            }
            if (m.toolCalls() != null) {
                if (!m.role().equals("assistant"))
                    throw ApiException.badRequest("tool_calls are only allowed in assistant messages", at + ".tool_calls");
                validateToolCalls(m.toolCalls(), at + ".tool_calls");
            }
            if (m.role().equals("tool")) {
                if (m.toolCallId() == null || m.toolCallId().isEmpty())
                    throw ApiException.badRequest(at + ".tool_call_id is required in tool messages", at + ".tool_call_id");
            } else if (m.toolCallId() != null) {
                throw ApiException.badRequest("tool_call_id is only allowed in tool messages", at + ".tool_call_id");
            }
        }
    }

    /**
     * An assistant message's earlier calls: each a function with a name and its arguments as a JSON object text
     * (the template gets them parsed, so text that is not a JSON object is refused here, not in the template).
     */
    private static void validateToolCalls(List<ChatCompletionResponse.ToolCall> calls, String at) {
        for (int j = 0; j < calls.size(); j++) {
            String callAt = at + "[" + j + "]";
            ChatCompletionResponse.ToolCall call = calls.get(j);
            if (call == null) throw ApiException.badRequest(callAt + " must be an object", callAt);
            if (call.type() != null && !call.type().equals("function"))
                throw ApiException.badRequest(callAt + ".type must be 'function'", callAt + ".type");
            ChatCompletionResponse.FunctionCall fn = call.function();
            if (fn == null) throw ApiException.badRequest(callAt + ".function is required", callAt + ".function");
            if (fn.name() == null || fn.name().isEmpty())
                throw ApiException.badRequest(callAt + ".function.name is required", callAt + ".function.name");
            if (fn.arguments() == null)
                throw ApiException.badRequest(callAt + ".function.arguments is required", callAt + ".function.arguments");
            if (!ToolArguments.isObject(fn.arguments()))
                throw ApiException.badRequest(callAt + ".function.arguments must be a JSON object (as text)",
                        callAt + ".function.arguments");
        }
    }

    private static void validateParts(List<ContentPart> parts, String role, String at) {
        for (int j = 0; j < parts.size(); j++) {
            String partAt = at + "[" + j + "]";
            switch (parts.get(j)) {
                case TextPart t -> {
                    if (t.text() == null) throw ApiException.badRequest(partAt + ".text is required", partAt + ".text");
                }
                case ImageUrlPart img -> {
                    if (!role.equals("user"))
                        throw ApiException.badRequest("image_url parts are only allowed in user messages", partAt);
                    if (img.imageUrl() == null || img.imageUrl().url() == null || img.imageUrl().url().isBlank())
                        throw ApiException.badRequest(partAt + ".image_url.url is required", partAt + ".image_url");
                }
            }
        }
    }

    static void range(Double value, double min, double max, String param) {
        if (value != null && !(value >= min && value <= max))
            throw ApiException.badRequest(param + " must be in [" + fmt(min) + ", " + fmt(max) + "], got " + value, param);
    }

    static void atLeast(Integer value, int min, String param) {
        if (value != null && value < min) throw ApiException.badRequest(param + " must be >= " + min + ", got " + value, param);
    }

    private static String fmt(double d) {
        return d == Math.rint(d) ? String.valueOf((long) d) : String.valueOf(d);
    }
}

package dev.retina.server;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.http.ApiRequest;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.Endpoint;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatRequestValidator;
import dev.retina.server.protocol.DetokenizeRequest;
import dev.retina.server.protocol.DetokenizeResponse;
import dev.retina.server.protocol.TokenizeRequest;
import dev.retina.server.protocol.TokenizeResponse;

import java.util.concurrent.CompletableFuture;

/**
 * {@code POST /tokenize} and {@code POST /detokenize} (vLLM's shapes). Chat tokenization renders the chat template
 * and loads each image (fetching its URL, as a chat request would), so the count is exactly what a chat request
 * with these messages puts in front of the model, image tokens included; the context-length limit is reported
 * ({@code max_model_len}), not enforced. Runs on the request executor.
 */
public final class TokenizeHandler {
    private TokenizeHandler() {
    }

    public static Endpoint tokenize(ServedModel model, ObjectMapper mapper) {
        return request -> {
            TokenizeRequest req = ChatCompletionsHandler.parse(mapper, request.body(), TokenizeRequest.class);
            BackendLoader.LoadedModel loaded = checked(model, req.model());
            int[] ids;
            if (req.messages() != null) {
                if (req.prompt() != null)
                    throw ApiException.badRequest("Send either 'prompt' or 'messages', not both", "prompt");
                if (req.messages().isEmpty()) throw ApiException.badRequest("'messages' must not be empty", "messages");
                ChatRequestValidator.validateMessages(req.messages());
                ids = loaded.tokenization().tokenizeMessages(req.messages(),
                        !Boolean.FALSE.equals(req.addGenerationPrompt()));
            } else if (req.prompt() != null) {
                ids = loaded.tokenization().tokenizePrompt(req.prompt(), !Boolean.FALSE.equals(req.addSpecialTokens()));
            } else {
                throw ApiException.badRequest("Send 'prompt' (text) or 'messages' (chat)", "prompt");
            }
            return CompletableFuture.completedFuture(ApiResponse.ok(new TokenizeResponse(ids, ids.length,
                    loaded.maxModelLen())));
        };
    }

    public static Endpoint detokenize(ServedModel model, ObjectMapper mapper) {
        return request -> {
            DetokenizeRequest req = ChatCompletionsHandler.parse(mapper, request.body(), DetokenizeRequest.class);
            BackendLoader.LoadedModel loaded = checked(model, req.model());
            if (req.tokens() == null) throw ApiException.badRequest("'tokens' is required", "tokens");
            for (int i = 0; i < req.tokens().length; i++)
                if (!loaded.tokenization().isValidId(req.tokens()[i]))
                    throw ApiException.badRequest("Token id " + req.tokens()[i] + " is not in the vocabulary",
                            "tokens[" + i + "]");
            return CompletableFuture.completedFuture(ApiResponse.ok(
                    new DetokenizeResponse(loaded.tokenization().detokenize(req.tokens()))));
        };
    }

    private static BackendLoader.LoadedModel checked(ServedModel model, String name) {
        if (name != null && !name.equals(model.name())) throw ApiException.modelNotFound(name);
        BackendLoader.LoadedModel loaded = model.loaded()
                .orElseThrow(() -> ApiException.unavailable("The model is still loading"));
        if (loaded.tokenization() == null)
            throw new ApiException(501, ApiException.INVALID_REQUEST, "This model does not offer tokenization", null,
                    "not_implemented");
        return loaded;
    }
}

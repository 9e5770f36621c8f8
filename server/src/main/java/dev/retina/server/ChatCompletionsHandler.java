package dev.retina.server;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.exc.StreamReadException;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.InvalidTypeIdException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import dev.retina.server.http.ApiRequest;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.Endpoint;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatCompletionResponse;
import dev.retina.server.protocol.ChatRequestValidator;

import java.io.IOException;
import java.time.Clock;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

/**
 * {@code POST /v1/chat/completions}: binds and validates the body, hands it to the model's {@link ChatBackend}, and
 * shapes the result as OpenAI's {@code chat.completion}. Runs on the request executor.
 */
public final class ChatCompletionsHandler implements Endpoint {
    private final ServedModel model;
    private final ObjectMapper mapper;
    private final Clock clock;

    public ChatCompletionsHandler(ServedModel model, ObjectMapper mapper, Clock clock) {
        this.model = model;
        this.mapper = mapper;
        this.clock = clock;
    }

    @Override
    public CompletableFuture<ApiResponse> handle(ApiRequest request) {
        ChatCompletionRequest req = parse(request.body());
        ChatRequestValidator.validate(req, model.name());
        ChatBackend backend = model.loaded().orElseThrow(() -> ApiException.unavailable("The model is still loading"))
                .backend();
        String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = clock.instant().getEpochSecond();
        CompletableFuture<ChatResult> result = backend.complete(req);
        CompletableFuture<ApiResponse> response = result.thenApply(r -> ApiResponse.ok(ChatCompletionResponse.of(id,
                created, model.name(), r.text(), r.finishReason().openAiName(),
                ChatCompletionResponse.Usage.of(r.promptTokens(), r.completionTokens()))));
        // Cancelling the response (client gone) must reach the backend, which aborts the generation.
        response.whenComplete((r, t) -> {
            if (response.isCancelled()) result.cancel(true);
        });
        return response;
    }

    /** Binds the body; every Jackson failure becomes a 400 naming the field, never Jackson's own text. */
    ChatCompletionRequest parse(byte[] body) {
        if (body.length == 0) throw ApiException.badRequest("The request body is empty; send a JSON object", null);
        try {
            // Syntax first (a truncated body is a JSON error, not a bad "messages"), then binding.
            JsonNode tree = mapper.readTree(body);
            ChatCompletionRequest req = tree == null || !tree.isObject() ? null
                    : mapper.treeToValue(tree, ChatCompletionRequest.class);
            if (req == null) throw ApiException.badRequest("The request body must be a JSON object", null);
            return req;
        } catch (StreamReadException e) {
            JsonLocation at = e.getLocation();
            throw ApiException.badRequest("The request body is not valid JSON"
                    + (at == null ? "" : " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")"), null);
        } catch (InvalidTypeIdException e) {
            String param = paramOf(e);
            String typeId = e.getTypeId();
            throw ApiException.badRequest(typeId == null
                    ? param + " needs a 'type' (text or image_url)"
                    : "Unsupported content part type '" + ApiException.truncate(typeId) + "' at " + param
                            + "; use text or image_url", param + ".type");
        } catch (UnrecognizedPropertyException e) {
            throw ApiException.badRequest("Unknown parameter " + paramOf(e), paramOf(e));
        } catch (JsonMappingException e) {
            String param = paramOf(e);
            if (param.isEmpty()) throw ApiException.badRequest("The request body must be a JSON object", null);
            throw ApiException.badRequest("Invalid type or value for " + param, param);
        } catch (JacksonException e) {
            throw ApiException.badRequest("The request body is not valid JSON", null);
        } catch (IOException e) {
            throw ApiException.badRequest("The request body could not be read", null);
        }
    }

    /** Jackson's path as OpenAI names parameters: {@code messages[0].content[1].image_url}. */
    static String paramOf(JsonMappingException e) {
        StringBuilder sb = new StringBuilder();
        for (JsonMappingException.Reference ref : e.getPath()) {
            if (ref.getFieldName() != null) {
                if (!sb.isEmpty()) sb.append('.');
                sb.append(ref.getFieldName());
            } else if (ref.getIndex() >= 0) {
                sb.append('[').append(ref.getIndex()).append(']');
            }
        }
        return sb.toString();
    }
}

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
import dev.retina.server.http.SseEmitter;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionChunk;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatCompletionResponse;
import dev.retina.server.protocol.ChatRequestValidator;
import dev.retina.server.structured.HermesToolCallStreamer;
import dev.retina.server.structured.StructuredRequest;
import dev.retina.server.structured.ToolCallParser;

import java.io.IOException;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

/**
 * {@code POST /v1/chat/completions}: binds and validates the body, hands it to the model's {@link ChatBackend}, and
 * shapes the result as OpenAI's {@code chat.completion}, or streams {@code chat.completion.chunk} events when
 * {@code stream} is true. Runs on the request executor.
 */
public final class ChatCompletionsHandler implements Endpoint {
    private final ServedModel model;
    private final ObjectMapper mapper;
    private final Clock clock;
    private final String responseRole;
    private final boolean returnTokensAsTokenIds;

    public ChatCompletionsHandler(ServedModel model, ObjectMapper mapper, Clock clock) {
        this(model, mapper, clock, "assistant");
    }

    /** @param responseRole the role written in responses ({@code --response-role}) */
    public ChatCompletionsHandler(ServedModel model, ObjectMapper mapper, Clock clock, String responseRole) {
        this(model, mapper, clock, responseRole, false);
    }

    /** @param returnTokensAsTokenIds logprob tokens written as {@code token_id:N} ({@code --return-tokens-as-token-ids}) */
    public ChatCompletionsHandler(ServedModel model, ObjectMapper mapper, Clock clock, String responseRole,
                                  boolean returnTokensAsTokenIds) {
        this.model = model;
        this.mapper = mapper;
        this.clock = clock;
        this.responseRole = responseRole;
        this.returnTokensAsTokenIds = returnTokensAsTokenIds;
    }

    @Override
    public CompletableFuture<ApiResponse> handle(ApiRequest request) {
        ChatCompletionRequest req = parse(mapper, request.body(), ChatCompletionRequest.class);
        ChatRequestValidator.validate(req, model.name());
        StructuredRequest structured = StructuredRequest.of(req);
        ChatBackend backend = model.loaded().orElseThrow(() -> ApiException.unavailable("The model is still loading"))
                .backend();
        String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = clock.instant().getEpochSecond();
        CompletableFuture<ApiResponse> response = new CompletableFuture<>();
        Generation generation;
        if (req.isStream()) {
            SseEmitter emitter = new SseEmitter();
            boolean usage = req.streamOptions() != null && req.streamOptions().wantsUsage();
            generation = backend.chat(req, new SseListener(mapper, emitter, response, new ChunkFormat(id, created,
                    req.numChoices(), structured), usage));
            emitter.onCancel(generation::cancel);
        } else {
            CollectingListener collector = new CollectingListener();
            generation = backend.chat(req, collector);
            collector.result().whenComplete((r, t) -> {
                if (t != null) response.completeExceptionally(t);
                else response.complete(ApiResponse.ok(toResponse(id, created, r, structured)));
            });
        }
        // Cancelling the response (client gone before it was sent) aborts the generation.
        response.whenComplete((r, t) -> {
            if (response.isCancelled()) generation.cancel();
        });
        return response;
    }

    private ChatCompletionResponse toResponse(String id, long created, GenerationResult r, StructuredRequest structured) {
        List<ChatCompletionResponse.Choice> choices = new ArrayList<>();
        for (GenerationResult.Choice c : r.choices()) {
            ToolCallParser.Parsed calls = c.finishReason() == dev.retina.engine.FinishReason.STOP
                    ? ToolCallParser.parse(structured, c.text()) : null;
            ChatCompletionResponse.ResponseMessage message = calls == null
                    ? new ChatCompletionResponse.ResponseMessage(responseRole, c.text())
                    : new ChatCompletionResponse.ResponseMessage(responseRole, calls.content(), calls.calls());
            choices.add(new ChatCompletionResponse.Choice(c.index(), message,
                    calls == null ? c.finishReason().openAiName() : "tool_calls",
                    chatLogprobs(tokenIds(c.logprobs()))));
        }
        return ChatCompletionResponse.of(id, created, model.name(), choices,
                ChatCompletionResponse.Usage.of(r.promptTokens(), r.completionTokens()));
    }

    /** With --return-tokens-as-token-ids, each logprob's token is {@code token_id:N} (vLLM's spelling). */
    private List<GenerationListener.LogprobEntry> tokenIds(List<GenerationListener.LogprobEntry> entries) {
        return returnTokensAsTokenIds ? GenerationListener.LogprobEntry.asTokenIds(entries) : entries;
    }

    static ChatCompletionResponse.ChatLogprobs chatLogprobs(List<GenerationListener.LogprobEntry> entries) {
        if (entries == null) return null;
        List<ChatCompletionResponse.TokenLogprob> content = new ArrayList<>(entries.size());
        for (GenerationListener.LogprobEntry e : entries) {
            List<ChatCompletionResponse.TopLogprob> top = new ArrayList<>();
            for (GenerationListener.TopLogprob t : e.topLogprobs())
                top.add(new ChatCompletionResponse.TopLogprob(t.token(), t.logprob(), unsigned(t.bytes())));
            content.add(new ChatCompletionResponse.TokenLogprob(e.token(), e.logprob(), unsigned(e.bytes()), top));
        }
        return new ChatCompletionResponse.ChatLogprobs(content);
    }

    static List<Integer> unsigned(byte[] bytes) {
        List<Integer> out = new ArrayList<>(bytes.length);
        for (byte b : bytes) out.add(b & 0xFF);
        return out;
    }

    /** Chat chunk shapes: a role delta per choice first, then content deltas, finish reasons, usage. */
    private final class ChunkFormat implements SseListener.Format {
        private final String id;
        private final long created;
        private final int numChoices;
        private final StructuredRequest structured;
        private final java.util.Map<Integer, ToolCallParser.Streamer> calls = new java.util.HashMap<>();
        private final java.util.Map<Integer, HermesToolCallStreamer> autoCalls = new java.util.HashMap<>();

        ChunkFormat(String id, long created, int numChoices, StructuredRequest structured) {
            this.id = id;
            this.created = created;
            this.numChoices = numChoices;
            this.structured = structured;
        }

        private ChatCompletionChunk chunk(List<ChatCompletionChunk.Choice> choices, ChatCompletionResponse.Usage usage) {
            return new ChatCompletionChunk(id, "chat.completion.chunk", created, model.name(), choices, usage, null);
        }

        @Override
        public List<Object> opening() {
            List<Object> events = new ArrayList<>();
            for (int i = 0; i < numChoices; i++)
                events.add(chunk(List.of(new ChatCompletionChunk.Choice(i, new ChatCompletionChunk.Delta(responseRole,
                        structured.forcedToolCall() ? null : ""),
                        null, null)), null));
            return events;
        }

        @Override
        public Object text(int choiceIndex, String text, List<GenerationListener.LogprobEntry> logprobs) {
            logprobs = tokenIds(logprobs);
            if (structured.forcedToolCall()) {
                List<ChatCompletionChunk.ToolCallDelta> deltas =
                        calls.computeIfAbsent(choiceIndex, i -> new ToolCallParser.Streamer(structured)).append(text);
                return chunk(List.of(new ChatCompletionChunk.Choice(choiceIndex, new ChatCompletionChunk.Delta(null,
                        null, deltas.isEmpty() ? null : deltas), chatLogprobs(logprobs), null)), null);
            }
            if (structured.toolMode() == StructuredRequest.ToolMode.AUTO) {
                HermesToolCallStreamer.Delta d =
                        autoCalls.computeIfAbsent(choiceIndex, i -> new HermesToolCallStreamer(structured)).append(text);
                return chunk(List.of(new ChatCompletionChunk.Choice(choiceIndex, autoDelta(d),
                        chatLogprobs(logprobs), null)), null);
            }
            return chunk(List.of(new ChatCompletionChunk.Choice(choiceIndex, new ChatCompletionChunk.Delta(null, text),
                    chatLogprobs(logprobs), null)), null);
        }

        /** Content "" only when there is nothing else to say, so a chunk never carries both nothing and a call. */
        private static ChatCompletionChunk.Delta autoDelta(HermesToolCallStreamer.Delta d) {
            boolean hasCalls = !d.toolCalls().isEmpty();
            return new ChatCompletionChunk.Delta(null, hasCalls && d.content().isEmpty() ? null : d.content(),
                    hasCalls ? d.toolCalls() : null);
        }

        @Override
        public Object finish(int choiceIndex, String finishReason) {
            ToolCallParser.Streamer call = calls.get(choiceIndex);
            if (call != null && call.started() && finishReason.equals("stop")) finishReason = "tool_calls";
            HermesToolCallStreamer auto = autoCalls.get(choiceIndex);
            String held = null;
            if (auto != null) {
                // A partial tag or an unclosed block held back to the end is content after all.
                String rest = auto.finish().content();
                held = rest.isEmpty() ? null : rest;
                if (auto.anyCall() && finishReason.equals("stop")) finishReason = "tool_calls";
            }
            return chunk(List.of(new ChatCompletionChunk.Choice(choiceIndex, new ChatCompletionChunk.Delta(null, held),
                    null, finishReason)), null);
        }

        @Override
        public Object usage(ChatCompletionResponse.Usage usage) {
            return chunk(List.of(), usage);
        }
    }

    /** Binds the body; every Jackson failure becomes a 400 naming the field, never Jackson's own text. */
    static <T> T parse(ObjectMapper mapper, byte[] body, Class<T> type) {
        if (body.length == 0) throw ApiException.badRequest("The request body is empty; send a JSON object", null);
        try {
            // Syntax first (a truncated body is a JSON error, not a bad "messages"), then binding.
            JsonNode tree = mapper.readTree(body);
            T req = tree == null || !tree.isObject() ? null : mapper.treeToValue(tree, type);
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

    ChatCompletionRequest parse(byte[] body) {
        return parse(mapper, body, ChatCompletionRequest.class);
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

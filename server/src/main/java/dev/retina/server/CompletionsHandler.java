package dev.retina.server;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.retina.server.http.ApiRequest;
import dev.retina.server.http.ApiResponse;
import dev.retina.server.http.Endpoint;
import dev.retina.server.http.SseEmitter;
import dev.retina.server.protocol.ApiException;
import dev.retina.server.protocol.ChatCompletionResponse;
import dev.retina.server.protocol.CompletionRequest;
import dev.retina.server.protocol.CompletionRequestValidator;
import dev.retina.server.protocol.CompletionResponse;

import java.time.Clock;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

/**
 * {@code POST /v1/completions} (OpenAI's legacy completions): text or token-id prompts, no chat template, no images;
 * answers a {@code text_completion} object or streams them. Runs on the request executor.
 */
public final class CompletionsHandler implements Endpoint {
    private final ServedModel model;
    private final ObjectMapper mapper;
    private final Clock clock;
    private final boolean returnTokensAsTokenIds;

    public CompletionsHandler(ServedModel model, ObjectMapper mapper, Clock clock) {
        this(model, mapper, clock, false);
    }

    /** @param returnTokensAsTokenIds logprob tokens written as {@code token_id:N} ({@code --return-tokens-as-token-ids}) */
    public CompletionsHandler(ServedModel model, ObjectMapper mapper, Clock clock, boolean returnTokensAsTokenIds) {
        this.model = model;
        this.mapper = mapper;
        this.clock = clock;
        this.returnTokensAsTokenIds = returnTokensAsTokenIds;
    }

    @Override
    public CompletableFuture<ApiResponse> handle(ApiRequest request) {
        CompletionRequest req = ChatCompletionsHandler.parse(mapper, request.body(), CompletionRequest.class);
        CompletionRequestValidator.validate(req, model.name());
        ChatBackend backend = model.loaded().orElseThrow(() -> ApiException.unavailable("The model is still loading"))
                .backend();
        String id = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = clock.instant().getEpochSecond();
        CompletableFuture<ApiResponse> response = new CompletableFuture<>();
        Generation generation;
        if (req.isStream()) {
            SseEmitter emitter = new SseEmitter();
            boolean usage = req.streamOptions() != null && req.streamOptions().wantsUsage();
            generation = backend.completion(req, new SseListener(mapper, emitter, response, new Format(id, created),
                    usage));
            emitter.onCancel(generation::cancel);
        } else {
            CollectingListener collector = new CollectingListener();
            generation = backend.completion(req, collector);
            collector.result().whenComplete((r, t) -> {
                if (t != null) response.completeExceptionally(t);
                else response.complete(ApiResponse.ok(toResponse(id, created, r)));
            });
        }
        response.whenComplete((r, t) -> {
            if (response.isCancelled()) generation.cancel();
        });
        return response;
    }

    private CompletionResponse toResponse(String id, long created, GenerationResult r) {
        List<CompletionResponse.Choice> choices = new ArrayList<>();
        for (GenerationResult.Choice c : r.choices())
            choices.add(new CompletionResponse.Choice(c.text(), c.index(), legacy(tokenIds(c.logprobs()), 0),
                    c.finishReason().openAiName()));
        return CompletionResponse.of(id, created, model.name(), choices,
                ChatCompletionResponse.Usage.of(r.promptTokens(), r.completionTokens()));
    }

    /**
     * The legacy logprobs shape. {@code text_offset} counts each token's own text from {@code startOffset}; with stop
     * strings or special tokens skipped it may run past the returned text.
     */
    private List<GenerationListener.LogprobEntry> tokenIds(List<GenerationListener.LogprobEntry> entries) {
        return returnTokensAsTokenIds ? GenerationListener.LogprobEntry.asTokenIds(entries) : entries;
    }

    static CompletionResponse.LegacyLogprobs legacy(List<GenerationListener.LogprobEntry> entries, int startOffset) {
        if (entries == null) return null;
        List<String> tokens = new ArrayList<>();
        List<Float> lps = new ArrayList<>();
        List<Map<String, Float>> top = new ArrayList<>();
        List<Integer> offsets = new ArrayList<>();
        int offset = startOffset;
        for (GenerationListener.LogprobEntry e : entries) {
            tokens.add(e.token());
            lps.add(e.logprob());
            Map<String, Float> t = new LinkedHashMap<>();
            for (GenerationListener.TopLogprob tl : e.topLogprobs()) t.putIfAbsent(tl.token(), tl.logprob());
            top.add(t);
            offsets.add(offset);
            offset += e.token().length();
        }
        return new CompletionResponse.LegacyLogprobs(tokens, lps, top, offsets);
    }

    /** Stream events: {@code text_completion} objects with text deltas, then finish reasons, then usage. */
    private final class Format implements SseListener.Format {
        private final String id;
        private final long created;
        private final Map<Integer, Integer> offsets = new LinkedHashMap<>();

        Format(String id, long created) {
            this.id = id;
            this.created = created;
        }

        @Override
        public List<Object> opening() {
            return List.of();
        }

        @Override
        public Object text(int choiceIndex, String text, List<GenerationListener.LogprobEntry> logprobs) {
            int start = offsets.getOrDefault(choiceIndex, 0);
            CompletionResponse.LegacyLogprobs lp = legacy(tokenIds(logprobs), start);
            if (lp != null && !lp.textOffset().isEmpty())
                offsets.put(choiceIndex, start + logprobs.stream().mapToInt(e -> e.token().length()).sum());
            return CompletionResponse.of(id, created, model.name(),
                    List.of(new CompletionResponse.Choice(text, choiceIndex, lp, null)), null);
        }

        @Override
        public Object finish(int choiceIndex, String finishReason) {
            return CompletionResponse.of(id, created, model.name(),
                    List.of(new CompletionResponse.Choice("", choiceIndex, null, finishReason)), null);
        }

        @Override
        public Object usage(ChatCompletionResponse.Usage usage) {
            return CompletionResponse.of(id, created, model.name(), List.of(), usage);
        }
    }
}

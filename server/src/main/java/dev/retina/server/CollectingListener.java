package dev.retina.server;

import dev.retina.engine.FinishReason;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;

/** Aggregates a generation's events into one {@link GenerationResult}: the non-streamed answer. */
public final class CollectingListener implements GenerationListener {
    private final CompletableFuture<GenerationResult> result = new CompletableFuture<>();
    private final Map<Integer, StringBuilder> texts = new TreeMap<>();
    private final Map<Integer, List<LogprobEntry>> logprobs = new TreeMap<>();
    private final Map<Integer, GenerationResult.Choice> finished = new TreeMap<>();
    private int numPromptTokens;

    public CompletableFuture<GenerationResult> result() {
        return result;
    }

    @Override
    public synchronized void onStart(int numPromptTokens) {
        this.numPromptTokens = numPromptTokens;
    }

    @Override
    public synchronized void onText(int choiceIndex, String text, List<LogprobEntry> lps) {
        texts.computeIfAbsent(choiceIndex, i -> new StringBuilder()).append(text);
        if (lps != null) logprobs.computeIfAbsent(choiceIndex, i -> new ArrayList<>()).addAll(lps);
    }

    @Override
    public synchronized void onFinish(int choiceIndex, FinishReason reason, int numCompletionTokens) {
        StringBuilder text = texts.get(choiceIndex);
        finished.put(choiceIndex, new GenerationResult.Choice(choiceIndex, text == null ? "" : text.toString(), reason,
                logprobs.get(choiceIndex), numCompletionTokens));
    }

    @Override
    public synchronized void onDone() {
        result.complete(new GenerationResult(new ArrayList<>(finished.values()), numPromptTokens));
    }

    @Override
    public void onError(Throwable error) {
        result.completeExceptionally(error);
    }
}

package dev.retina.server.offline;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.FinishReason;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.engine.TokenLogprobs;
import dev.retina.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Result assembly for one offline request: {@link #accept} gathers the engine's outputs on the engine thread (cheap
 * appends only); {@link #result} decodes them into a {@link RequestResult} on the output thread, only after
 * {@link #done()} has completed (which orders those reads after the engine thread's writes).
 */
final class OutputCollector implements OutputSink {
    private final EngineRequest request;
    private final long arrivalNanos;
    private final Tokenizer tokenizer;          // null: outputs carry no text
    private final List<List<Integer>> tokens = new ArrayList<>();
    private final List<List<TokenLogprobs>> logprobs = new ArrayList<>();
    private final FinishReason[] reasons;
    private int numFinished;
    private long firstTokenNanos = -1;
    private long finishedNanos;
    private final CompletableFuture<Void> done = new CompletableFuture<>();

    OutputCollector(EngineRequest request, long arrivalNanos, Tokenizer tokenizer) {
        this.request = request;
        this.arrivalNanos = arrivalNanos;
        this.tokenizer = tokenizer;
        int n = request.params().n();
        reasons = new FinishReason[n];
        for (int i = 0; i < n; i++) {
            tokens.add(new ArrayList<>());
            logprobs.add(request.params().logprobs() == null ? null : new ArrayList<>());
        }
    }

    /** Completes when every choice has finished; fails with the engine's error. */
    CompletableFuture<Void> done() {
        return done;
    }

    @Override
    public void accept(RequestOutput out) {
        if (out.error() != null) {
            done.completeExceptionally(new IllegalStateException("request " + request.requestId() + ": "
                    + out.error()));
            return;
        }
        int c = out.choiceIndex();
        if (firstTokenNanos < 0 && out.newTokenIds().length > 0) firstTokenNanos = System.nanoTime();
        for (int id : out.newTokenIds()) tokens.get(c).add(id);
        if (out.logprobs() != null && logprobs.get(c) != null) logprobs.get(c).addAll(out.logprobs());
        if (out.finished() && reasons[c] == null) {
            reasons[c] = out.finishReason();
            if (++numFinished == reasons.length) {
                finishedNanos = System.nanoTime();
                done.complete(null);
            }
        }
    }

    RequestResult result(Void ignored) {
        List<CompletionOutput> outputs = new ArrayList<>(reasons.length);
        for (int c = 0; c < reasons.length; c++) {
            int[] ids = tokens.get(c).stream().mapToInt(Integer::intValue).toArray();
            String text = tokenizer == null ? null : tokenizer.decode(ids, true);
            List<TokenLogprobs> lp = logprobs.get(c) == null ? null : List.copyOf(logprobs.get(c));
            outputs.add(new CompletionOutput(c, text, ids, reasons[c], lp));
        }
        long first = firstTokenNanos < 0 ? finishedNanos : firstTokenNanos;
        return new RequestResult(request.requestId(), request.promptTokenIds(), outputs,
                new RequestMetrics(arrivalNanos, first, finishedNanos));
    }
}

package dev.retina.server.backend;

import dev.retina.engine.FinishReason;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.engine.TokenLogprobs;
import dev.retina.server.GenerationListener;
import dev.retina.server.GenerationListener.LogprobEntry;
import dev.retina.server.GenerationListener.TopLogprob;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The output side of one engine request: the engine thread only enqueues its {@link RequestOutput}s here; a drain
 * task on the output executor (at most one at a time per request) detokenizes, applies stop strings and builds
 * logprobs, and reports to the {@link GenerationListener}. When the listener is not ready (a slow SSE client), the
 * drain pauses and outputs wait as token ids. When every choice ended on a stop string, the engine request is
 * aborted so its KV blocks go back to the pool at once.
 */
final class RequestTracker implements OutputSink {
    /** How the output side treats a request's text. */
    record OutputSpec(boolean skipSpecialTokens, List<String> stop, boolean wantLogprobs) {
        OutputSpec {
            stop = List.copyOf(stop);
        }
    }

    private final String requestId;
    private final int choiceOffset;
    private final OutputSpec spec;
    private final OutputTokenizer tokenizer;
    private final Executor executor;
    private final GenerationListener listener;
    private final Runnable abortEngineRequest;
    private final ConcurrentLinkedQueue<RequestOutput> queue = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean draining = new AtomicBoolean();
    // Drain-side state (one drain at a time).
    private final ChoiceDecoder[] choices;
    private final boolean[] finished;
    private int numFinished;
    private boolean anyStopped;
    private boolean over;

    /**
     * @param choiceOffset added to choice indices reported to the listener (several prompts of one completions call)
     */
    RequestTracker(String requestId, int numChoices, int choiceOffset, OutputSpec spec, OutputTokenizer tokenizer,
                   Executor executor, GenerationListener listener, Runnable abortEngineRequest) {
        this.requestId = requestId;
        this.choiceOffset = choiceOffset;
        this.spec = spec;
        this.tokenizer = tokenizer;
        this.executor = executor;
        this.listener = listener;
        this.abortEngineRequest = abortEngineRequest;
        this.choices = new ChoiceDecoder[numChoices];
        this.finished = new boolean[numChoices];
    }

    /** Engine thread: enqueue only. */
    @Override
    public void accept(RequestOutput output) {
        queue.add(output);
        schedule();
    }

    private void schedule() {
        if (draining.compareAndSet(false, true)) executor.execute(this::drain);
    }

    private void drain() {
        try {
            while (true) {
                if (!over && !listener.isReady()) {
                    draining.set(false);
                    listener.resumeWith(this::schedule);
                    return;
                }
                RequestOutput out = queue.poll();
                if (out == null) break;
                if (!over) handle(out);
            }
        } catch (RuntimeException e) {
            fail(e);
        }
        draining.set(false);
        if (!queue.isEmpty()) schedule(); // an output arrived between the last poll and the flag reset
    }

    private void handle(RequestOutput out) {
        if (out.error() != null) {
            fail(new IllegalStateException("request " + requestId + " failed in the engine: " + out.error()));
            return;
        }
        int c = out.choiceIndex();
        if (finished[c]) return;
        ChoiceDecoder choice = choices[c];
        if (choice == null) choice = choices[c] = new ChoiceDecoder(tokenizer, spec.skipSpecialTokens(), spec.stop());
        StringBuilder delta = new StringBuilder();
        List<LogprobEntry> logprobs = spec.wantLogprobs() ? new ArrayList<>() : null;
        int[] ids = out.newTokenIds();
        for (int i = 0; i < ids.length && !choice.stopped(); i++) {
            if (logprobs != null && out.logprobs() != null && i < out.logprobs().size() && out.logprobs().get(i) != null)
                logprobs.add(entry(out.logprobs().get(i)));
            delta.append(choice.append(ids[i]));
        }
        FinishReason reason = choice.stopped() ? FinishReason.STOP : out.finishReason();
        if (reason != null && !choice.stopped()) delta.append(choice.finish());
        if (!delta.isEmpty() || logprobs != null && !logprobs.isEmpty())
            listener.onText(choiceOffset + c, delta.toString(), logprobs);
        if (reason == null) return;
        finished[c] = true;
        numFinished++;
        anyStopped |= choice.stopped();
        listener.onFinish(choiceOffset + c, reason, choice.numTokens());
        if (numFinished == finished.length) {
            over = true;
            if (anyStopped) abortEngineRequest.run(); // frees the blocks now, not at max_tokens
            listener.onDone();
        }
    }

    private LogprobEntry entry(TokenLogprobs lp) {
        List<TopLogprob> top = new ArrayList<>(lp.topTokenIds().length);
        for (int j = 0; j < lp.topTokenIds().length; j++) {
            int id = lp.topTokenIds()[j];
            top.add(new TopLogprob(tokenizer.tokenText(id), lp.topLogprobs()[j], tokenizer.tokenBytes(id), id));
        }
        return new LogprobEntry(tokenizer.tokenText(lp.tokenId()), lp.logprob(), tokenizer.tokenBytes(lp.tokenId()), top,
                lp.tokenId());
    }

    private void fail(Throwable error) {
        if (over) return;
        over = true;
        abortEngineRequest.run();
        listener.onError(error);
    }
}

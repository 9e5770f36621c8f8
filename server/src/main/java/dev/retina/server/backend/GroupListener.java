package dev.retina.server.backend;

import dev.retina.engine.FinishReason;
import dev.retina.server.GenerationListener;

import java.util.List;

/**
 * Joins the engine requests of one API call (one per prompt of a completions call) into one listener: one
 * {@link #onStart} with the summed prompt tokens, one {@link #onDone} after the last part, one error at most.
 * Parts drain on different threads, so every call is synchronised.
 */
final class GroupListener implements GenerationListener {
    private final GenerationListener delegate;
    private final int numParts;
    private int numStarted;
    private int numPromptTokens;
    private int numDone;
    private boolean failed;
    private Runnable onFailure = () -> {
    };

    GroupListener(GenerationListener delegate, int numParts) {
        this.delegate = delegate;
        this.numParts = numParts;
    }

    /** Run once when any part fails (cancels the others). */
    synchronized void onFailure(Runnable r) {
        this.onFailure = r;
    }

    @Override
    public synchronized void onStart(int numPromptTokens) {
        this.numPromptTokens += numPromptTokens;
        if (++numStarted == numParts && !failed) delegate.onStart(this.numPromptTokens);
    }

    @Override
    public synchronized void onText(int choiceIndex, String text, List<LogprobEntry> logprobs) {
        if (!failed) delegate.onText(choiceIndex, text, logprobs);
    }

    @Override
    public synchronized void onFinish(int choiceIndex, FinishReason reason, int numCompletionTokens) {
        if (!failed) delegate.onFinish(choiceIndex, reason, numCompletionTokens);
    }

    @Override
    public synchronized void onDone() {
        if (++numDone == numParts && !failed) delegate.onDone();
    }

    @Override
    public synchronized void onError(Throwable error) {
        if (failed) return;
        failed = true;
        onFailure.run();
        delegate.onError(error);
    }

    @Override
    public boolean isReady() {
        return delegate.isReady();
    }

    @Override
    public void resumeWith(Runnable resume) {
        delegate.resumeWith(resume);
    }
}

package dev.retina.server.metrics;

import dev.retina.engine.FinishReason;
import dev.retina.server.ChatBackend;
import dev.retina.server.Generation;
import dev.retina.server.GenerationListener;
import dev.retina.server.http.RequestContext;
import dev.retina.server.protocol.ChatCompletionRequest;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.server.protocol.CompletionRequest;
import dev.retina.server.protocol.ImageUrlPart;
import dev.retina.server.protocol.MessageContent;

import java.util.List;

/**
 * A {@link ChatBackend} decorator that times every generation for {@link RetinaMetrics} and fills the request's
 * {@link RequestContext} (model, token counts, images) for the access log. The context is the one the router made
 * current on the calling request thread ({@link RequestContext#current()}); backends are called synchronously from
 * the endpoint, so it is still set here.
 */
public final class MeteredChatBackend implements ChatBackend {
    private final ChatBackend delegate;
    private final RetinaMetrics metrics;
    private final String modelName;

    public MeteredChatBackend(ChatBackend delegate, RetinaMetrics metrics, String modelName) {
        this.delegate = delegate;
        this.metrics = metrics;
        this.modelName = modelName;
    }

    public ChatBackend delegate() {
        return delegate;
    }

    @Override
    public Generation chat(ChatCompletionRequest request, GenerationListener listener) {
        int numImages = countImages(request.messages());
        return delegate.chat(request, wrap(listener, numImages));
    }

    @Override
    public Generation completion(CompletionRequest request, GenerationListener listener) {
        return delegate.completion(request, wrap(listener, 0));
    }

    private GenerationListener wrap(GenerationListener listener, int numImages) {
        RequestContext rc = RequestContext.current();
        long arrival = rc != null ? rc.startNanos() : System.nanoTime();
        if (rc != null) {
            rc.setModel(modelName);
            rc.setNumImages(numImages);
        }
        return new Listener(listener, metrics.startRequest(arrival, numImages), rc);
    }

    static int countImages(List<ChatMessage> messages) {
        int n = 0;
        if (messages == null) return 0;
        for (ChatMessage m : messages)
            if (m.content() instanceof MessageContent.Parts parts)
                for (var part : parts.parts()) if (part instanceof ImageUrlPart) n++;
        return n;
    }

    @Override
    public boolean isHealthy() {
        return delegate.isHealthy();
    }

    @Override
    public void close() {
        delegate.close();
    }

    private static final class Listener implements GenerationListener {
        private final GenerationListener inner;
        private final RequestMetrics timing;
        private final RequestContext context;
        private int numPromptTokens;
        private int numCompletionTokens;

        Listener(GenerationListener inner, RequestMetrics timing, RequestContext context) {
            this.inner = inner;
            this.timing = timing;
            this.context = context;
        }

        @Override
        public void onStart(int numPromptTokens) {
            this.numPromptTokens += numPromptTokens;
            timing.engineTook(numPromptTokens);
            inner.onStart(numPromptTokens);
        }

        @Override
        public void onText(int choiceIndex, String text, List<LogprobEntry> logprobs) {
            timing.output();
            inner.onText(choiceIndex, text, logprobs);
        }

        @Override
        public void onFinish(int choiceIndex, FinishReason reason, int numCompletionTokens) {
            this.numCompletionTokens += numCompletionTokens;
            timing.choiceFinished(reason, numCompletionTokens);
            inner.onFinish(choiceIndex, reason, numCompletionTokens);
        }

        @Override
        public void onDone() {
            timing.end(false);
            if (context != null) context.setUsage(numPromptTokens, numCompletionTokens);
            inner.onDone();
        }

        @Override
        public void onError(Throwable error) {
            timing.end(true);
            inner.onError(error);
        }

        @Override
        public boolean isReady() {
            return inner.isReady();
        }

        @Override
        public void resumeWith(Runnable resume) {
            inner.resumeWith(resume);
        }
    }
}

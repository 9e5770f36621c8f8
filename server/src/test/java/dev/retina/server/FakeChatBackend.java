package dev.retina.server;

import dev.retina.engine.FinishReason;
import dev.retina.server.protocol.ChatCompletionRequest;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;

/** A backend for handler tests: answers with whatever {@code answer} returns and records each request it got. */
final class FakeChatBackend implements ChatBackend {
    final List<ChatCompletionRequest> requests = new CopyOnWriteArrayList<>();
    final List<CompletableFuture<ChatResult>> futures = new CopyOnWriteArrayList<>();
    private final Function<ChatCompletionRequest, CompletableFuture<ChatResult>> answer;

    FakeChatBackend(Function<ChatCompletionRequest, CompletableFuture<ChatResult>> answer) {
        this.answer = answer;
    }

    /** Always answers "Hello there" with 7 prompt and 2 completion tokens. */
    static FakeChatBackend fixed() {
        return new FakeChatBackend(r -> CompletableFuture.completedFuture(
                new ChatResult("Hello there", FinishReason.STOP, 7, 2)));
    }

    @Override
    public Generation chat(ChatCompletionRequest request, GenerationListener listener) {
        requests.add(request);
        CompletableFuture<ChatResult> f = answer.apply(request);
        futures.add(f);
        f.whenComplete((r, t) -> {
            if (t != null) {
                listener.onError(t instanceof java.util.concurrent.CompletionException && t.getCause() != null
                        ? t.getCause() : t);
                return;
            }
            listener.onStart(r.promptTokens());
            listener.onText(0, r.text(), null);
            listener.onFinish(0, r.finishReason(), r.completionTokens());
            listener.onDone();
        });
        return () -> f.cancel(true);
    }
}

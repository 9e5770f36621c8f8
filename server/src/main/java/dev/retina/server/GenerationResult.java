package dev.retina.server;

import dev.retina.engine.FinishReason;

import java.util.List;

/** A finished generation: every choice's text, finish reason, logprobs (null unless asked) and token counts. */
public record GenerationResult(List<Choice> choices, int promptTokens) {
    public GenerationResult {
        choices = List.copyOf(choices);
    }

    public record Choice(int index, String text, FinishReason finishReason, List<GenerationListener.LogprobEntry> logprobs,
                         int completionTokens) {
    }

    public int completionTokens() {
        return choices.stream().mapToInt(Choice::completionTokens).sum();
    }
}

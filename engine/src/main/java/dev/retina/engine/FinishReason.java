package dev.retina.engine;

/** Why a sequence stopped; names match OpenAI's {@code finish_reason} values where one exists. */
public enum FinishReason {
    /** EOS or a stop token id (stop strings are detected outside the engine, and also report STOP). */
    STOP,
    /** max_tokens reached or the model's context is full. */
    LENGTH,
    /** The client went away or the request was cancelled. */
    ABORT;

    public String openAiName() {
        return switch (this) {
            case STOP -> "stop";
            case LENGTH -> "length";
            case ABORT -> "abort";
        };
    }
}

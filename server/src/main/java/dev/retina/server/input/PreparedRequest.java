package dev.retina.server.input;

import dev.retina.engine.EngineRequest;

import java.util.List;

/**
 * A chat request made ready for the engine, plus what the output side needs.
 *
 * @param stop              stop strings: the text is cut before the first one and it is not returned
 * @param skipSpecialTokens whether decoding drops special tokens (OpenAI's behaviour; vLLM's default)
 */
public record PreparedRequest(EngineRequest engineRequest, List<String> stop, boolean skipSpecialTokens) {
    public PreparedRequest {
        stop = List.copyOf(stop);
    }
}

package dev.retina.server.offline;

import java.util.List;

/**
 * A finished offline request (vLLM's {@code RequestOutput}).
 *
 * @param promptTokenIds the prompt as the engine saw it (image placeholders expanded)
 * @param outputs        the n choices, by index
 */
public record RequestResult(String requestId, int[] promptTokenIds, List<CompletionOutput> outputs,
                            RequestMetrics metrics) {
    public RequestResult {
        outputs = List.copyOf(outputs);
    }
}

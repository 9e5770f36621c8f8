package dev.retina.server.backend;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.LlmEngine;
import dev.retina.engine.OutputSink;

/**
 * What the chat backend needs of an engine: {@link LlmEngine}'s request API. Lets the backend run on the batching
 * engine or on {@link SerialGreedyEngine} (one request at a time, greedy) until the LLaVA model runner lands.
 */
public interface EngineClient extends AutoCloseable {
    void addRequest(EngineRequest request, OutputSink sink);

    void abort(String requestId);

    /** False when only greedy decoding is available; the backend then refuses temperature &gt; 0. */
    default boolean supportsSampling() {
        return true;
    }

    @Override
    default void close() {
    }

    static EngineClient of(LlmEngine engine) {
        return new EngineClient() {
            @Override
            public void addRequest(EngineRequest request, OutputSink sink) {
                engine.addRequest(request, sink);
            }

            @Override
            public void abort(String requestId) {
                engine.abort(requestId);
            }

            @Override
            public void close() {
                engine.close();
            }
        };
    }
}

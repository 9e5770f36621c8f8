package dev.retina.server.backend;

import dev.retina.engine.EncoderCacheStats;
import dev.retina.engine.EngineRequest;
import dev.retina.engine.EngineStats;
import dev.retina.engine.LlmEngine;
import dev.retina.engine.OutputSink;

/** What the backend needs of an engine: {@link LlmEngine}'s request API (a seam for tests with a scripted engine). */
public interface EngineClient extends AutoCloseable {
    void addRequest(EngineRequest request, OutputSink sink);

    void abort(String requestId);

    /** False once the engine can no longer answer (its thread died). */
    default boolean isAlive() {
        return true;
    }

    /** The engine's load, or null when unknown. */
    default EngineStats stats() {
        return null;
    }

    /** Each replica's load ({@code --data-parallel-size}); one entry for a single engine. */
    default java.util.List<EngineStats> replicaStats() {
        EngineStats s = stats();
        return s == null ? java.util.List.of() : java.util.List.of(s);
    }

    /** Vision-encoder passes and cache hits, or null when the engine does not count them. */
    default EncoderCacheStats encoderCacheStats() {
        return null;
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
            public EngineStats stats() {
                return engine.stats();
            }

            @Override
            public boolean isAlive() {
                return engine.isAlive();
            }

            @Override
            public EncoderCacheStats encoderCacheStats() {
                return engine.encoderCacheStats();
            }

            @Override
            public void close() {
                engine.close();
            }
        };
    }
}

package dev.retina.engine;

/**
 * Runs one batched step: builds the model inputs from a {@link SchedulerOutput}, runs the forward pass and samples.
 * Called only from the engine thread; implementations may keep per-request state (dropping it when a request
 * appears in {@link SchedulerOutput#finishedRequestIds()}).
 */
public interface ModelRunner extends AutoCloseable {
    /** Executes the step; a thrown exception fails the step's requests, not the engine. */
    RunnerOutput execute(SchedulerOutput schedulerOutput);

    /**
     * Checks a request before it is admitted (e.g. precomputed image features of the wrong shape), so a bad request
     * is refused alone instead of failing a whole batched step later. Called on the engine thread.
     *
     * @return null when the runner can run it, else a message for the client naming expected and actual values
     */
    default String checkRequest(EngineRequest request) {
        return null;
    }

    /** Vision-encoder passes and encoder-cache hits so far, readable from any thread; null when not counted. */
    default EncoderCacheStats encoderCacheStats() {
        return null;
    }

    /**
     * Host nanoseconds of the last {@link #execute}'s phases: building inputs, the forward call, sampling (with its
     * wait for the device); null when not measured. Engine thread only.
     */
    default long[] lastStepNanos() {
        return null;
    }

    @Override
    default void close() {
    }
}

package dev.retina.engine;

/**
 * Runs one batched step: builds the model inputs from a {@link SchedulerOutput}, runs the forward pass and samples.
 * Called only from the engine thread; implementations may keep per-request state (dropping it when a request
 * appears in {@link SchedulerOutput#finishedRequestIds()}).
 */
public interface ModelRunner extends AutoCloseable {
    /** Executes the step; a thrown exception fails the step's requests, not the engine. */
    RunnerOutput execute(SchedulerOutput schedulerOutput);

    @Override
    default void close() {
    }
}

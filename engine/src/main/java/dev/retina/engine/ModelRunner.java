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
     * Whether the engine may queue a decode step before the previous step's tokens are on the host ({@link #submit}
     * with a {@code previous}); false: every step is {@link #execute}d in turn. True only where it pays: where the
     * device runs a step while the host goes on (a GPU).
     */
    default boolean canRunAhead() {
        return false;
    }

    /**
     * Queues a step. Its sequences may carry {@link ScheduledSequence#FROM_PREVIOUS_STEP} as their one token id (and
     * as their last output id): the token {@code previous} samples for the same sequence, which must be among
     * previous's sampling sequences. This default resolves those on the host ({@code previous.await()}) and
     * {@link #execute}s the step before returning; a GPU runner feeds them on the device instead and returns while the
     * step runs.
     *
     * @param previous the step queued just before this one, not yet awaited, or null
     */
    default PendingStep submit(SchedulerOutput schedulerOutput, PendingStep previous) {
        SchedulerOutput resolved = previous == null ? schedulerOutput
                : ScheduledSequence.resolve(schedulerOutput, previous.schedulerOutput(), previous.await());
        return PendingStep.done(schedulerOutput, execute(resolved));
    }

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
     * Host nanoseconds of the last {@link #execute} or {@link #submit}: building inputs, the forward call, sampling
     * (without the wait for the device where the step was only queued); null when not measured. Engine thread only.
     */
    default long[] lastStepNanos() {
        return null;
    }

    @Override
    default void close() {
    }
}

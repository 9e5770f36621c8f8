package dev.retina.engine;

/**
 * A step the {@link ModelRunner} has queued: its sampled tokens come back through {@link #await}. On a GPU the work may
 * still be running when {@link ModelRunner#submit} returns, so the engine can queue the next decode step behind it
 * (feeding it this step's tokens on the device) before it reads these tokens back: the host's bookkeeping between
 * steps then overlaps the device's work instead of leaving it idle.
 */
public interface PendingStep {
    /** The step this is. */
    SchedulerOutput schedulerOutput();

    /**
     * Waits for the step's tokens (only this step's: work queued after it is not waited for). Idempotent: later
     * calls return the same output, or throw the same kind of failure.
     */
    RunnerOutput await();

    /** A step that already ran. */
    static PendingStep done(SchedulerOutput schedulerOutput, RunnerOutput output) {
        return new PendingStep() {
            @Override
            public SchedulerOutput schedulerOutput() { return schedulerOutput; }

            @Override
            public RunnerOutput await() { return output; }
        };
    }
}

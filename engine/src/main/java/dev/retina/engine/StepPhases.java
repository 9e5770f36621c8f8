package dev.retina.engine;

import java.util.Locale;

/**
 * Where the engine thread's time went in decode-only steps, summed over {@code steps} of them (nanoseconds, host
 * clock, no device synchronization added): scheduling, building the model inputs, the forward call (on the GPU it
 * only queues work), sampling (which waits for the device: the step's one synchronization), the scheduler's update,
 * and handing outputs to their sinks. On a GPU, everything but {@code sample} is time the device may sit idle
 * unless it is still working through the forward pass that was queued.
 */
public record StepPhases(long steps, long schedule, long inputs, long forward, long sample, long update, long outputs) {
    public static final StepPhases NONE = new StepPhases(0, 0, 0, 0, 0, 0, 0);

    public StepPhases plus(StepPhases o) {
        return new StepPhases(steps + o.steps, schedule + o.schedule, inputs + o.inputs, forward + o.forward,
                sample + o.sample, update + o.update, outputs + o.outputs);
    }

    public StepPhases minus(StepPhases o) {
        return new StepPhases(steps - o.steps, schedule - o.schedule, inputs - o.inputs, forward - o.forward,
                sample - o.sample, update - o.update, outputs - o.outputs);
    }

    /** Microseconds per step for each phase, e.g. "schedule 12.0, inputs 30.1, ...". */
    public String perStepMicros() {
        double n = Math.max(1, steps) * 1e3;
        return String.format(Locale.ROOT, "schedule %.1f, inputs %.1f, forward %.1f, sample %.1f, update %.1f,"
                + " outputs %.1f", schedule / n, inputs / n, forward / n, sample / n, update / n, outputs / n);
    }
}

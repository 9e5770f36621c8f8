package dev.retina.engine;

/**
 * A snapshot of the engine's load, published by the engine thread after each step; safe to read from any thread.
 * Step counters: steps that carried prompt tokens (prefill chunks, possibly with decodes batched in) and decode-only
 * steps, with the wall time the engine thread spent in each kind (scheduling, the forward pass, sampling), and for
 * decode-only steps that time by phase ({@link StepPhases}).
 */
public record EngineStats(int numRunning, int numWaiting, int numFreeBlocks, int numTotalBlocks, long numPreemptions,
                          long numPromptSteps, long promptStepNanos, long numDecodeSteps, long decodeStepNanos,
                          StepPhases decodePhases) {

    /** Load only, no step counters. */
    public EngineStats(int numRunning, int numWaiting, int numFreeBlocks, int numTotalBlocks, long numPreemptions) {
        this(numRunning, numWaiting, numFreeBlocks, numTotalBlocks, numPreemptions, 0, 0, 0, 0, StepPhases.NONE);
    }

    /** Both replicas' load and step counters added up. */
    public EngineStats plus(EngineStats o) {
        return new EngineStats(numRunning + o.numRunning, numWaiting + o.numWaiting, numFreeBlocks + o.numFreeBlocks,
                numTotalBlocks + o.numTotalBlocks, numPreemptions + o.numPreemptions, numPromptSteps + o.numPromptSteps,
                promptStepNanos + o.promptStepNanos, numDecodeSteps + o.numDecodeSteps,
                decodeStepNanos + o.decodeStepNanos, decodePhases.plus(o.decodePhases));
    }
}

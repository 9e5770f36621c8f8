package dev.retina.engine;

/** A snapshot of the engine's load, published by the engine thread after each step; safe to read from any thread. */
public record EngineStats(int numRunning, int numWaiting, int numFreeBlocks, int numTotalBlocks, long numPreemptions) {
}

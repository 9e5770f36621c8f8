package dev.retina.engine;

import ai.djl.engine.Engine;

/**
 * What the tensor engine underneath found on this machine: DJL's engine and its libtorch version, and the GPUs it
 * sees. Loading it makes DJL find (or, when allowed, download) its native library. Any thread.
 */
public final class EngineInfo {
    private EngineInfo() {
    }

    /** One line, e.g. "PyTorch 2.7.1 (DJL 0.36.0), 1 GPU(s)". */
    public static String describe() {
        Engine engine = Engine.getInstance();
        return engine.getEngineName() + " " + engine.getVersion() + " (DJL " + Engine.getDjlVersion() + "), "
                + engine.getGpuCount() + " GPU(s)";
    }
}

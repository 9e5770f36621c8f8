package dev.retina.engine;

import ai.djl.Device;
import ai.djl.engine.Engine;

/** Where the model runs, as the CLI names it ({@code --device auto|cpu|gpu}); mapped to a DJL device here. */
public enum DeviceKind {
    AUTO, CPU, GPU;

    /** The DJL device; AUTO picks the first GPU when one is visible. */
    public Device toDevice() {
        int numGpus = Engine.getInstance().getGpuCount();
        return switch (this) {
            case CPU -> Device.cpu();
            case GPU -> {
                if (numGpus == 0) throw new IllegalArgumentException("--device gpu: no GPU is visible");
                yield Device.gpu();
            }
            case AUTO -> numGpus > 0 ? Device.gpu() : Device.cpu();
        };
    }
}

package dev.retina.engine;

import ai.djl.Device;
import ai.djl.engine.Engine;

/** Where the model runs, as the CLI names it ({@code --device auto|cpu|gpu}); mapped to a DJL device here. */
public enum DeviceKind {
    AUTO, CPU, GPU;

    /** The DJL device; AUTO picks the first GPU when one is visible. */
    public Device toDevice() {
        return toDevice(0, 1);
    }

    /**
     * The device of data-parallel replica {@code replica} of {@code replicas}: GPU {@code replica} (one replica per
     * visible GPU), or the CPU for every replica. AUTO takes GPUs when any is visible.
     *
     * @throws IllegalArgumentException when GPUs are asked for and fewer than {@code replicas} are visible
     */
    public Device toDevice(int replica, int replicas) {
        int numGpus = Engine.getInstance().getGpuCount();
        boolean gpu = this == GPU || (this == AUTO && numGpus > 0);
        if (!gpu) return Device.cpu();
        if (numGpus == 0) throw new IllegalArgumentException("--device gpu: no GPU is visible");
        if (numGpus < replicas)
            throw new IllegalArgumentException("--data-parallel-size " + replicas + " needs " + replicas
                    + " visible GPUs (one per replica), found " + numGpus);
        return Device.gpu(replica);
    }
}

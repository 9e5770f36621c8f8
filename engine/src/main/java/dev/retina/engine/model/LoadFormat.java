package dev.retina.engine.model;

/** Where a model's weights come from. */
public enum LoadFormat {
    /** Safetensors when the checkpoint directory has them (the only real format so far). */
    AUTO,
    /** {@code model.safetensors} or the shards listed in {@code model.safetensors.index.json}. */
    SAFETENSORS,
    /** Real-shaped random weights built from {@code config.json} alone, seeded; for benchmarks. */
    DUMMY
}

package dev.retina.server.config;

/** {@code --load-format}: how weights are read. */
public enum LoadFormat {
    /** safetensors (the only format read today). */
    AUTO,
    SAFETENSORS,
    /** Real-shaped random weights from config.json alone, for benchmarks without a checkpoint's weights. */
    DUMMY
}

package dev.retina.server.config;

/** {@code --device}: where the model runs. */
public enum Device {
    /** The first GPU when libtorch sees one, else the CPU. */
    AUTO,
    CPU,
    GPU
}

package dev.retina.server.config;

/** {@code --dtype}: weight and activation type. bfloat16 is absent on purpose: DJL 0.36 aborts the JVM on it. */
public enum Dtype {
    /** float16 on GPU, float32 on CPU. */
    AUTO,
    FLOAT32,
    FLOAT16
}

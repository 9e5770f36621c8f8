package dev.retina.engine;

import ai.djl.ndarray.types.DataType;

/** The compute dtype as the CLI names it ({@code --dtype auto|float32|float16}); mapped to DJL's here. */
public enum ComputeDtype {
    AUTO, FLOAT32, FLOAT16;

    /** DJL's type, or null for AUTO (float16 on GPU, float32 on CPU: {@code ModelLoadConfig#resolvedDtype}). */
    public DataType toDataType() {
        return switch (this) {
            case AUTO -> null;
            case FLOAT32 -> DataType.FLOAT32;
            case FLOAT16 -> DataType.FLOAT16;
        };
    }
}

package dev.retina.engine.model;

import ai.djl.Device;
import ai.djl.ndarray.types.DataType;

import java.util.Objects;

/**
 * How to load a model: onto which device, in which dtype, from which format. Immutable.
 *
 * @param device     DJL device the weights and the KV cache live on
 * @param dtype      compute dtype of weights and activations; {@code null} means "auto": FLOAT32 on CPU, FLOAT16 on
 *                   GPU. BFLOAT16 is refused: it kills the JVM inside DJL 0.36 (FACTS.md)
 * @param loadFormat where weights come from
 * @param seed       seed of the random weights of {@link LoadFormat#DUMMY}
 * @param nativeKernels on CUDA in float16, use libtorch kernels DJL has no op for (flash attention over the packed
 *                   context, fused RMSNorm) through the C shim ({@link TorchShim}); false keeps DJL ops only, the path
 *                   the CPU parity tests check. Ignored on CPU.
 */
public record ModelLoadConfig(Device device, DataType dtype, LoadFormat loadFormat, long seed, boolean nativeKernels) {
    public ModelLoadConfig {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(loadFormat, "loadFormat");
        if (dtype != null && dtype != DataType.FLOAT32 && dtype != DataType.FLOAT16)
            throw new IllegalArgumentException("dtype must be FLOAT32, FLOAT16 or null (auto), got " + dtype);
    }

    /** With native kernels on (where they apply). */
    public ModelLoadConfig(Device device, DataType dtype, LoadFormat loadFormat, long seed) {
        this(device, dtype, loadFormat, seed, true);
    }

    /** CPU, float32, safetensors: what the parity tests use. */
    public static ModelLoadConfig cpu() {
        return new ModelLoadConfig(Device.cpu(), DataType.FLOAT32, LoadFormat.AUTO, 0L);
    }

    /** The given device with the dtype picked automatically. */
    public static ModelLoadConfig auto(Device device) {
        return new ModelLoadConfig(device, null, LoadFormat.AUTO, 0L);
    }

    /** The dtype actually used: the configured one, else FLOAT16 on GPU and FLOAT32 elsewhere. */
    public DataType resolvedDtype() {
        if (dtype != null) return dtype;
        return device.isGpu() ? DataType.FLOAT16 : DataType.FLOAT32;
    }

    public ModelLoadConfig withLoadFormat(LoadFormat format) {
        return new ModelLoadConfig(device, dtype, format, seed, nativeKernels);
    }

    public ModelLoadConfig withNativeKernels(boolean enabled) {
        return new ModelLoadConfig(device, dtype, loadFormat, seed, enabled);
    }
}

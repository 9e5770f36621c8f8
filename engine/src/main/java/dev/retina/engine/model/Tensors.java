package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;

/** Small tensor helpers shared by the model classes. Stateless; any thread. */
final class Tensors {
    private Tensors() {}

    /**
     * Converts an array made from host memory ({@code NDManager.create(float[])} and friends) into one that owns its
     * storage. On CPU DJL wraps the Java direct buffer without copying, and {@code toType} to the same type returns
     * an alias even when asked to copy (libtorch's {@code to()} without {@code copy=true}): once the source array is
     * closed, the alias points at a buffer the garbage collector may free. Seen as weights turning into garbage under
     * GC pressure; so constants kept beyond one step always go through here.
     */
    static NDArray owned(NDArray hostBacked, DataType dtype) {
        return hostBacked.getDataType() == dtype ? hostBacked.duplicate() : hostBacked.toType(dtype, false);
    }
}

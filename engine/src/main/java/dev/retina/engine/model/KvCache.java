package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * The paged KV cache: per layer one preallocated K and one V tensor of {@code numBlocks * blockSize} slots, each slot
 * one token's {@code numKvHeads * headDim} values. Slot = block * blockSize + offset; a sequence's block table maps
 * its positions to blocks (the block manager owns that bookkeeping). Called only from the engine thread.
 */
public final class KvCache implements AutoCloseable {
    private final int numLayers;
    private final int numBlocks;
    private final int blockSize;
    private final int numKvHeads;
    private final int headDim;
    private final NDManager manager;
    private final NDArray[] keyCache;   // [layer] (numBlocks * blockSize, numKvHeads * headDim) dtype
    private final NDArray[] valueCache; // [layer] (numBlocks * blockSize, numKvHeads * headDim) dtype

    public KvCache(int numLayers, int numBlocks, int blockSize, int numKvHeads, int headDim, DataType dtype,
                   NDManager manager) {
        if (numLayers < 1 || numBlocks < 1 || blockSize < 1 || numKvHeads < 1 || headDim < 1)
            throw new IllegalArgumentException("KV cache dimensions must be positive");
        this.numLayers = numLayers;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.numKvHeads = numKvHeads;
        this.headDim = headDim;
        this.manager = manager.newSubManager();
        this.keyCache = new NDArray[numLayers];
        this.valueCache = new NDArray[numLayers];
        // Zeros, not empty: padded attention columns read slot 0 with weight 0, and 0 * NaN would poison them.
        Shape shape = new Shape((long) numBlocks * blockSize, (long) numKvHeads * headDim);
        for (int i = 0; i < numLayers; i++) {
            keyCache[i] = this.manager.zeros(shape, dtype);
            valueCache[i] = this.manager.zeros(shape, dtype);
        }
    }

    /** A cache shaped for the model's language model, on its device and in its dtype. */
    public static KvCache forModel(LlavaModel model, int numBlocks, int blockSize) {
        LlavaConfig.TextConfig t = model.config().textConfig();
        return new KvCache(t.numHiddenLayers(), numBlocks, blockSize, t.numKeyValueHeads(), t.headDim(), model.dtype(),
                model.manager());
    }

    /** Bytes one block takes over all layers, K and V: what sizing the cache from free memory divides by. */
    public static long bytesPerBlock(LlavaConfig config, int blockSize, DataType dtype) {
        LlavaConfig.TextConfig t = config.textConfig();
        return 2L * t.numHiddenLayers() * blockSize * t.numKeyValueHeads() * t.headDim() * dtype.getNumOfBytes();
    }

    public int numLayers() {
        return numLayers;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public int numKvHeads() {
        return numKvHeads;
    }

    public int headDim() {
        return headDim;
    }

    /** (numBlocks * blockSize, numKvHeads * headDim) */
    public NDArray keyCache(int layer) {
        return keyCache[layer];
    }

    /** (numBlocks * blockSize, numKvHeads * headDim) */
    public NDArray valueCache(int layer) {
        return valueCache[layer];
    }

    @Override
    public void close() {
        manager.close();
    }
}

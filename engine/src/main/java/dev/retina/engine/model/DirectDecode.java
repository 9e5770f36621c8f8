package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;

/**
 * A pure decode step of the Llama layers with no DJL op per layer: every layer is nine launches on raw device
 * addresses, RMSNorm, the fused qkv GEMM, rotary + K/V cache write, paged attention, the o GEMM with the residual add
 * fused into it (beta = 1), RMSNorm, the fused gate/up GEMM, SiLU·up and the down GEMM with the residual add. GEMMs
 * are cuBLAS through FFM ({@link Cublas}), the rest Retina's PTX kernels ({@link CudaKernels}); all on the legacy
 * default stream, in order with DJL's ops. Host cost per launch is ~3–5 µs against ~10–20 µs per DJL op, so the GPU,
 * not the host, paces a batch-1 step. The residual stream is updated in place in the step's {@code inputsEmbeds}.
 * Intermediate buffers persist (model manager) and grow with the batch. Engine thread only.
 */
final class DirectDecode {
    private final LlavaConfig.TextConfig config;
    private final DataType dtype;
    private final CudaKernels kernels;
    private final Cublas cublas;
    private final NDManager manager;
    private final long[][] layerWeights; // per layer: input norm, qkv, o, post norm, gate_up, down
    private final NDArray norm;
    private final NDArray lmHead;
    private final int hidden;
    private final int qDim;
    private final int qkvDim;
    private final int inter;
    private final float eps;
    private final float scale;
    private int capacity;                 // rows the buffers hold
    private NDArray normed;
    private NDArray qkv;
    private NDArray attn;
    private NDArray gateUp;
    private NDArray act;
    private long normedPtr;
    private long qkvPtr;
    private long attnPtr;
    private long gateUpPtr;
    private long actPtr;
    private KvCache cacheOf;              // the cache whose per-layer addresses are below
    private long[] keyPtr;
    private long[] valuePtr;

    DirectDecode(LlavaConfig.TextConfig config, DataType dtype, CudaKernels kernels, Cublas cublas, NDManager manager,
                 long[][] layerWeights, NDArray norm, NDArray lmHead) {
        this.config = config;
        this.dtype = dtype;
        this.kernels = kernels;
        this.cublas = cublas;
        this.manager = manager;
        this.layerWeights = layerWeights;
        this.norm = norm;
        this.lmHead = lmHead;
        this.hidden = config.hiddenSize();
        int d = config.headDim();
        this.qDim = config.numAttentionHeads() * d;
        this.qkvDim = qDim + 2 * config.numKeyValueHeads() * d;
        this.inter = (int) config.intermediateSize();
        this.eps = (float) config.rmsNormEps();
        this.scale = (float) Math.pow(d, -0.5);
    }

    /**
     * @param inputsEmbeds (B, hidden) model dtype, contiguous: the residual stream, overwritten
     * @return (B, vocab) float32 logits in inputsEmbeds' manager
     */
    NDArray forward(NDArray inputsEmbeds, AttentionMetadata meta, KvCache cache, NDArray cos, NDArray sin) {
        int rows = (int) inputsEmbeds.getShape().get(0);
        ensureCapacity(rows);
        ensureCache(cache);
        kernels.ensureContext();
        long h = kernels.address(inputsEmbeds);
        long positions = kernels.address(meta.positions);
        long slots = kernels.address(meta.slotMapping);
        long blockTables = kernels.address(meta.blockTables);
        long contextLens = kernels.address(meta.contextLens);
        int maxBlocks = (int) meta.blockTables.getShape().get(1);
        long cosPtr = kernels.address(cos);
        long sinPtr = kernels.address(sin);
        int heads = config.numAttentionHeads();
        int kvHeads = config.numKeyValueHeads();
        int d = config.headDim();
        for (int i = 0; i < layerWeights.length; i++) {
            long[] w = layerWeights[i];
            kernels.rmsNorm(normedPtr, h, w[0], rows, hidden, eps);
            cublas.linear(qkvPtr, normedPtr, w[1], rows, qkvDim, hidden, false);
            kernels.ropeKvWrite(qkvPtr, positions, slots, cosPtr, sinPtr, keyPtr[i], valuePtr[i], rows, heads, kvHeads, d);
            kernels.pagedAttentionDecode(attnPtr, qDim, qkvPtr, qkvDim, keyPtr[i], valuePtr[i], blockTables, contextLens,
                    rows, maxBlocks, meta.blockSize, heads, kvHeads, d, scale);
            cublas.linear(h, attnPtr, w[2], rows, hidden, qDim, true);
            kernels.rmsNorm(normedPtr, h, w[3], rows, hidden, eps);
            cublas.linear(gateUpPtr, normedPtr, w[4], rows, 2 * inter, hidden, false);
            kernels.siluMul(actPtr, gateUpPtr, rows, inter);
            cublas.linear(h, actPtr, w[5], rows, hidden, inter, true);
        }
        NDManager step = inputsEmbeds.getManager();
        NDArray last = step.create(new Shape(rows, hidden), dtype);
        kernels.rmsNorm(kernels.address(last), h, kernels.address(norm), rows, hidden, eps);
        NDArray logits = Linear.linear(last, lmHead, null).singletonOrThrow(); // (B, vocab)
        return logits.getDataType() == DataType.FLOAT32 ? logits : logits.toType(DataType.FLOAT32, false);
    }

    private void ensureCapacity(int rows) {
        if (rows <= capacity) return;
        int cap = Math.max(16, Integer.highestOneBit(rows - 1) << 1);
        if (normed != null) {
            normed.close();
            qkv.close();
            attn.close();
            gateUp.close();
            act.close();
        }
        normed = manager.create(new Shape(cap, hidden), dtype);
        qkv = manager.create(new Shape(cap, qkvDim), dtype);
        attn = manager.create(new Shape(cap, qDim), dtype);
        gateUp = manager.create(new Shape(cap, 2L * inter), dtype);
        act = manager.create(new Shape(cap, inter), dtype);
        normedPtr = kernels.address(normed);
        qkvPtr = kernels.address(qkv);
        attnPtr = kernels.address(attn);
        gateUpPtr = kernels.address(gateUp);
        actPtr = kernels.address(act);
        capacity = cap;
    }

    private void ensureCache(KvCache cache) {
        if (cache == cacheOf) return;
        keyPtr = new long[layerWeights.length];
        valuePtr = new long[layerWeights.length];
        for (int i = 0; i < layerWeights.length; i++) {
            keyPtr[i] = kernels.address(cache.keyCache(i));
            valuePtr[i] = kernels.address(cache.valueCache(i));
        }
        cacheOf = cache;
    }
}

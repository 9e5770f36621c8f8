package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * The CLIP encoder layers with no DJL op per layer (CUDA float16): each layer is eight launches on raw device
 * addresses, the way {@link DirectDecode} runs the Llama layers.
 * <ol>
 *   <li>{@code add_layer_norm}: the residual add of the previous layer's MLP, layer_norm1, and the q/k/v and out_proj
 *       biases copied into their GEMMs' outputs;</li>
 *   <li>the fused qkv GEMM, accumulating onto its bias (cuBLAS {@code beta = 1}: one rounding, as torch's addmm);</li>
 *   <li>libtorch's varlen flash attention, each image one sequence;</li>
 *   <li>the out_proj GEMM onto its bias;</li>
 *   <li>{@code add_layer_norm}: the attention residual add, layer_norm2, and the fc1 bias;</li>
 *   <li>the fc1 GEMM;</li>
 *   <li>{@code act_fill}: quick_gelu or GELU in place, and the fc2 bias;</li>
 *   <li>the fc2 GEMM.</li>
 * </ol>
 * The residual stream lives in a persistent buffer; a requested hidden state is materialized (one more
 * {@code add_layer_norm}, without the norm) into a new array. Rounding follows HF's fp16 modules: each Linear rounds
 * once with its bias, each residual add rounds, LayerNorm computes in fp32. Against the DJL-op tower (about 17 DJL ops
 * per layer at 10–20 µs of host time each) one image's encode is no longer host-bound. Buffers persist in the model's
 * manager and grow with the images per call (the engine's profile run allocates the largest). Engine thread only.
 */
final class DirectVision {
    private final CudaKernels kernels;
    private final Cublas cublas;
    private final TorchShim shim;
    private final NDManager manager;
    private final long[][] layerWeights; // per layer: ln1 w, b, qkv w, b, out w, b, ln2 w, b, fc1 w, b, fc2 w, b
    private final int hidden;
    private final int inter;
    private final int heads;
    private final int headDim;
    private final float eps;
    private final int activation;
    private int capacity;                // rows (tokens) the buffers hold
    private NDArray resid;
    private NDArray normed;
    private NDArray qkv;
    private NDArray attnOut;
    private NDArray fc1;
    private NDArray fc2;

    DirectVision(LlavaConfig.VisionConfig config, CudaKernels kernels, Cublas cublas, TorchShim shim,
                 NDManager manager, long[][] layerWeights, int activation) {
        this.kernels = kernels;
        this.cublas = cublas;
        this.shim = shim;
        this.manager = manager;
        this.layerWeights = layerWeights;
        this.hidden = config.hiddenSize();
        this.inter = (int) config.intermediateSize();
        this.heads = config.numAttentionHeads();
        this.headDim = config.headDim();
        this.eps = (float) config.layerNormEps();
        this.activation = activation;
    }

    /** The {@link CudaKernels#actFill} activation for HF's {@code hidden_act}, or -1 where there is none. */
    static int activation(String hiddenAct) {
        return switch (hiddenAct) {
            case "quick_gelu" -> CudaKernels.ACT_QUICK_GELU;
            case "gelu" -> CudaKernels.ACT_GELU;
            default -> -1;
        };
    }

    /**
     * Runs every layer on {@code embeddings} (after pre_layrnorm) and returns HF's {@code hidden_states[i]} for each
     * requested index (0: embeddings itself).
     *
     * @param embeddings (B, S, hidden) float16 contiguous, on the GPU
     * @param cuSeq      (B + 1) int32 on the GPU: 0, S, 2S, ... (flash attention's sequence starts)
     * @return (B, S, hidden) float16 arrays in embeddings' manager
     */
    NDArray[] hiddenStates(NDArray embeddings, NDArray cuSeq, int[] indices) {
        Shape shape = embeddings.getShape();
        long b = shape.get(0);
        int s = (int) shape.get(1);
        int rows = Math.toIntExact(b * s);
        if (!kernels.isContiguous(embeddings)) throw new IllegalArgumentException("embeddings not contiguous");
        ensureCapacity(rows);
        kernels.ensureContext();
        NDManager step = embeddings.getManager();
        NDArray[] out = new NDArray[indices.length];
        for (int j = 0; j < indices.length; j++) if (indices[j] == 0) out[j] = embeddings;
        long x = kernels.address(embeddings);
        long residPtr = kernels.address(resid);
        long normedPtr = kernels.address(normed);
        long qkvPtr = kernels.address(qkv);
        long attnOutPtr = kernels.address(attnOut);
        long fc1Ptr = kernels.address(fc1);
        long fc2Ptr = kernels.address(fc2);
        int qkvDim = 3 * hidden;
        double scale = Math.pow(headDim, -0.5);
        try (NDManager views = step.newSubManager()) {
            // q, k and v as (rows, heads, headDim) views of the qkv buffer's first rows, for the flash call.
            NDArray first = qkv.get(new NDIndex("0:" + rows));
            first.attach(views);
            NDArray split = first.reshape(rows, 3, heads, headDim);
            split.attach(views);
            NDArray q = split.get(":, 0");
            NDArray k = split.get(":, 1");
            NDArray v = split.get(":, 2");
            for (NDArray a : new NDArray[] {q, k, v}) a.attach(views);
            for (int i = 0; i < layerWeights.length; i++) {
                long[] w = layerWeights[i];
                // layer 0 starts the residual stream from the embeddings; later layers add the last MLP's output
                kernels.addLayerNorm(residPtr, i == 0 ? x : residPtr, i == 0 ? 0L : fc2Ptr, normedPtr, w[0], w[1],
                        qkvPtr, w[3], qkvDim, attnOutPtr, w[5], hidden, rows, hidden, eps);
                cublas.linear(qkvPtr, normedPtr, w[2], rows, qkvDim, hidden, true);
                try (NDArray attn = shim.flashAttentionVarlen(q, k, v, cuSeq, cuSeq, s, s, false, scale)) {
                    if (i == 0 && !kernels.isContiguous(attn))
                        throw new IllegalStateException("flash attention returned a non-contiguous output");
                    cublas.linear(attnOutPtr, kernels.address(attn), w[4], rows, hidden, hidden, true);
                } // freed into torch's caching allocator; the GEMM reading it is ahead in the same stream
                kernels.addLayerNorm(residPtr, residPtr, attnOutPtr, normedPtr, w[6], w[7], fc1Ptr, w[9], inter, 0L,
                        0L, 0, rows, hidden, eps);
                cublas.linear(fc1Ptr, normedPtr, w[8], rows, inter, hidden, true);
                kernels.actFill(fc1Ptr, (long) rows * inter, activation, fc2Ptr, w[11], hidden, (long) rows * hidden);
                cublas.linear(fc2Ptr, fc1Ptr, w[10], rows, hidden, inter, true);
                for (int j = 0; j < indices.length; j++) {
                    if (indices[j] != i + 1) continue;
                    NDArray state = step.create(shape, DataType.FLOAT16);
                    kernels.addLayerNorm(kernels.address(state), residPtr, fc2Ptr, 0L, 0L, 0L, 0L, 0L, 0, 0L, 0L, 0,
                            rows, hidden, eps);
                    out[j] = state;
                }
            }
        }
        return out;
    }

    private void ensureCapacity(int rows) {
        if (rows <= capacity) return;
        int cap = Math.max(rows, 2 * capacity);
        if (resid != null) for (NDArray a : new NDArray[] {resid, normed, qkv, attnOut, fc1, fc2}) a.close();
        resid = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        normed = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        qkv = manager.create(new Shape(cap, 3L * hidden), DataType.FLOAT16);
        attnOut = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        fc1 = manager.create(new Shape(cap, inter), DataType.FLOAT16);
        fc2 = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        capacity = cap;
    }
}

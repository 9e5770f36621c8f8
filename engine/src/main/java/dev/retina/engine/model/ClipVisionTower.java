package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;

/**
 * LLaVA's {@code vision_tower}: HF {@code CLIPVisionModel} up to the deepest hidden state LLaVA selects (layers
 * past it are neither loaded nor run). Weights live in the model manager; results land in the input's manager.
 * Called only from the engine thread.
 */
final class ClipVisionTower {
    /** One CLIP encoder layer, q/k/v fused at load into one projection. */
    private record EncoderLayer(NDArray layerNorm1Weight, NDArray layerNorm1Bias, // (hidden)
                                NDArray qkvProjWeight,  // (3*hidden, hidden): q, k, v rows
                                NDArray qkvProjBias,    // (3*hidden)
                                NDArray outProjWeight,  // (hidden, hidden)
                                NDArray outProjBias,    // (hidden)
                                NDArray layerNorm2Weight, NDArray layerNorm2Bias, // (hidden)
                                NDArray fc1Weight,      // (intermediate, hidden)
                                NDArray fc1Bias,        // (intermediate)
                                NDArray fc2Weight,      // (hidden, intermediate)
                                NDArray fc2Bias) {      // (hidden)
    }

    private final LlavaConfig.VisionConfig config;
    private final NDManager weightsManager;     // the direct tower's buffers live here
    private final NDArray patchEmbeddingWeight; // (3*patch*patch, hidden): conv kernel flattened (c, y, x), transposed
    private final NDArray classEmbedding;       // (1, 1, hidden)
    private final NDArray positionEmbedding;    // (numPatches + 1, hidden)
    private final NDArray preLayrnormWeight;    // (hidden)
    private final NDArray preLayrnormBias;      // (hidden)
    private final EncoderLayer[] layers;        // the first numLayersToRun layers
    private final NDArray quickGeluAlpha;       // () 1.702, model dtype
    private final NDArray attentionScale;       // () headDim^-0.5, model dtype
    private TorchShim flash;                    // non-null: attention through libtorch's flash kernel (CUDA float16)
    private CudaKernels kernels;                // non-null: Retina's kernels are on (CUDA float16)
    private java.util.function.Supplier<Cublas> cublas;
    private boolean directEnabled = DIRECT;
    private boolean graphsEnabled = true;
    private boolean pixelGraphs = !"false".equals(System.getProperty("retina.visionGraphPixels"));
    private DirectVision direct;                // made on the first call that can take it
    private NDArray graphPatchWeight;           // (hidden, kPad) for the direct tower's graphs from pixels
    private boolean directUnavailable;          // cuBLAS, the kernels or the activation missing: DJL ops

    ClipVisionTower(LlavaConfig.VisionConfig config, int numLayersToRun, WeightSource weights, NDManager manager,
                    DataType dtype) {
        this.config = config;
        this.weightsManager = manager;
        long h = config.hiddenSize();
        long inter = config.intermediateSize();
        long p = config.patchSize();
        long c = config.numChannels();
        String pre = "vision_tower.";
        try (NDArray conv = weights.get(pre + "embeddings.patch_embedding.weight", h, c, p, p);
             NDArray flat = conv.reshape(h, c * p * p)) {
            // A stride-p convolution without bias is a matmul over flattened patches; transposed once here.
            patchEmbeddingWeight = flat.transpose().duplicate();
        }
        try (NDArray cls = weights.get(pre + "embeddings.class_embedding", h)) {
            classEmbedding = cls.reshape(1, 1, h).duplicate();
        }
        positionEmbedding = weights.get(pre + "embeddings.position_embedding.weight", config.numPatches() + 1, h);
        preLayrnormWeight = weights.get(pre + "pre_layrnorm.weight", h);
        preLayrnormBias = weights.get(pre + "pre_layrnorm.bias", h);
        layers = new EncoderLayer[numLayersToRun];
        for (int i = 0; i < numLayersToRun; i++) {
            String l = pre + "encoder.layers." + i + ".";
            NDArray qkvW;
            NDArray qkvB;
            try (NDList w = new NDList(weights.get(l + "self_attn.q_proj.weight", h, h),
                    weights.get(l + "self_attn.k_proj.weight", h, h), weights.get(l + "self_attn.v_proj.weight", h, h));
                 NDList b = new NDList(weights.get(l + "self_attn.q_proj.bias", h),
                         weights.get(l + "self_attn.k_proj.bias", h), weights.get(l + "self_attn.v_proj.bias", h))) {
                qkvW = NDArrays.concat(w, 0);
                qkvB = NDArrays.concat(b, 0);
            }
            layers[i] = new EncoderLayer(
                    weights.get(l + "layer_norm1.weight", h), weights.get(l + "layer_norm1.bias", h), qkvW, qkvB,
                    weights.get(l + "self_attn.out_proj.weight", h, h), weights.get(l + "self_attn.out_proj.bias", h),
                    weights.get(l + "layer_norm2.weight", h), weights.get(l + "layer_norm2.bias", h),
                    weights.get(l + "mlp.fc1.weight", inter, h), weights.get(l + "mlp.fc1.bias", inter),
                    weights.get(l + "mlp.fc2.weight", h, inter), weights.get(l + "mlp.fc2.bias", h));
        }
        try (NDArray a = manager.create(1.702f); NDArray s = manager.create((float) Math.pow(config.headDim(), -0.5))) {
            quickGeluAlpha = Tensors.owned(a, dtype);
            attentionScale = Tensors.owned(s, dtype);
        }
    }

    /**
     * Runs the tower and returns HF's {@code hidden_states[i]} for each requested non-negative index (0: embeddings
     * after pre_layrnorm; i: output of encoder layer i - 1).
     *
     * @param pixelValues (numImages, 3, imageSize, imageSize), float32 or model dtype (cast to it first, as HF casts)
     * @return one (numImages, numPatches + 1, hidden) array per index, in pixelValues' manager
     */
    NDArray[] hiddenStates(NDArray pixelValues, int[] indices) {
        long b = pixelValues.getShape().get(0);
        DirectVision graphed = direct();
        if (graphed != null && graphed.takesPixels((int) b, indices) && kernels.isContiguous(pixelValues))
            return graphed.hiddenStatesFromPixels(pixelValues, indices); // embeddings inside the graph: no DJL op
        DataType dtype = patchEmbeddingWeight.getDataType();
        if (pixelValues.getDataType() != dtype) pixelValues = pixelValues.toType(dtype, false);
        long p = config.patchSize();
        long g = config.imageSize() / p;
        long c = config.numChannels();
        long h = config.hiddenSize();
        // (B, C, g, p, g, p) -> (B, g, g, C, p, p) -> (B, g*g, C*p*p): patches in row-major order, as the conv.
        long t0 = PROFILE ? System.nanoTime() : 0L;
        NDArray patches = pixelValues.reshape(b, c, g, p, g, p).transpose(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p);
        NDArray patchEmbeds = patches.matMul(patchEmbeddingWeight); // (B, g*g, hidden)
        NDArray cls = classEmbedding.broadcast(new Shape(b, 1, h));
        cls.attach(pixelValues.getManager());
        NDArray embeddings = cls.concat(patchEmbeds, 1).add(positionEmbedding); // (B, g*g + 1, hidden)
        NDArray hidden = layerNorm(embeddings, preLayrnormWeight, preLayrnormBias);
        long t1 = PROFILE ? System.nanoTime() : 0L;
        NDManager step = pixelValues.getManager();
        DirectVision d = direct();
        NDArray cuSeq = null; // flash attention's cumulative sequence starts, one sequence per image: made once per call
        if (flash != null && (d == null || !d.graphed((int) b))) { // a graph holds its own
            int[] starts = new int[(int) b + 1];
            for (int i = 1; i <= b; i++) starts[i] = (int) (i * (g * g + 1));
            cuSeq = step.create(starts).toDevice(pixelValues.getDevice(), false);
        }
        if (d != null) {
            long t2 = PROFILE ? System.nanoTime() : 0L;
            NDArray[] states = d.hiddenStates(hidden, cuSeq, indices);
            if (PROFILE) hostNs.add(new long[] {t1 - t0, t2 - t1, System.nanoTime() - t2});
            return states;
        }
        NDArray[] out = new NDArray[indices.length];
        for (int layer = 0; ; layer++) {
            boolean kept = false;
            for (int j = 0; j < indices.length; j++) {
                if (indices[j] == layer) {
                    out[j] = hidden;
                    kept = true;
                }
            }
            if (layer == layers.length) break;
            // Each layer's temporaries (attention scores, MLP activations) die with its scope: the tower's peak memory
            // is one layer's, not every layer's (about 1.4 GB per 336-pixel fp16 image when all were kept).
            try (NDManager scope = step.newSubManager()) {
                hidden.tempAttach(scope);
                NDArray next = encoderLayer(layers[layer], hidden, cuSeq);
                next.attach(step);
                if (!kept) hidden.attach(scope); // not a requested hidden state: free it with the scope
                hidden = next;
            }
        }
        return out;
    }

    /**
     * Attention through libtorch's varlen flash attention (each image one sequence, no mask) instead of materialized
     * scores and softmax: six DJL ops fewer per layer, and no (B, heads, S, S) scores. Null turns it off (CPU, float32:
     * the DJL path the parity tests pin). On the H200 in float16 the fixtures' and the sweep's greedy tokens stayed
     * equal to transformers' with it on; one image's encode time did not measurably change (docs/BENCHMARKS.md).
     */
    void setFlashAttention(TorchShim shim) {
        long d = config.headDim();
        flash = FLASH && shim != null && shim.hasFlashAttention() && d % 8 == 0 && d <= 256 ? shim : null;
    }

    /** Flash attention in the vision tower where it applies; {@code -Dretina.visionFlash=false} turns it off. */
    static final boolean FLASH = !"false".equals(System.getProperty("retina.visionFlash"));

    /** -Dretina.directProfile=true: host time of the direct tower's phases (see {@link #hostProfile}). */
    private static final boolean PROFILE = Boolean.getBoolean("retina.directProfile");
    private final java.util.List<long[]> hostNs = new java.util.ArrayList<>(); // per call: the three phases

    /**
     * Median host time per direct-tower call since the last call (with -Dretina.directProfile=true): the embeddings
     * and pre_layrnorm (DJL ops), flash attention's sequence starts (a host-to-device copy), and the layers' launches.
     * Medians, so that a first call's one-time setup (cuBLAS, the kernels' buffers) does not count.
     */
    String hostProfile() {
        if (hostNs.isEmpty()) return "no profiled direct-tower calls (run with -Dretina.directProfile=true)";
        double[] median = new double[3];
        for (int k = 0; k < 3; k++) {
            int phase = k;
            long[] v = hostNs.stream().mapToLong(a -> a[phase]).sorted().toArray();
            median[k] = v[v.length / 2] / 1e6;
        }
        String r = String.format(java.util.Locale.ROOT, "vision tower host ms per call (median of %d): embeddings +"
                + " pre_layrnorm %.3f, cu_seqlens upload %.3f, %d layers' launches %.3f", hostNs.size(), median[0],
                median[1], layers.length, median[2]);
        hostNs.clear();
        return r;
    }

    /** The direct tower ({@link DirectVision}) where it applies; {@code -Dretina.directVision=false} turns it off. */
    static final boolean DIRECT = !"false".equals(System.getProperty("retina.directVision"));

    /**
     * Retina's kernels and cuBLAS for the direct tower (CUDA float16, with flash attention on); null kernels turn it
     * off. The direct tower is made on the first call.
     */
    void setDirect(CudaKernels kernels, java.util.function.Supplier<Cublas> cublas) {
        this.kernels = kernels;
        this.cublas = cublas;
    }

    /** The direct tower on or off where it applies (for comparisons against the DJL-op layers). */
    void setDirectEnabled(boolean enabled) {
        directEnabled = enabled;
    }

    /** Whether a call of {@code images} images replays as a CUDA graph (the direct tower, on the GPU). */
    boolean graphed(int images) {
        DirectVision d = direct();
        return d != null && d.graphed(images);
    }

    /** The direct tower's CUDA graphs on or off (for comparisons against its eager launches). */
    void setGraphsEnabled(boolean enabled) {
        graphsEnabled = enabled;
        if (direct != null) direct.setGraphsEnabled(enabled);
    }

    /** Whether the direct tower's graphs start from the pixels (on by default; off only to compare). */
    void setPixelGraphs(boolean enabled) {
        pixelGraphs = enabled;
        if (direct != null) direct.setPixelGraphs(enabled);
    }

    private DirectVision direct() {
        if (!directEnabled || directUnavailable || flash == null || kernels == null) return null;
        if (direct != null) return direct;
        int activation = DirectVision.activation(config.hiddenAct());
        Cublas c = kernels.hasVisionKernels() && activation >= 0 ? cublas.get() : null;
        if (c == null) {
            directUnavailable = true;
            return null;
        }
        long[][] w = new long[layers.length][];
        for (int i = 0; i < layers.length; i++) {
            EncoderLayer l = layers[i];
            NDArray[] arrays = {l.layerNorm1Weight(), l.layerNorm1Bias(), l.qkvProjWeight(), l.qkvProjBias(),
                    l.outProjWeight(), l.outProjBias(), l.layerNorm2Weight(), l.layerNorm2Bias(), l.fc1Weight(),
                    l.fc1Bias(), l.fc2Weight(), l.fc2Bias()};
            w[i] = new long[arrays.length];
            for (int j = 0; j < arrays.length; j++) {
                if (!kernels.isContiguous(arrays[j])) { // raw addresses need dense rows: keep the DJL-op layers
                    directUnavailable = true;
                    return null;
                }
                w[i][j] = kernels.address(arrays[j]);
            }
        }
        direct = new DirectVision(config, kernels, c, flash, weightsManager, w, activation);
        direct.setGraphsEnabled(graphsEnabled);
        direct.setEmbeddings(graphEmbeddings());
        direct.setPixelGraphs(pixelGraphs);
        return direct;
    }

    /**
     * The embeddings a vision graph needs to start from pixels ({@link DirectVision.Embeddings}), or null where an
     * array is not dense: the patch weight transposed back to the convolution's (hidden, C * patch * patch) rows and
     * zero-padded to a multiple of 8 columns (16-byte rows for the GEMM; zero columns add nothing), made once here.
     */
    private DirectVision.Embeddings graphEmbeddings() {
        for (NDArray a : new NDArray[] {classEmbedding, positionEmbedding, preLayrnormWeight, preLayrnormBias})
            if (!kernels.isContiguous(a)) return null;
        long h = config.hiddenSize();
        int k = (int) patchEmbeddingWeight.getShape().get(0);
        int kPad = (k + 7) / 8 * 8;
        NDArray rows;
        try (NDManager scope = weightsManager.newSubManager()) {
            NDArray w = patchEmbeddingWeight.transpose(); // (hidden, k)
            w.attach(scope);
            if (kPad > k) {
                NDArray zeros = scope.zeros(new Shape(h, kPad - k), w.getDataType());
                w = w.concat(zeros, 1);
            }
            rows = w.duplicate(); // dense (hidden, kPad)
            rows.attach(weightsManager);
        }
        graphPatchWeight = rows;
        long side = config.imageSize() / config.patchSize();
        return new DirectVision.Embeddings(kernels.address(rows), kPad, kernels.address(classEmbedding),
                kernels.address(positionEmbedding), kernels.address(preLayrnormWeight),
                kernels.address(preLayrnormBias), (int) config.numChannels(), (int) config.patchSize(), (int) side);
    }

    private NDArray encoderLayer(EncoderLayer w, NDArray x, NDArray cuSeq) {
        Shape shape = x.getShape(); // (B, S, hidden)
        long b = shape.get(0);
        long s = shape.get(1);
        long heads = config.numAttentionHeads();
        long d = config.headDim();
        NDArray normed = layerNorm(x, w.layerNorm1Weight(), w.layerNorm1Bias());
        NDArray attn;
        if (flash != null) {
            NDArray qkv = Linear.linear(normed, w.qkvProjWeight(), w.qkvProjBias()).singletonOrThrow()
                    .reshape(b * s, 3, heads, d); // (B*S, 3, heads, d): views with the last dim contiguous
            attn = flash.flashAttentionVarlen(qkv.get(":, 0"), qkv.get(":, 1"), qkv.get(":, 2"), cuSeq, cuSeq, (int) s,
                    (int) s, false, Math.pow(d, -0.5)).reshape(b, s, heads * d);
        } else {
            NDArray qkv = Linear.linear(normed, w.qkvProjWeight(), w.qkvProjBias()).singletonOrThrow()
                    .reshape(b, s, 3, heads, d).transpose(2, 0, 3, 1, 4); // (3, B, heads, S, d)
            NDArray q = qkv.get(0);
            NDArray k = qkv.get(1);
            NDArray v = qkv.get(2);
            NDArray scores = q.matMul(k.transpose(0, 1, 3, 2)).mul(attentionScale); // (B, heads, S, S)
            NDArray probs = scores.softmax(-1);
            attn = probs.matMul(v).transpose(0, 2, 1, 3).reshape(b, s, heads * d);
        }
        NDArray attnOut = Linear.linear(attn, w.outProjWeight(), w.outProjBias()).singletonOrThrow();
        NDArray residual = x.add(attnOut);
        NDArray normed2 = layerNorm(residual, w.layerNorm2Weight(), w.layerNorm2Bias());
        NDArray fc1 = Linear.linear(normed2, w.fc1Weight(), w.fc1Bias()).singletonOrThrow();
        NDArray act = activation(fc1, config.hiddenAct(), quickGeluAlpha);
        NDArray fc2 = Linear.linear(act, w.fc2Weight(), w.fc2Bias()).singletonOrThrow();
        return residual.add(fc2);
    }

    private NDArray layerNorm(NDArray x, NDArray weight, NDArray bias) {
        return LayerNorm.layerNorm(x, new Shape(config.hiddenSize()), weight, bias, (float) config.layerNormEps())
                .singletonOrThrow();
    }

    /** HF ACT2FN: "gelu" is exact (erf) GELU; "quick_gelu" is x * sigmoid(1.702 x). */
    static NDArray activation(NDArray x, String name, NDArray quickGeluAlpha) {
        return switch (name) {
            case "gelu" -> Activation.gelu(x);
            case "quick_gelu" -> x.mul(Activation.sigmoid(x.mul(quickGeluAlpha)));
            default -> throw new IllegalArgumentException("unsupported activation " + name);
        };
    }

    NDArray quickGeluAlpha() {
        return quickGeluAlpha;
    }
}

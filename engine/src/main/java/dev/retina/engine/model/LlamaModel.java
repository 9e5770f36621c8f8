package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Linear;

/**
 * LLaVA's {@code language_model}: HF {@code LlamaModel} plus {@code lm_head}, run over a flattened batch against the
 * paged KV cache. q/k/v and gate/up weights are fused at load so a layer costs few ops. Weights live in the model
 * manager; every per-step array lands in the manager of the step's input. Called only from the engine thread.
 */
final class LlamaModel implements AutoCloseable {
    /** One decoder layer, fused. */
    private record DecoderLayer(NDArray inputLayernormWeight,          // (hidden)
                                NDArray qkvProjWeight,                 // (qDim + 2 * kvDim, hidden): q, k, v rows
                                NDArray qkvProjBias,                   // (qDim + 2 * kvDim) or null
                                NDArray oProjWeight,                   // (hidden, qDim)
                                NDArray oProjBias,                     // (hidden) or null
                                NDArray postAttentionLayernormWeight,  // (hidden)
                                NDArray gateUpProjWeight,              // (2 * intermediate, hidden): gate, up rows
                                NDArray gateUpProjBias,                // (2 * intermediate) or null
                                NDArray downProjWeight,                // (hidden, intermediate)
                                NDArray downProjBias) {                // (hidden) or null
    }

    private final LlavaConfig.TextConfig config;
    private final DataType dtype;
    private final NDArray embedTokens; // (vocab, hidden)
    private final DecoderLayer[] layers;
    private final NDArray norm;        // (hidden)
    private final NDArray lmHead;      // (vocab, hidden); the same array as embedTokens when tied
    private final RotaryEmbedding rotaryEmb;
    private final NDArray rmsNormEps;  // () float32
    private final NDArray attentionScale; // () float32 or model dtype: headDim^-0.5
    private final int qDim;
    private final int kvDim;
    private final TorchShim shim;          // null: DJL ops only (CPU, float32, or no CUDA shim in this libtorch)
    private boolean flashAttention;        // varlen flash attention over the packed context (CUDA, float16)
    private boolean fusedRmsNorm;          // one-kernel RMSNorm (CUDA, float16)
    private final CudaKernels kernels;     // Retina's own CUDA kernels; null where not eligible or not loadable
    private boolean pagedDecode;           // decode steps: rotary + cache write fused, attention over the paged cache
    private boolean fusedSiluMul;          // silu(gate) * up in one kernel
    private boolean nativeKernels;         // as last set
    private boolean retinaKernels = true;  // Retina's kernels within the native path
    private final NDManager weightsManager;
    private final boolean noBiases;
    private boolean directDecode = !"false".equals(System.getProperty("retina.directDecode"));
    // Steps whose prefills have no cached context, through the direct path too (-Dretina.directPrefill=false: off)
    private boolean directPrefill = !"false".equals(System.getProperty("retina.directPrefill"));
    private static final boolean PROFILE = Boolean.getBoolean("retina.directProfile"); // see DirectDecode
    private DirectDecode direct;           // created at the first eligible decode step; null until then
    private boolean splitK = !"false".equals(System.getProperty("retina.splitK"));
    private boolean gemv = LlavaModel.GEMV_DEFAULT;
    private boolean cudaGraph = !"false".equals(System.getProperty("retina.cudaGraph"));
    private boolean cublasLt = !"false".equals(System.getProperty("retina.cublasLt"));
    private boolean directUnavailable;     // cuBLAS or rms_norm missing: stay on the DJL-op path
    private Cublas cublas;                 // loaded on first use by a direct path (decode, vision tower)
    private boolean cublasUnavailable;
    /** -Dretina.cublasWorkspaceMiB: a workspace of that size for the direct paths' cuBLAS handle (0: cuBLAS's own). */
    private static final long CUBLAS_WORKSPACE_MIB = Long.getLong("retina.cublasWorkspaceMiB", 0L);
    private NDArray cublasWorkspace;       // held for the handle's lifetime
    // Steps mixing decodes and prefill chunks: decodes through the paged kernel, only the chunks' contexts gathered
    private boolean mixedAttention = !"false".equals(System.getProperty("retina.mixedAttention"));

    LlamaModel(LlavaConfig.TextConfig config, boolean tieWordEmbeddings, WeightSource weights, NDManager manager,
               DataType dtype, boolean nativeKernels) {
        this.config = config;
        this.dtype = dtype;
        this.weightsManager = manager;
        this.noBiases = !config.attentionBias() && !config.mlpBias();
        // Native kernels only where HF itself runs in half precision on CUDA; CPU float32 stays on the DJL path the
        // parity tests pin to HF's float64 goldens.
        boolean eligible = manager.getDevice().isGpu() && dtype == DataType.FLOAT16;
        this.shim = eligible ? TorchShim.cuda().orElse(null) : null;
        this.kernels = eligible && CudaKernels.supportsHeadDim(config.headDim())
                ? CudaKernels.load(manager).orElse(null) : null;
        setNativeKernels(nativeKernels);
        long h = config.hiddenSize();
        long inter = config.intermediateSize();
        qDim = config.numAttentionHeads() * config.headDim();
        kvDim = config.numKeyValueHeads() * config.headDim();
        String pre = "language_model.";
        embedTokens = weights.get(pre + "embed_tokens.weight", config.vocabSize(), h);
        layers = new DecoderLayer[config.numHiddenLayers()];
        for (int i = 0; i < layers.length; i++) {
            String l = pre + "layers." + i + ".";
            layers[i] = new DecoderLayer(
                    weights.get(l + "input_layernorm.weight", h),
                    fused(weights, new String[] {l + "self_attn.q_proj", l + "self_attn.k_proj", l + "self_attn.v_proj"},
                            new long[] {qDim, kvDim, kvDim}, h, ".weight"),
                    config.attentionBias() ? fused(weights, new String[] {l + "self_attn.q_proj", l + "self_attn.k_proj",
                            l + "self_attn.v_proj"}, new long[] {qDim, kvDim, kvDim}, -1, ".bias") : null,
                    weights.get(l + "self_attn.o_proj.weight", h, qDim),
                    config.attentionBias() ? weights.get(l + "self_attn.o_proj.bias", h) : null,
                    weights.get(l + "post_attention_layernorm.weight", h),
                    fused(weights, new String[] {l + "mlp.gate_proj", l + "mlp.up_proj"}, new long[] {inter, inter}, h,
                            ".weight"),
                    config.mlpBias() ? fused(weights, new String[] {l + "mlp.gate_proj", l + "mlp.up_proj"},
                            new long[] {inter, inter}, -1, ".bias") : null,
                    weights.get(l + "mlp.down_proj.weight", h, inter),
                    config.mlpBias() ? weights.get(l + "mlp.down_proj.bias", h) : null);
        }
        norm = weights.get(pre + "norm.weight", h);
        boolean tied = tieWordEmbeddings || !weights.has("lm_head.weight");
        lmHead = tied ? embedTokens : weights.get("lm_head.weight", config.vocabSize(), h);
        rotaryEmb = new RotaryEmbedding(config, manager, dtype);
        rmsNormEps = manager.create((float) config.rmsNormEps());
        try (NDArray s = manager.create((float) Math.pow(config.headDim(), -0.5))) {
            attentionScale = Tensors.owned(s, dtype);
        }
    }

    /** Native kernels on (where this device, dtype and libtorch allow) or off. Engine thread only. */
    void setNativeKernels(boolean enabled) {
        nativeKernels = enabled;
        int headDim = config.headDim();
        flashAttention = enabled && shim != null && shim.hasFlashAttention() && headDim % 8 == 0 && headDim <= 256;
        fusedRmsNorm = enabled && shim != null && shim.hasFusedRmsNorm();
        pagedDecode = enabled && retinaKernels && kernels != null;
        fusedSiluMul = enabled && retinaKernels && kernels != null;
    }

    /** libtorch's C shim when native kernels are on (the vision tower's flash attention uses it too), else null. */
    TorchShim nativeShim() {
        return nativeKernels ? shim : null;
    }

    /**
     * Uploads that do not wait for the device's queued work ({@link DeviceUploads}) where Retina's CUDA kernels are
     * loaded (CUDA float16), else null (DJL's {@code create}); made on first use.
     */
    DeviceUploads uploads() {
        if (kernels == null || !ASYNC_UPLOADS) return null;
        if (uploads == null) uploads = new DeviceUploads(kernels);
        return uploads;
    }

    /** {@code -Dretina.asyncUploads=false}: DJL's create for every upload (to compare). */
    private static final boolean ASYNC_UPLOADS = !"false".equals(System.getProperty("retina.asyncUploads"));
    private DeviceUploads uploads;

    /** Retina's CUDA kernels when they are on (native and Retina kernels, CUDA float16), else null. */
    CudaKernels retinaKernels() {
        return pagedDecode ? kernels : null;
    }

    /**
     * cuBLAS for the direct paths (decode steps, the vision tower): one handle, loaded on first use with the CUDA
     * context current; null where Retina's kernels are off or no libcublas loads.
     */
    Cublas cublas() {
        if (cublas == null && !cublasUnavailable && kernels != null) {
            kernels.ensureContext();
            cublas = Cublas.load().orElse(null);
            cublasUnavailable = cublas == null;
            if (cublas != null && CUBLAS_WORKSPACE_MIB > 0) {
                long bytes = CUBLAS_WORKSPACE_MIB << 20;
                cublasWorkspace = weightsManager.create(new Shape(bytes), DataType.INT8);
                if (!cublas.setWorkspace(kernels.address(cublasWorkspace), bytes)) {
                    cublasWorkspace.close();
                    cublasWorkspace = null;
                }
            }
        }
        return cublas;
    }

    /** The direct decode path (cuBLAS + Retina's kernels, no DJL op per layer) on or off within the native path. */
    void setDirectDecode(boolean enabled) {
        directDecode = enabled;
    }

    /** Direct steps for prefills with no cached context ({@link DirectDecode#forwardFreshPrefill}) on or off. */
    void setDirectPrefill(boolean enabled) {
        directPrefill = enabled;
    }

    boolean directPrefill() {
        return directPrefill;
    }

    /** Retina's own CUDA kernels on or off within the native path (for comparisons). Engine thread only. */
    void setRetinaKernels(boolean enabled) {
        retinaKernels = enabled;
        setNativeKernels(nativeKernels);
    }

    /** Loads the named projections and concatenates them along the output dimension (one matmul instead of n). */
    private static NDArray fused(WeightSource weights, String[] names, long[] outSizes, long inSize, String suffix) {
        try (NDList parts = new NDList()) {
            for (int i = 0; i < names.length; i++) {
                parts.add(inSize < 0 ? weights.get(names[i] + suffix, outSizes[i])
                        : weights.get(names[i] + suffix, outSizes[i], inSize));
            }
            return NDArrays.concat(parts, 0);
        }
    }

    /** (T) int -> (T, hidden), in inputIds' manager. */
    NDArray embedTokens(NDArray inputIds) {
        NDArray ids = inputIds.getDataType() == DataType.INT64 ? inputIds : inputIds.toType(DataType.INT64, false);
        return ids.getNDArrayInternal().embedding(ids, embedTokens, SparseFormat.DENSE).singletonOrThrow();
    }

    /**
     * Runs every decoder layer over the batch, writing new K/V into the cache, and returns float32 logits at the
     * batch's logits indices.
     *
     * @param inputsEmbeds (T, hidden) model dtype, in the step manager (left open: the caller owns it)
     * @return (numSeqs, vocab) float32, in inputsEmbeds' manager
     */
    NDArray forward(NDArray inputsEmbeds, ForwardBatch batch, KvCache cache) {
        if (PROFILE && direct != null) direct.markForwardEntry(System.nanoTime());
        return forward(inputsEmbeds, prepare(batch, cache, inputsEmbeds.getManager()), cache);
    }

    /** A step's attention layout and metadata, uploaded ahead of its forward pass ({@link #prepare}). */
    record Prepared(ForwardBatch batch, AttentionMetadata.Layout layout, AttentionMetadata meta) {}

    /**
     * The step's attention layout and its metadata arrays, uploaded into {@code step} now (host-to-device copies that
     * wait for the device's queued work: a caller that prepares before queueing the step's image encode does not wait
     * for the encode), and the rotary tables grown to the step's positions.
     */
    Prepared prepare(ForwardBatch batch, KvCache cache, NDManager step) {
        AttentionMetadata.Layout layout;
        if (pagedDecode && AttentionMetadata.isPureDecode(batch)) layout = AttentionMetadata.Layout.PAGED;
        else if (flashAttention && AttentionMetadata.newTokensTrail(batch))
            layout = pagedDecode && mixedAttention ? AttentionMetadata.Layout.MIXED : AttentionMetadata.Layout.PACKED;
        else layout = AttentionMetadata.Layout.PADDED;
        AttentionMetadata meta = new AttentionMetadata(batch, cache.blockSize(), step, layout,
                layout == AttentionMetadata.Layout.PADDED ? null : uploads());
        if (layout == AttentionMetadata.Layout.PAGED || layout == AttentionMetadata.Layout.MIXED)
            rotaryEmb.ensureCapacity(meta.maxPosition); // the fused kernel reads the tables by position
        return new Prepared(batch, layout, meta);
    }

    /** {@link #forward(NDArray, ForwardBatch, KvCache)} with the step's metadata already {@link #prepare}d. */
    NDArray forward(NDArray inputsEmbeds, Prepared prepared, KvCache cache) {
        if (PROFILE && direct != null && !direct.forwardEntryMarked()) direct.markForwardEntry(System.nanoTime());
        NDManager step = inputsEmbeds.getManager();
        ForwardBatch batch = prepared.batch();
        AttentionMetadata.Layout layout = prepared.layout();
        AttentionMetadata meta = prepared.meta();
        NDArray[] cosSin = layout == AttentionMetadata.Layout.PAGED || layout == AttentionMetadata.Layout.MIXED ? null
                : rotaryEmb.cosSin(meta.positions, meta.maxPosition); // once per step, not per layer
        if (layout == AttentionMetadata.Layout.PAGED && useDirect(batch)) {
            return direct.forward(inputsEmbeds, meta, cache, rotaryEmb.cosTable(), rotaryEmb.sinTable());
        }
        if (layout == AttentionMetadata.Layout.MIXED && directPrefill && AttentionMetadata.freshPrefills(batch,
                meta.numDecode) && directReady() && direct.takesPrefills() && kernels.isContiguous(inputsEmbeds)) {
            return direct.forwardFreshPrefill(inputsEmbeds, meta, cache, rotaryEmb.cosTable(), rotaryEmb.sinTable());
        }
        NDArray hidden = inputsEmbeds;
        for (int i = 0; i < layers.length; i++) {
            // Each layer's temporaries die with its scope; only the residual stream survives to the next layer.
            try (NDManager scope = step.newSubManager()) {
                hidden.tempAttach(scope);
                NDArray out = switch (layout) {
                    case PAGED -> pagedDecoderLayer(layers[i], hidden, meta, cache.keyCache(i), cache.valueCache(i));
                    case MIXED -> mixedDecoderLayer(layers[i], hidden, meta, cache.keyCache(i), cache.valueCache(i));
                    default -> decoderLayer(layers[i], hidden, meta, cosSin, cache.keyCache(i), cache.valueCache(i));
                };
                out.attach(step);
                if (hidden != inputsEmbeds) hidden.attach(scope); // the previous layer's output: free it with the scope
                hidden = out;
            }
        }
        NDArray last = rows(meta.logitsIndices, hidden, step); // (numSeqs, hidden): only the rows we return
        NDArray logits = Linear.linear(rmsNorm(last, norm), lmHead, null).singletonOrThrow(); // (numSeqs, vocab)
        return logits.getDataType() == DataType.FLOAT32 ? logits : logits.toType(DataType.FLOAT32, false);
    }

    /**
     * A pure decode step from token ids through the direct path's CUDA graphs ({@link DirectDecode#forwardTokens}),
     * or null where it cannot go that way.
     *
     * @param deviceIds null, or the ids on the device (int64, one per sequence), read instead of inputIds
     */
    NDArray forwardTokens(int[] inputIds, NDArray deviceIds, ForwardBatch batch, KvCache cache, NDManager step) {
        if (!pagedDecode || !AttentionMetadata.isPureDecode(batch) || !useDirect(batch)) return null;
        if (embedTokens.getDataType() != DataType.FLOAT16 || !kernels.isContiguous(embedTokens)) return null;
        int maxPosition = 0;
        for (int p : batch.positions()) maxPosition = Math.max(maxPosition, p);
        rotaryEmb.ensureCapacity(maxPosition);
        if (deviceIds != null && (deviceIds.getDataType() != DataType.INT64 || deviceIds.size() != batch.numSeqs()
                || !kernels.isContiguous(deviceIds)))
            throw new IllegalArgumentException("device ids " + deviceIds + " for " + batch.numSeqs() + " sequences");
        return direct.forwardTokens(inputIds, deviceIds == null ? 0L : kernels.address(deviceIds), batch, cache,
                rotaryEmb.cosTable(), rotaryEmb.sinTable(), embedTokens, step);
    }

    /** Split-K decode attention on the direct path on or off (for comparisons). */
    void setSplitK(boolean enabled) {
        splitK = enabled;
        if (direct != null) direct.setSplitK(enabled);
    }

    /** The direct path's small-batch GEMV kernels on or off (for comparisons). */
    void setGemv(boolean enabled) {
        gemv = enabled;
        if (direct != null) direct.setGemv(enabled);
    }

    /** CUDA graphs of the direct decode step on or off (for comparisons). */
    void setCudaGraph(boolean enabled) {
        cudaGraph = enabled;
        if (direct != null) direct.setCudaGraph(enabled);
    }

    /** cuBLASLt's autotuned decode GEMMs on or off (for comparisons). */
    void setCublasLt(boolean enabled) {
        cublasLt = enabled;
        if (direct != null) direct.setCublasLt(enabled);
    }

    String cudaGraphStats() {
        return direct == null ? "direct decode path not used" : direct.graphStats();
    }

    /** The direct path's per-kind launch times (profiling runs), or a note that none ran. */
    String directProfile() {
        return direct == null ? "direct decode path not used" : direct.profile();
    }

    /** {@link DirectDecode#tunePrefill} where the direct path is loaded. */
    String tunePrefillGemms(int rows) {
        return direct == null ? "direct path not used" : direct.tunePrefill(rows);
    }

    /** Whether this pure-decode step goes the direct way (creating it on first use). */
    private boolean useDirect(ForwardBatch batch) {
        if (!directDecode) return false;
        int[] logits = batch.logitsIndices();
        for (int s = 0; s < logits.length; s++) if (logits[s] != s) return false; // one row per sequence, in order
        return directReady();
    }

    /** Whether the direct path can run on this model (creating it on first use). */
    private boolean directReady() {
        if (directUnavailable || !pagedDecode || !fusedSiluMul || !noBiases) return false;
        if (direct == null) {
            Cublas cublas = kernels.hasRmsNorm() ? cublas() : null;
            if (cublas == null) {
                directUnavailable = true;
                return false;
            }
            long[][] w = new long[layers.length][];
            for (int i = 0; i < layers.length; i++) {
                DecoderLayer l = layers[i];
                w[i] = new long[] {kernels.address(l.inputLayernormWeight()), kernels.address(l.qkvProjWeight()),
                        kernels.address(l.oProjWeight()), kernels.address(l.postAttentionLayernormWeight()),
                        kernels.address(l.gateUpProjWeight()), kernels.address(l.downProjWeight())};
            }
            direct = new DirectDecode(config, dtype, kernels, cublas, shim, weightsManager, w, norm, lmHead);
            direct.setSplitK(splitK);
            direct.setGemv(gemv);
            direct.setCudaGraph(cudaGraph);
            direct.setCublasLt(cublasLt);
        }
        return true;
    }

    private NDArray decoderLayer(DecoderLayer w, NDArray hidden, AttentionMetadata meta, NDArray[] cosSin,
                                 NDArray keyCache, NDArray valueCache) {
        long numTokens = hidden.getShape().get(0);
        int heads = config.numAttentionHeads();
        int kvHeads = config.numKeyValueHeads();
        int d = config.headDim();
        NDArray qkv = Linear.linear(rmsNorm(hidden, w.inputLayernormWeight()), w.qkvProjWeight(), w.qkvProjBias())
                .singletonOrThrow(); // (T, qDim + 2 * kvDim)
        NDList split = qkv.split(new long[] {qDim + kvDim}, 1); // q and k side by side, v
        // q and k heads rotate in one pass: (T, heads + kvHeads, d)
        NDArray qk = rotaryEmb.rotate(split.get(0).reshape(numTokens, heads + kvHeads, d), cosSin[0], cosSin[1]);
        NDList qkSplit = qk.split(new long[] {heads}, 1);
        NDArray q = qkSplit.get(0);                               // (T, heads, d)
        NDArray k = qkSplit.get(1).reshape(numTokens, kvDim);     // (T, kvDim)
        NDArray v = split.get(1);                                 // (T, kvDim)
        keyCache.set(new NDIndex("{}", meta.slotMapping), k);
        valueCache.set(new NDIndex("{}", meta.slotMapping), v);
        NDArray attn = meta.packedContextSlots != null
                ? flashAttention(q, keyCache, valueCache, meta)
                : attention(q, keyCache, valueCache, meta);       // (T, qDim)
        NDArray h = hidden.add(Linear.linear(attn, w.oProjWeight(), w.oProjBias()).singletonOrThrow());
        return mlp(w, h);
    }

    /**
     * A decode step's layer on CUDA float16 with Retina's kernels: rotary on q and k plus the K/V cache write in one
     * launch (q rotated in place in the qkv projection's output), then attention straight over the paged cache
     * through the block tables (no K/V gather). About 13 host ops instead of ~30.
     */
    private NDArray pagedDecoderLayer(DecoderLayer w, NDArray hidden, AttentionMetadata meta, NDArray keyCache,
                                      NDArray valueCache) {
        long numTokens = hidden.getShape().get(0);
        int heads = config.numAttentionHeads();
        int kvHeads = config.numKeyValueHeads();
        int d = config.headDim();
        NDArray qkv = Linear.linear(rmsNorm(hidden, w.inputLayernormWeight()), w.qkvProjWeight(), w.qkvProjBias())
                .singletonOrThrow(); // (T, qDim + 2 * kvDim)
        kernels.ropeKvWrite(qkv, meta.positions, meta.slotMapping, rotaryEmb.cosTable(), rotaryEmb.sinTable(),
                keyCache, valueCache, heads, kvHeads, d);
        NDArray attn = hidden.getManager().create(new Shape(numTokens, qDim), dtype); // (T, qDim), written below
        kernels.pagedAttentionDecode(attn, qkv, keyCache, valueCache, meta.blockTables, meta.contextLens,
                meta.blockSize, heads, kvHeads, d, (float) Math.pow(d, -0.5));
        NDArray h = hidden.add(Linear.linear(attn, w.oProjWeight(), w.oProjBias()).singletonOrThrow());
        return mlp(w, h);
    }

    /**
     * A step with prefill chunks, after any decodes (CUDA float16, Retina's kernels): rotary + K/V cache write for
     * every token in one launch, then the leading decode rows attend straight over the paged cache while the prefill
     * rows run varlen flash attention over their own contexts only. Before, every decode's whole context was gathered
     * too (at 256 sequences of ~650 tokens, ~1.4 GB of K and as much of V per layer, copied then read again), and
     * rotary and the cache writes took about ten DJL ops per layer.
     */
    private NDArray mixedDecoderLayer(DecoderLayer w, NDArray hidden, AttentionMetadata meta, NDArray keyCache,
                                      NDArray valueCache) {
        long numTokens = hidden.getShape().get(0);
        int numDecode = meta.numDecode;
        int heads = config.numAttentionHeads();
        int kvHeads = config.numKeyValueHeads();
        int d = config.headDim();
        long qkvDim = qDim + 2L * kvDim;
        NDManager scope = hidden.getManager();
        NDArray qkv = Linear.linear(rmsNorm(hidden, w.inputLayernormWeight()), w.qkvProjWeight(), w.qkvProjBias())
                .singletonOrThrow(); // (T, qDim + 2 * kvDim)
        kernels.ropeKvWrite(qkv, meta.positions, meta.slotMapping, rotaryEmb.cosTable(), rotaryEmb.sinTable(),
                keyCache, valueCache, heads, kvHeads, d);
        NDArray q = qkv.get(new NDIndex(numDecode + ":, 0:" + qDim)).reshape(numTokens - numDecode, heads, d);
        NDArray attn = flashAttention(q, keyCache, valueCache, meta); // (T - numDecode, qDim)
        if (numDecode > 0) {
            NDArray decodeOut = scope.create(new Shape(numDecode, qDim), dtype); // rows 0..numDecode-1
            kernels.pagedAttentionDecode(kernels.address(decodeOut), qDim, kernels.address(qkv), qkvDim,
                    kernels.address(keyCache), kernels.address(valueCache), kernels.address(meta.blockTables),
                    kernels.address(meta.contextLens), numDecode, (int) meta.blockTables.getShape().get(1),
                    meta.blockSize, heads, kvHeads, d, (float) Math.pow(d, -0.5));
            attn = NDArrays.concat(new NDList(decodeOut, attn), 0); // (T, qDim)
        }
        NDArray h = hidden.add(Linear.linear(attn, w.oProjWeight(), w.oProjBias()).singletonOrThrow());
        return mlp(w, h);
    }

    /** Mixed decode/prefill attention ({@link #mixedDecoderLayer}) on or off (for comparisons). */
    void setMixedAttention(boolean enabled) {
        mixedAttention = enabled;
    }

    /** h + down(silu(gate(norm(h))) * up(norm(h))). */
    private NDArray mlp(DecoderLayer w, NDArray h) {
        NDArray gateUp = Linear.linear(rmsNorm(h, w.postAttentionLayernormWeight()), w.gateUpProjWeight(),
                w.gateUpProjBias()).singletonOrThrow(); // (T, 2 * intermediate)
        NDArray act;
        if (fusedSiluMul) {
            int inter = (int) config.intermediateSize();
            act = h.getManager().create(new Shape(gateUp.getShape().get(0), inter), dtype); // (T, intermediate)
            kernels.siluMul(act, gateUp, inter);
        } else {
            NDList gu = gateUp.split(2, 1);
            NDArray gate = gu.get(0);
            act = gate.mul(Activation.sigmoid(gate)).mul(gu.get(1)); // silu(gate) * up
        }
        return h.add(Linear.linear(act, w.downProjWeight(), w.downProjBias()).singletonOrThrow());
    }

    /**
     * Varlen flash attention over each sequence's context gathered packed (no padding, no mask): sequences' K/V
     * rows end to end, cumulative lengths telling the kernel where each starts. Grouped-query attention is native to
     * the kernel. Only for batches whose new tokens trail their contexts (see {@link TorchShim#flashAttentionVarlen}).
     */
    private NDArray flashAttention(NDArray q, NDArray keyCache, NDArray valueCache, AttentionMetadata meta) {
        long numTokens = q.getShape().get(0);
        long kvHeads = config.numKeyValueHeads();
        long d = config.headDim();
        NDManager scope = q.getManager();
        long totalK = meta.packedContextSlots.getShape().get(0);
        NDArray keys = rows(meta.packedContextSlots, keyCache, scope).reshape(totalK, kvHeads, d);
        NDArray values = rows(meta.packedContextSlots, valueCache, scope).reshape(totalK, kvHeads, d);
        // Decode rows (one query each) see their whole context: no causal mask needed, whatever its alignment.
        boolean causal = meta.packedMaxQueryLen > 1;
        NDArray out = shim.flashAttentionVarlen(q, keys, values, meta.cuSeqQ, meta.cuSeqK, meta.packedMaxQueryLen,
                meta.packedMaxSeqLen, causal, Math.pow(d, -0.5)); // (T, heads, d)
        return out.reshape(numTokens, qDim);
    }

    /**
     * Each sequence's queries over its whole context, read from the cache. Grouped-query attention without copying
     * K/V: query heads are grouped under their KV head (head h uses KV head h / numRep, as HF's repeat_kv).
     */
    private NDArray attention(NDArray q, NDArray keyCache, NDArray valueCache, AttentionMetadata meta) {
        long numTokens = q.getShape().get(0);
        long s = meta.numSeqs;
        long maxQ = meta.maxQueryLen;
        long maxS = meta.maxSeqLen;
        long kvHeads = config.numKeyValueHeads();
        long rep = config.numAttentionHeads() / kvHeads;
        long d = config.headDim();
        NDArray qFlat = q.reshape(numTokens, qDim);
        NDManager scope = q.getManager();
        NDArray qPadded = meta.noQueryPadding((int) numTokens) ? qFlat : rows(meta.queryPadIndex, qFlat, scope);
        NDArray query = qPadded.reshape(s, maxQ, kvHeads, rep, d).transpose(0, 2, 3, 1, 4)
                .reshape(s, kvHeads, rep * maxQ, d);                                   // (S, kv, rep*maxQ, d)
        NDArray keys = rows(meta.contextSlots, keyCache, scope).reshape(s, maxS, kvHeads, d)
                .transpose(0, 2, 3, 1);                                                 // (S, kv, d, maxS)
        NDArray values = rows(meta.contextSlots, valueCache, scope).reshape(s, maxS, kvHeads, d)
                .transpose(0, 2, 1, 3);                                                 // (S, kv, maxS, d)
        NDArray scores = query.matMul(keys).mul(attentionScale).reshape(s, kvHeads, rep, maxQ, maxS);
        if (scores.getDataType() != DataType.FLOAT32) scores = scores.toType(DataType.FLOAT32, false);
        NDArray probs = scores.add(meta.mask).softmax(-1).reshape(s, kvHeads, rep * maxQ, maxS);
        if (probs.getDataType() != dtype) probs = probs.toType(dtype, false);
        NDArray out = probs.matMul(values)                                              // (S, kv, rep*maxQ, d)
                .reshape(s, kvHeads, rep, maxQ, d).transpose(0, 3, 1, 2, 4).reshape(s * maxQ, qDim);
        return meta.noQueryPadding((int) numTokens) ? out : rows(meta.queryUnpadIndex, out, scope);
    }

    /**
     * HF LlamaRMSNorm: in float32, x * rsqrt(mean(x^2) + eps), back to the input dtype, times the weight. On CUDA in
     * float16 one fused kernel does it (float32 inside too; the weight multiply before the final rounding).
     */
    private NDArray rmsNorm(NDArray x, NDArray weight) {
        if (fusedRmsNorm) return shim.fusedRmsNorm(x, weight, config.hiddenSize(), config.rmsNormEps());
        NDArray x32 = x.getDataType() == DataType.FLOAT32 ? x : x.toType(DataType.FLOAT32, false);
        NDArray variance = x32.square().mean(new int[] {-1}, true);
        NDArray normed = x32.div(variance.add(rmsNormEps).sqrt());
        if (normed.getDataType() != dtype) normed = normed.toType(dtype, false);
        return normed.mul(weight);
    }

    /** Rows of a 2-D table at int64 indices (one gather), attached to {@code target}. */
    static NDArray rows(NDArray indices, NDArray table, NDManager target) {
        NDArray out = indices.getNDArrayInternal().embedding(indices, table, SparseFormat.DENSE).singletonOrThrow();
        if (out.getManager() != target) out.attach(target);
        return out;
    }

    @Override
    public void close() {
        rotaryEmb.close();
    }
}

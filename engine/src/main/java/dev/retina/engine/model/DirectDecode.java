package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;

/**
 * A pure decode step of the Llama layers with no DJL op per layer (and, {@link #forwardFreshPrefill}, a step whose
 * prefills have no cached context, with flash attention for their rows): every layer is nine launches on raw device
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
    private final TorchShim shim;         // flash attention for prefills; null: decode steps only
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
    /**
     * -Dretina.directProfile=true: a CUDA event after every launch; each launch's GPU time (event to event, no
     * synchronization inside the step) is added to its kind, and the first-to-last span to the step's GPU time.
     */
    private static final boolean PROFILE = Boolean.getBoolean("retina.directProfile");
    private static final String[] KINDS = {"rms_norm", "qkv gemm", "rope+kv write", "paged attention", "o gemm",
            "gate_up gemm", "silu_mul", "down gemm", "final norm + lm_head", "flash attention"};
    private final double[] profileMs = new double[KINDS.length];
    private int profileSteps;
    private int[] eventKinds = new int[0];
    private int eventCount;
    private double profileHostMs;
    private long hostStart;
    private long forwardEntry;            // host time LlamaModel.forward began (profiling runs), 0: not marked
    private double preLaunchMs;           // summed: forward's entry to the first launch (metadata, views)
    /** Retina's GEMV kernels instead of cuBLAS for decode steps of few sequences (SwiGLU in gate_up's epilogue). */
    private boolean gemv = LlavaModel.GEMV_DEFAULT;
    /**
     * Most sequences a step may have to take the GEMV kernels (-Dretina.gemvMaxRows, 1, 2 or 4): one by default. At
     * two and four the H200 measured them slower than cuBLAS (5.4 and 7.3 ms per step against 4.8 and 4.9).
     */
    private static final int GEMV_MAX_ROWS = Integer.getInteger("retina.gemvMaxRows", 1);
    /** -Dretina.directResidual=hf: residual adds rounded as HF rounds them (see {@link #residualGemm}). */
    private static final boolean HF_RESIDUAL = "hf".equals(System.getProperty("retina.directResidual"));
    private static final int MAX_PARTIALS = 4096;   // (seq, head, partition) states the split-K buffers hold
    private static final int MIN_PARTITION = 64;    // one pass of the kernel's 8 warps x 8 tokens in flight
    private boolean splitK = !"false".equals(System.getProperty("retina.splitK"));
    private NDArray partM;
    private NDArray partL;
    private NDArray partAcc;
    private KvCache cacheOf;              // the cache whose per-layer addresses are below
    /** Bumped whenever a buffer or cache address a captured graph may hold changes (graphs are then recaptured). */
    private int generation;
    /** Pure decode steps replayed as CUDA graphs ({@link DecodeGraphs}; -Dretina.cudaGraph=false: eager launches). */
    private boolean graphsOn = !"false".equals(System.getProperty("retina.cudaGraph"));
    private boolean graphsFailed;         // a capture failed once: eager launches from then on
    private DecodeGraphs graphs;          // created at the first graph step
    /** Decode GEMMs through cuBLASLt, autotuned per shape, up to this many rows (-Dretina.cublasLtMaxRows). */
    private static final int LT_MAX_ROWS = Integer.getInteger("retina.cublasLtMaxRows", 8);
    private static final long LT_WORKSPACE_BYTES = 32L << 20;
    private boolean ltOn = !"false".equals(System.getProperty("retina.cublasLt"));
    private boolean ltUnavailable;
    private CublasLt lt;                  // loaded at the first decode step it may tune for
    private NDArray ltWorkspace;
    private NDArray ltScratch;            // (LT_MAX_ROWS, widest n) model dtype: tuning's output
    private long[] keyPtr;
    private long[] valuePtr;

    DirectDecode(LlavaConfig.TextConfig config, DataType dtype, CudaKernels kernels, Cublas cublas, TorchShim shim,
                 NDManager manager, long[][] layerWeights, NDArray norm, NDArray lmHead) {
        this.config = config;
        this.shim = shim;
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
        boolean graph = graphsOn && !PROFILE && DecodeGraphs.fits(rows) && !graphsFailed;
        int m = graph ? DecodeGraphs.bucket(rows) : rows; // the GEMMs' rows: a graph's run over the padded bucket
        boolean small = takesGemv(m);
        ensureCapacity(m);
        ensureCache(cache);
        kernels.ensureContext();
        if (!small) tune(m);
        long h = kernels.address(inputsEmbeds);
        long positions = kernels.address(meta.positions);
        long slots = kernels.address(meta.slotMapping);
        long blockTables = kernels.address(meta.blockTables);
        long contextLens = kernels.address(meta.contextLens);
        int maxBlocks = (int) meta.blockTables.getShape().get(1);
        long cosPtr = kernels.address(cos);
        long sinPtr = kernels.address(sin);
        if (graph) return graphs().step(inputsEmbeds, meta, cache, rows, cosPtr, sinPtr);
        int[] split = split(meta.maxSeqLen, rows);
        int parts = split[0];
        int partitionSize = split[1];
        if (PROFILE) start();
        layers(cublas, h, rows, positions, slots, blockTables, contextLens, maxBlocks, meta.blockSize, cosPtr, sinPtr,
                parts, partitionSize);
        NDArray result = logits(h, rows, inputsEmbeds.getManager());
        if (PROFILE) {
            lap(8);
            finish();
        }
        return result;
    }

    /**
     * A pure decode step from token ids through a CUDA graph ({@link DecodeGraphs#stepTokens}: one host-to-device
     * copy of the step's inputs, the embedding lookup inside the graph), or null where graphs do not take it (off,
     * failed, profiling, too many rows, or a PTX without embed_rows).
     *
     * @param deviceIds  0, or the device address of the rows' int64 ids (read instead of inputIds)
     * @param embedTable (vocab, hidden) fp16 contiguous
     * @return (rows, vocab) float32 logits in {@code step}, or null
     */
    NDArray forwardTokens(int[] inputIds, long deviceIds, ForwardBatch batch, KvCache cache, NDArray cos, NDArray sin,
                          NDArray embedTable, NDManager step) {
        int rows = batch.numSeqs();
        if (!graphsOn || graphsFailed || PROFILE || !DecodeGraphs.fits(rows) || !kernels.hasEmbedRows()) return null;
        if (inputIds.length != rows) throw new IllegalArgumentException(inputIds.length + " ids for " + rows + " rows");
        int m = DecodeGraphs.bucket(rows);
        ensureCapacity(m);
        ensureCache(cache);
        kernels.ensureContext();
        if (!takesGemv(m)) tune(m);
        return graphs().stepTokens(inputIds, deviceIds, batch, cache, kernels.address(cos), kernels.address(sin),
                kernels.address(embedTable), step);
    }

    /** Whether a step of {@code rows} sequences takes the small-batch GEMV kernels (on, and they fit). */
    private boolean takesGemv(int rows) {
        return gemv && !HF_RESIDUAL && rows <= GEMV_MAX_ROWS && kernels.hasGemv() && CudaKernels.gemvFits(rows, hidden)
                && CudaKernels.gemvFits(rows, qDim) && CudaKernels.gemvFits(rows, inter);
    }

    /**
     * Split-K for a decode step of {@code rows} sequences, the longest {@code maxSeqLen} tokens: {parts, partition
     * size}, {1, 0} for one pass. Split when (heads x sequences) blocks would leave SMs idle: partitions of at least
     * MIN_PARTITION tokens, enough for about two blocks per SM. Allocates the partial-state buffers on first use.
     */
    int[] split(int maxSeqLen, int rows) {
        int heads = config.numAttentionHeads();
        int blocks = heads * rows;
        int target = 2 * kernels.multiprocessors();
        if (!splitK || blocks >= target || !kernels.hasSplitAttention(config.headDim())) return new int[] {1, 0};
        int byContext = (maxSeqLen + MIN_PARTITION - 1) / MIN_PARTITION;
        int byOccupancy = (target + blocks - 1) / blocks;
        int parts = Math.min(Math.min(byContext, byOccupancy), MAX_PARTIALS / blocks);
        if (parts <= 1) return new int[] {1, 0};
        int partitionSize = ((maxSeqLen + parts - 1) / parts + MIN_PARTITION - 1) / MIN_PARTITION * MIN_PARTITION;
        parts = (maxSeqLen + partitionSize - 1) / partitionSize;
        if (parts <= 1) return new int[] {1, 0};
        ensurePartials();
        return new int[] {parts, partitionSize};
    }

    /**
     * Every layer of a decode step over {@code rows} rows of the residual stream at h (updated in place), its GEMMs
     * on {@code blas}'s stream and the kernels on {@link CudaKernels}' current stream: the eager step and the one a
     * CUDA graph captures ({@link DecodeGraphs}) make the same launches.
     */
    void layers(Cublas blas, long h, int rows, long positions, long slots, long blockTables, long contextLens,
                int maxBlocks, int blockSize, long cosPtr, long sinPtr, int parts, int partitionSize) {
        int heads = config.numAttentionHeads();
        int kvHeads = config.numKeyValueHeads();
        int d = config.headDim();
        long partMPtr = parts > 1 ? kernels.address(partM) : 0L;
        long partLPtr = parts > 1 ? kernels.address(partL) : 0L;
        long partAccPtr = parts > 1 ? kernels.address(partAcc) : 0L;
        boolean small = takesGemv(rows);
        // Retina's kernels after the step's first launch start programmatically (cuBLAS's GEMMs launch as usual)
        try {
            for (int i = 0; i < layerWeights.length; i++) {
                long[] w = layerWeights[i];
                kernels.rmsNorm(normedPtr, h, w[0], rows, hidden, eps);
                kernels.setProgrammatic(!PROFILE);
                if (PROFILE) lap(0);
                if (small) kernels.gemv(false, qkvPtr, normedPtr, w[1], rows, qkvDim, hidden, false);
                else gemm(blas, qkvPtr, normedPtr, w[1], rows, qkvDim, hidden, false);
                if (PROFILE) lap(1);
                kernels.ropeKvWrite(qkvPtr, positions, slots, cosPtr, sinPtr, keyPtr[i], valuePtr[i], rows, heads,
                        kvHeads, d);
                if (PROFILE) lap(2);
                if (parts > 1)
                    kernels.pagedAttentionDecodeSplit(attnPtr, qDim, qkvPtr, qkvDim, keyPtr[i], valuePtr[i],
                            blockTables, contextLens, rows, maxBlocks, blockSize, heads, kvHeads, d, scale,
                            partitionSize, parts, partMPtr, partLPtr, partAccPtr);
                else
                    kernels.pagedAttentionDecode(attnPtr, qDim, qkvPtr, qkvDim, keyPtr[i], valuePtr[i], blockTables,
                            contextLens, rows, maxBlocks, blockSize, heads, kvHeads, d, scale);
                if (PROFILE) lap(3);
                if (small) kernels.gemv(false, h, attnPtr, w[2], rows, hidden, qDim, true);
                else residualGemm(blas, h, attnPtr, w[2], rows, qDim, normedPtr);
                if (PROFILE) lap(4);
                mlp(blas, w, h, rows, small);
            }
        } finally {
            kernels.setProgrammatic(false);
        }
    }

    /**
     * The final RMSNorm of {@code rows} rows at h into {@code last} and lm_head into fp16 {@code logits} (rows, vocab):
     * the end of a captured step, on the current streams (the eager step's {@link #logits} uses DJL's linear).
     */
    void head(Cublas blas, long h, int rows, long last, long logits) {
        int vocab = (int) lmHead.getShape().get(0);
        kernels.setProgrammatic(true);
        try {
            kernels.rmsNorm(last, h, kernels.address(norm), rows, hidden, eps);
            if (takesGemv(rows)) {
                kernels.gemv(false, logits, last, kernels.address(lmHead), rows, vocab, hidden, false);
                return;
            }
        } finally {
            kernels.setProgrammatic(false);
        }
        gemm(blas, logits, last, kernels.address(lmHead), rows, vocab, hidden, false);
    }

    /**
     * One GEMM of the step: cuBLASLt's tuned algorithm for this shape where it beat cublasGemmEx ({@link CublasLt}),
     * else {@code blas}'s cublasGemmEx; on the stream the kernels go to (a capture's, or the legacy one).
     */
    private void gemm(Cublas blas, long y, long x, long w, int m, int n, int k, boolean accumulate) {
        if (lt != null && ltOn && lt.linear(kernels.stream(), y, x, w, m, n, k, accumulate)) return;
        blas.linear(y, x, w, m, n, k, accumulate);
    }

    /**
     * {@code h (rows, hidden) += x (rows, k) @ w^T}: with the default, the add is cuBLAS's {@code beta = 1} (the fp32
     * sum rounded to fp16 once); with {@code -Dretina.directResidual=hf}, as HF rounds it: the projection rounded to
     * fp16 into {@code tmp} (rows, hidden; free at this point), then an fp16 add (a second rounding).
     */
    private void residualGemm(Cublas blas, long h, long x, long w, int rows, int k, long tmp) {
        if (!HF_RESIDUAL) {
            gemm(blas, h, x, w, rows, hidden, k, true);
            return;
        }
        gemm(blas, tmp, x, w, rows, hidden, k, false);
        kernels.addLayerNorm(h, h, tmp, 0L, 0L, 0L, 0L, 0L, 0, 0L, 0L, 0, rows, hidden, 0f);
    }

    /**
     * Tunes the step's five GEMM shapes at {@code m} rows (qkv, o, gate_up, down over every layer's weights; lm_head)
     * the first time a decode step has that many rows, up to {@link #LT_MAX_ROWS}; beyond, cublasGemmEx is kept. Runs
     * on the legacy stream before the step's launches (never inside a capture).
     */
    private void tune(int m) {
        if (!ltOn || m > LT_MAX_ROWS || ltUnavailable) return;
        int vocab = (int) lmHead.getShape().get(0);
        if (lt != null && lt.tuned(m, vocab, hidden, false)) return;
        if (!ensureLt()) return;
        long y = kernels.address(ltScratch);
        tuneLayers(m, y);
        lt.tune(cublas, kernels, m, vocab, hidden, false, new long[] {kernels.address(lmHead)}, normedPtr, y);
    }

    /** cuBLASLt loaded with its workspace and tuning scratch; false where it cannot load. */
    private boolean ensureLt() {
        if (lt != null) return true;
        if (ltUnavailable) return false;
        int vocab = (int) lmHead.getShape().get(0);
        ltWorkspace = manager.create(new Shape(LT_WORKSPACE_BYTES), DataType.INT8);
        lt = CublasLt.load(kernels.address(ltWorkspace), LT_WORKSPACE_BYTES).orElse(null);
        if (lt == null) {
            ltUnavailable = true;
            ltWorkspace.close();
            return false;
        }
        ltScratch = manager.create(new Shape(LT_MAX_ROWS, Math.max(vocab, Math.max(qkvDim, 2 * inter))), dtype);
        return true;
    }

    /** Tunes a layer's four GEMM shapes at m rows over every layer's weights, y scratch of m x the widest n. */
    private String tuneLayers(int m, long y) {
        int n = layerWeights.length;
        long[] qkvW = new long[n];
        long[] oW = new long[n];
        long[] gateUpW = new long[n];
        long[] downW = new long[n];
        for (int i = 0; i < n; i++) {
            qkvW[i] = layerWeights[i][1];
            oW[i] = layerWeights[i][2];
            gateUpW[i] = layerWeights[i][4];
            downW[i] = layerWeights[i][5];
        }
        return String.join("\n", lt.tune(cublas, kernels, m, qkvDim, hidden, false, qkvW, normedPtr, y),
                lt.tune(cublas, kernels, m, hidden, qDim, true, oW, attnPtr, y),
                lt.tune(cublas, kernels, m, 2 * inter, hidden, false, gateUpW, normedPtr, y),
                lt.tune(cublas, kernels, m, hidden, inter, true, downW, actPtr, y));
    }

    /**
     * Measurement only (DecodeBench {@code --tune-prefill}): tunes the direct prefill's four GEMM shapes at exactly
     * {@code m} rows, as the decode GEMMs are tuned, so later prefills of m tokens take the faster algorithm. The
     * engine does not call it. Returns the tuning's summary, one line per shape.
     */
    String tunePrefill(int m) {
        kernels.ensureContext();
        ensureCapacity(m);
        if (!ltOn || !ensureLt()) return "cuBLASLt unavailable or off";
        try (NDArray y = manager.create(new Shape(m, Math.max(hidden, Math.max(qkvDim, 2 * inter))), dtype)) {
            return tuneLayers(m, kernels.address(y));
        }
    }

    /** cuBLASLt's tuned GEMMs on or off (for comparisons; on by default, -Dretina.cublasLt=false off). */
    void setCublasLt(boolean enabled) {
        ltOn = enabled;
    }

    /**
     * A layer's MLP on {@code rows} rows of the residual stream at h: RMSNorm, gate_up, SiLU·up, down + residual; with
     * {@code gemvs}, gate_up and SiLU·up are one GEMV kernel and down another.
     */
    private void mlp(Cublas blas, long[] w, long h, int rows, boolean gemvs) {
        kernels.rmsNorm(normedPtr, h, w[3], rows, hidden, eps);
        if (PROFILE) lap(0);
        if (gemvs) {
            kernels.gemv(true, actPtr, normedPtr, w[4], rows, 2 * inter, hidden, false);
            if (PROFILE) lap(5);
            kernels.gemv(false, h, actPtr, w[5], rows, hidden, inter, true);
        } else {
            gemm(blas, gateUpPtr, normedPtr, w[4], rows, 2 * inter, hidden, false);
            if (PROFILE) lap(5);
            kernels.siluMul(actPtr, gateUpPtr, rows, inter);
            if (PROFILE) lap(6);
            residualGemm(blas, h, actPtr, w[5], rows, inter, normedPtr);
        }
        if (PROFILE) lap(7);
    }

    /** The final RMSNorm and lm_head over {@code rows} contiguous rows at device address x: (rows, vocab) float32. */
    private NDArray logits(long x, int rows, NDManager step) {
        NDArray last = step.create(new Shape(rows, hidden), dtype);
        kernels.rmsNorm(kernels.address(last), x, kernels.address(norm), rows, hidden, eps);
        NDArray logits = Linear.linear(last, lmHead, null).singletonOrThrow(); // (rows, vocab)
        return logits.getDataType() == DataType.FLOAT32 ? logits : logits.toType(DataType.FLOAT32, false);
    }

    /** Whether {@link #forwardFreshPrefill} can run (libtorch's flash attention is there). */
    boolean takesPrefills() {
        return shim != null && shim.hasFlashAttention();
    }

    /**
     * A step whose prefill sequences have no cached context (each starts at position 0), after any decodes
     * ({@link AttentionMetadata.Layout#MIXED}): the decode step's launches per layer, except that rotary also writes
     * the rotated k back into the qkv rows, the prefill rows attend through libtorch's varlen flash attention (causal)
     * straight over those rows (no gather from the cache), the decode rows through the paged kernel, and the o
     * projection runs as two GEMMs with the residual add (decode rows from the paged kernel's output, prefill rows
     * from flash attention's). The DJL-op mixed layer measured ~450 µs of host time per layer on the H200, which
     * left a 606-token prefill host-bound.
     *
     * @param inputsEmbeds (T, hidden) model dtype, contiguous: the residual stream, overwritten
     * @return (numSeqs, vocab) float32 logits at the batch's logits indices, in inputsEmbeds' manager
     */
    NDArray forwardFreshPrefill(NDArray inputsEmbeds, AttentionMetadata meta, KvCache cache, NDArray cos, NDArray sin) {
        int rows = (int) inputsEmbeds.getShape().get(0);
        int numDecode = meta.numDecode;
        int numPrefill = rows - numDecode;
        ensureCapacity(rows);
        ensureCache(cache);
        kernels.ensureContext();
        NDManager step = inputsEmbeds.getManager();
        long h = kernels.address(inputsEmbeds);
        long hPrefill = h + 2L * numDecode * hidden; // fp16 rows after the decodes
        long positions = kernels.address(meta.positions);
        long slots = kernels.address(meta.slotMapping);
        long cosPtr = kernels.address(cos);
        long sinPtr = kernels.address(sin);
        long blockTables = numDecode > 0 ? kernels.address(meta.blockTables) : 0L;
        long contextLens = numDecode > 0 ? kernels.address(meta.contextLens) : 0L;
        int maxBlocks = numDecode > 0 ? (int) meta.blockTables.getShape().get(1) : 0;
        int heads = config.numAttentionHeads();
        int kvHeads = config.numKeyValueHeads();
        int d = config.headDim();
        boolean causal = meta.packedMaxQueryLen > 1;
        double flashScale = Math.pow(d, -0.5);
        try (NDManager views = step.newSubManager()) {
            // q, k and v of the prefill rows as (numPrefill, heads, d) views of the qkv buffer, for the flash call.
            NDArray prefillRows = qkv.get(new NDIndex(numDecode + ":" + rows));
            prefillRows.attach(views);
            NDArray split = prefillRows.reshape(numPrefill, heads + 2L * kvHeads, d);
            split.attach(views);
            NDArray q = split.get(new NDIndex(":, 0:" + heads));
            NDArray k = split.get(new NDIndex(":, " + heads + ":" + (heads + kvHeads)));
            NDArray v = split.get(new NDIndex(":, " + (heads + kvHeads) + ":"));
            for (NDArray a : new NDArray[] {q, k, v}) a.attach(views);
            if (PROFILE) start();
            for (int i = 0; i < layerWeights.length; i++) {
                long[] w = layerWeights[i];
                kernels.rmsNorm(normedPtr, h, w[0], rows, hidden, eps);
                if (PROFILE) lap(0);
                gemm(cublas, qkvPtr, normedPtr, w[1], rows, qkvDim, hidden, false); // tuned where m was (tunePrefill)
                if (PROFILE) lap(1);
                kernels.ropeKvWrite(qkvPtr, positions, slots, cosPtr, sinPtr, keyPtr[i], valuePtr[i], rows, heads,
                        kvHeads, d, true);
                if (PROFILE) lap(2);
                if (numDecode > 0) {
                    kernels.pagedAttentionDecode(attnPtr, qDim, qkvPtr, qkvDim, keyPtr[i], valuePtr[i], blockTables,
                            contextLens, numDecode, maxBlocks, meta.blockSize, heads, kvHeads, d, scale);
                    if (PROFILE) lap(3);
                    residualGemm(cublas, h, attnPtr, w[2], numDecode, qDim, normedPtr);
                    if (PROFILE) lap(4);
                }
                try (NDArray out = shim.flashAttentionVarlen(q, k, v, meta.cuSeqQ, meta.cuSeqK, meta.packedMaxQueryLen,
                        meta.packedMaxSeqLen, causal, flashScale)) {
                    if (PROFILE) lap(9);
                    if (i == 0 && !kernels.isContiguous(out))
                        throw new IllegalStateException("flash attention returned a non-contiguous output");
                    residualGemm(cublas, hPrefill, kernels.address(out), w[2], numPrefill, qDim,
                            normedPtr + 2L * numDecode * hidden);
                    if (PROFILE) lap(4);
                } // freed into torch's caching allocator; the GEMM reading it is ahead in the same stream
                mlp(cublas, w, h, rows, false);
            }
        }
        NDArray last = LlamaModel.rows(meta.logitsIndices, inputsEmbeds, step); // (numSeqs, hidden), contiguous
        NDArray result = logits(kernels.address(last), meta.numSeqs, step);
        if (PROFILE) {
            lap(8);
            finish();
        }
        return result;
    }

    /** Marks when the model's forward call began (profiling runs): the host time before the first launch. */
    void markForwardEntry(long nanos) {
        forwardEntry = nanos;
    }

    boolean forwardEntryMarked() {
        return forwardEntry != 0;
    }

    private void start() {
        hostStart = System.nanoTime();
        if (forwardEntry != 0) preLaunchMs += (hostStart - forwardEntry) / 1e6;
        forwardEntry = 0;
        eventCount = 0;
        kernels.recordEvent(eventCount++);
    }

    private void lap(int kind) {
        if (eventCount >= eventKinds.length) eventKinds = java.util.Arrays.copyOf(eventKinds, 2 * eventCount + 16);
        eventKinds[eventCount] = kind;
        kernels.recordEvent(eventCount++);
    }

    /** Host time of the step so far (all launches queued), then each launch's GPU time from the events. */
    private void finish() {
        profileHostMs += (System.nanoTime() - hostStart) / 1e6;
        for (int e = 1; e < eventCount; e++) profileMs[eventKinds[e]] += kernels.elapsedMs(e - 1, e);
        profileSteps++;
    }

    /** Mean ms per step of each launch kind since the last call (with -Dretina.directProfile=true), then resets. */
    String profile() {
        if (profileSteps == 0) return "no profiled steps (run with -Dretina.directProfile=true)";
        StringBuilder sb = new StringBuilder();
        double total = 0;
        for (double v : profileMs) total += v;
        for (int k = 0; k < KINDS.length; k++)
            sb.append(String.format(java.util.Locale.ROOT, "  %-22s %8.3f ms/step%n", KINDS[k], profileMs[k] / profileSteps));
        sb.append(String.format(java.util.Locale.ROOT, "  %-22s %8.3f ms/step of GPU time, first launch to last "
                + "(CUDA events, %d steps)%n", "total", total / profileSteps, profileSteps));
        sb.append(String.format(java.util.Locale.ROOT, "  %-22s %8.3f ms/step to queue every launch (with the events)",
                "host", profileHostMs / profileSteps));
        sb.append(String.format(java.util.Locale.ROOT, "%n  %-22s %8.3f ms/step from the forward call to the first "
                + "launch (metadata uploads, views)", "host before", preLaunchMs / profileSteps));
        java.util.Arrays.fill(profileMs, 0);
        profileSteps = 0;
        profileHostMs = 0;
        preLaunchMs = 0;
        return sb.toString();
    }

    /** The GEMV kernels on or off (for comparisons; on by default, {@code -Dretina.gemv=false} off). */
    void setGemv(boolean enabled) {
        gemv = enabled;
    }

    /** Split-K attention on or off (for comparisons; on by default, {@code -Dretina.splitK=false} turns it off). */
    void setSplitK(boolean enabled) {
        splitK = enabled;
    }

    /** CUDA graphs of the decode step on or off (for comparisons; on by default, -Dretina.cudaGraph=false off). */
    void setCudaGraph(boolean enabled) {
        graphsOn = enabled;
    }

    /** The graphs' counts, or a note that no step used them. */
    String graphStats() {
        return graphs == null ? "no decode step replayed as a CUDA graph" : graphs.stats();
    }

    private DecodeGraphs graphs() {
        if (graphs == null) graphs = new DecodeGraphs(this, config, kernels, manager, (int) lmHead.getShape().get(0));
        return graphs;
    }

    /** A capture failed: the step it was for ran eagerly; later steps stay eager. */
    void graphsFailed() {
        graphsFailed = true;
    }

    /** Changes whenever an address a captured step holds may have changed (intermediates, partials, the cache). */
    int generation() {
        return generation;
    }

    /** Makes the intermediates hold {@code rows} rows and the cache addresses current (before a graph step). */
    void prepare(int rows, KvCache cache) {
        ensureCapacity(rows);
        ensureCache(cache);
    }

    private void ensurePartials() {
        if (partM != null) return;
        generation++;
        partM = manager.create(new Shape(MAX_PARTIALS), DataType.FLOAT32);
        partL = manager.create(new Shape(MAX_PARTIALS), DataType.FLOAT32);
        partAcc = manager.create(new Shape(MAX_PARTIALS, config.headDim()), DataType.FLOAT32);
    }

    private void ensureCapacity(int rows) {
        if (rows <= capacity) return;
        generation++;
        // powers of two for decode batches; prefill steps (up to the token budget) in steps of 512 rows
        int cap = rows <= 1024 ? Math.max(16, Integer.highestOneBit(rows - 1) << 1) : (rows + 511) / 512 * 512;
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
        generation++;
        keyPtr = new long[layerWeights.length];
        valuePtr = new long[layerWeights.length];
        for (int i = 0; i < layerWeights.length; i++) {
            keyPtr[i] = kernels.address(cache.keyCache(i));
            valuePtr[i] = kernels.address(cache.valueCache(i));
        }
        cacheOf = cache;
    }
}

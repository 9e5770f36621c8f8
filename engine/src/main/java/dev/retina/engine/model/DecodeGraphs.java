package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The direct decode step ({@link DirectDecode#layers}, then the final norm and lm_head) replayed as a CUDA graph: one
 * graph per (batch bucket, split-K shape), captured on Retina's own stream ({@link CudaGraphs}) with its own cuBLAS
 * handle, so a step costs a handful of driver calls on the host instead of ~290 launches. The step's inputs are
 * copied into persistent device buffers at fixed addresses (the residual rows, positions, slots, context lengths,
 * block tables; with {@link #stepTokens} the token ids, the embedding lookup then being the graph's first launch), padded
 * to the bucket: padding rows get slot -1 (the rotary kernel skips them) and context length 0
 * (attention writes zeros), and their outputs are never read. A key's first step runs eagerly on the stream (cuBLAS
 * and module loading warm up outside a capture), then is captured for the next; a failed capture turns graphs off.
 *
 * <p>Engine thread only, like {@link DirectDecode}.
 */
final class DecodeGraphs {
    private static final Logger log = LoggerFactory.getLogger(DecodeGraphs.class);
    /** The largest batch a graph is captured for (-Dretina.cudaGraphMaxBatch); larger steps launch eagerly. */
    static final int MAX_BATCH = Integer.getInteger("retina.cudaGraphMaxBatch", 256);
    private static final int MAX_GRAPHS = 128;          // least recently used graphs beyond this are destroyed
    static final long WORKSPACE_BYTES = 32L << 20; // the captured cuBLAS handle's own (NVIDIA's Hopper size)

    private final DirectDecode decode;
    private final CudaKernels kernels;
    private final NDManager manager;
    private final int vocab;
    private final int hidden;
    private final int maxRows;
    private CudaGraphs cuda;
    private Cublas blas;
    private NDArray workspace;
    private NDArray residual;     // (maxRows, hidden) model dtype: the step's residual stream
    // The step's inputs, one device block written by one copy per step (token path) at fixed offsets:
    //   ids (maxRows) int64 | positions (maxRows) int64 | slots (maxRows) int64, -1 in padding rows |
    //   contextLens (maxRows) int32, 0 in padding rows | blockTables (maxRows, stride) int32
    private NDArray inputs;       // int8, the block above
    private MemorySegment staging; // page-locked host copy of the block, filled by the token path
    private NDArray last;         // (maxRows, hidden) model dtype: final-normed rows
    private NDArray logits;       // (maxRows, vocab) model dtype: lm_head output
    private int stride;           // block-table row length the graphs were captured with
    private long signature;       // the addresses outside this class the graphs hold, hashed; 0: none yet
    private final Map<Key, CudaGraphs.Graph> graphs = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Key, CudaGraphs.Graph> eldest) {
            if (size() <= MAX_GRAPHS) return false;
            eldest.getValue().close();
            return true;
        }
    };
    private int captures;
    private long replays;
    /**
     * -Dretina.graphTiming=true: each replay's GPU time (CUDA events on the graph's stream around the launch, read
     * without waiting), to tell the graph's own time from the host's gaps around it inside the engine.
     */
    private static final boolean TIMING = Boolean.getBoolean("retina.graphTiming");
    private GpuSpans timing;
    private long timedNanos;

    /** What a graph's launches depend on besides its buffers: rows, the split-K grid, token ids or embeddings in. */
    private record Key(int bucket, int parts, int partitionSize, boolean embed) {}

    DecodeGraphs(DirectDecode decode, LlavaConfig.TextConfig config, CudaKernels kernels, NDManager manager, int vocab) {
        this.decode = decode;
        this.kernels = kernels;
        this.manager = manager;
        this.vocab = vocab;
        this.hidden = config.hiddenSize();
        this.maxRows = bucket(MAX_BATCH);
    }

    /** Whether a step of {@code rows} sequences is replayed from a graph. */
    static boolean fits(int rows) {
        return rows >= 1 && rows <= MAX_BATCH;
    }

    /** The batch a step of {@code rows} sequences is padded to: 1, 2, 4, then multiples of 8 (as vLLM's). */
    static int bucket(int rows) {
        if (rows <= 2) return Math.max(1, rows);
        if (rows <= 4) return 4;
        return (rows + 7) / 8 * 8;
    }

    /**
     * One pure decode step of {@code rows} sequences through a graph, from their embeddings (as DJL computed them).
     *
     * @param inputsEmbeds (rows, hidden) model dtype, contiguous (read, not overwritten)
     * @return (rows, vocab) float32 logits in inputsEmbeds' manager
     */
    NDArray step(NDArray inputsEmbeds, AttentionMetadata meta, KvCache cache, int rows, long cos, long sin) {
        int maxBlocks = (int) meta.blockTables.getShape().get(1);
        int[] split = prepare(rows, meta.maxSeqLen, maxBlocks, cache, cos, sin);
        long base = kernels.address(inputs);
        cuda.waitForLegacy();
        cuda.copy(kernels.address(residual), kernels.address(inputsEmbeds), 2L * rows * hidden);
        cuda.copy(base + posOffset(), kernels.address(meta.positions), 8L * rows);
        cuda.copy(base + slotOffset(), kernels.address(meta.slotMapping), 8L * rows);
        cuda.copy(base + ctxOffset(), kernels.address(meta.contextLens), 4L * rows);
        cuda.copy2d(base + tableOffset(), 4L * stride, kernels.address(meta.blockTables), 4L * maxBlocks,
                4L * maxBlocks, rows);
        int bucket = bucket(rows);
        if (bucket > rows) {
            cuda.fill32(base + slotOffset() + 8L * rows, -1, 2L * (bucket - rows)); // int64 -1: both words all ones
            cuda.fill32(base + ctxOffset() + 4L * rows, 0, bucket - rows);
        }
        return run(new Key(bucket, split[0], split[1], false), rows, cache.blockSize(), cos, sin, 0L,
                inputsEmbeds.getManager());
    }

    /**
     * One pure decode step from token ids: the ids, positions, slots, context lengths and block tables are written
     * into page-locked memory, padded to the bucket, and copied to the device in one copy; the embedding lookup is
     * the graph's first launch. No DJL op runs before the graph.
     *
     * @param inputIds   (rows) token ids, one per sequence
     * @param deviceIds  0, or the device address of (rows) int64 ids to take instead of inputIds: copied over the
     *                   staged ones on the graph's stream, after the legacy stream's work queued so far (which
     *                   computes them)
     * @param embedTable (vocab, hidden) model dtype, contiguous: the embedding weights
     * @return (rows, vocab) float32 logits in {@code step}
     */
    NDArray stepTokens(int[] inputIds, long deviceIds, ForwardBatch batch, KvCache cache, long cos, long sin,
                       long embedTable, NDManager step) {
        int rows = batch.numSeqs();
        int maxSeqLen = 0;
        int maxBlocks = 1;
        for (int s = 0; s < rows; s++) {
            maxSeqLen = Math.max(maxSeqLen, batch.seqLens()[s]);
            maxBlocks = Math.max(maxBlocks, batch.blockTables()[s].length);
        }
        int[] split = prepare(rows, maxSeqLen, maxBlocks, cache, cos, sin);
        int bucket = bucket(rows);
        cuda.awaitStaging();
        for (int r = 0; r < bucket; r++) {
            boolean real = r < rows;
            staging.set(ValueLayout.JAVA_LONG, 8L * r, real ? inputIds[r] : 0);
            staging.set(ValueLayout.JAVA_LONG, posOffset() + 8L * r, real ? batch.positions()[r] : 0);
            staging.set(ValueLayout.JAVA_LONG, slotOffset() + 8L * r, real ? batch.slotMapping()[r] : -1);
            staging.set(ValueLayout.JAVA_INT, ctxOffset() + 4L * r, real ? batch.seqLens()[r] : 0);
        }
        for (int r = 0; r < rows; r++) {
            int[] table = batch.blockTables()[r];
            MemorySegment.copy(table, 0, staging, ValueLayout.JAVA_INT, tableOffset() + 4L * stride * r, table.length);
        }
        // The copy goes first: only this stream's graphs read the block, so it need not wait for the legacy stream and
        // runs while the previous step's sampling does there.
        cuda.copyFromStaging(kernels.address(inputs), staging, tableOffset() + 4L * stride * rows);
        cuda.waitForLegacy(); // prefill steps on the legacy stream wrote the cache this step reads; the sampled ids
        if (deviceIds != 0) cuda.copy(kernels.address(inputs), deviceIds, 8L * rows);
        return run(new Key(bucket, split[0], split[1], true), rows, cache.blockSize(), cos, sin, embedTable, step);
    }

    /** Buffers, the intermediates' capacity, the cache and the split for this step; clears stale graphs. */
    private int[] prepare(int rows, int maxSeqLen, int maxBlocks, KvCache cache, long cos, long sin) {
        int bucket = bucket(rows);
        kernels.ensureContext();
        decode.prepare(bucket, cache);
        int[] split = decode.split(maxSeqLen, bucket);
        ensureBuffers(maxBlocks);
        long sig = 31L * (31L * decode.generation() + cos) + sin;
        if (sig != signature) {
            clear();
            signature = sig;
        }
        return split;
    }

    /** Replays the key's graph (or runs the step eagerly on the stream and captures it), then hands back the logits. */
    private NDArray run(Key key, int rows, int blockSize, long cos, long sin, long embedTable, NDManager step) {
        CudaGraphs.Graph graph = graphs.get(key);
        if (graph != null) {
            if (TIMING) {
                if (timing == null) timing = new GpuSpans(kernels);
                timedNanos += timing.settledNanos();
                timing.begin(cuda.stream());
            }
            graph.launch();
            if (TIMING) timing.end(cuda.stream());
            replays++;
        } else {
            kernels.setStream(cuda.stream());
            try {
                launches(key, blockSize, cos, sin, embedTable);
                capture(key, blockSize, cos, sin, embedTable);
            } finally {
                kernels.setStream(null);
            }
        }
        cuda.legacyWaits();
        NDArray rowsView = logits.get(new NDIndex("0:" + rows));
        rowsView.attach(step);
        return rowsView.toType(DataType.FLOAT32, false);
    }

    private long posOffset() {
        return 8L * maxRows;
    }

    private long slotOffset() {
        return 16L * maxRows;
    }

    private long ctxOffset() {
        return 24L * maxRows;
    }

    private long tableOffset() {
        return 28L * maxRows;
    }

    /** Graphs captured and replayed so far, for logs and benchmarks. */
    String stats() {
        String s = captures + " graphs captured, " + replays + " steps replayed, " + graphs.size() + " held";
        if (timing == null) return s;
        timedNanos += timing.awaitNanos();
        return s + String.format(java.util.Locale.ROOT, "; replays' GPU time %.3f ms mean (CUDA events)",
                timedNanos / 1e6 / Math.max(1, replays));
    }

    private void launches(Key key, int blockSize, long cos, long sin, long embedTable) {
        long h = kernels.address(residual);
        long base = kernels.address(inputs);
        if (key.embed()) kernels.embedRows(h, embedTable, base, key.bucket(), hidden);
        decode.layers(blas, h, key.bucket(), base + posOffset(), base + slotOffset(), base + tableOffset(),
                base + ctxOffset(), stride, blockSize, cos, sin, key.parts(), key.partitionSize());
        decode.head(blas, h, key.bucket(), kernels.address(last), kernels.address(logits));
    }

    private void capture(Key key, int blockSize, long cos, long sin, long embedTable) {
        RuntimeException failure = null;
        cuda.beginCapture();
        try {
            launches(key, blockSize, cos, sin, embedTable);
        } catch (RuntimeException e) {
            failure = e;
        }
        CudaGraphs.Graph graph = null;
        try {
            graph = cuda.endCapture(); // ends the capture even after a failed launch
        } catch (RuntimeException e) {
            if (failure == null) failure = e;
        }
        if (failure != null) {
            if (graph != null) graph.close();
            log.warn("CUDA graph capture of a decode step failed ({}); decode steps launch eagerly from now on",
                    failure.toString());
            decode.graphsFailed();
            return;
        }
        graphs.put(key, graph);
        captures++;
        if (captures == 1) log.info("decode steps replay as CUDA graphs (batch buckets up to {})", maxRows);
    }

    private void ensureBuffers(int maxBlocks) {
        if (cuda == null) {
            cuda = new CudaGraphs();
            workspace = manager.create(new Shape(WORKSPACE_BYTES), DataType.INT8);
            blas = Cublas.onStream(cuda.stream(), kernels.address(workspace), WORKSPACE_BYTES);
            DataType dtype = DataType.FLOAT16;
            residual = manager.create(new Shape(maxRows, hidden), dtype);
            last = manager.create(new Shape(maxRows, hidden), dtype);
            logits = manager.create(new Shape(maxRows, vocab), dtype);
        }
        if (maxBlocks > stride) {
            if (inputs != null) {
                inputs.close();
                cuda.freeHost(staging);
            }
            stride = Math.max(maxBlocks, Math.max(256, 2 * stride));
            long bytes = tableOffset() + 4L * maxRows * stride;
            inputs = manager.zeros(new Shape(bytes), DataType.INT8);
            staging = cuda.allocHost(bytes);
            clear();
        }
    }

    private void clear() {
        for (CudaGraphs.Graph g : graphs.values()) g.close();
        graphs.clear();
    }
}

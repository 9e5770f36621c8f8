package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The direct decode step ({@link DirectDecode#layers}, then the final norm and lm_head) replayed as a CUDA graph: one
 * graph per (batch bucket, split-K shape), captured on Retina's own stream ({@link CudaGraphs}) with its own cuBLAS
 * handle, so a step costs a handful of driver calls on the host instead of ~290 launches. The step's inputs are
 * copied into persistent device buffers at fixed addresses (the residual rows, positions, slots, context lengths,
 * block tables), padded to the bucket: padding rows get slot -1 (the rotary kernel skips them) and context length 0
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
    private static final long WORKSPACE_BYTES = 32L << 20; // the captured cuBLAS handle's own (NVIDIA's Hopper size)

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
    private NDArray positions;    // (maxRows) int64
    private NDArray slots;        // (maxRows) int64, -1 in padding rows
    private NDArray contextLens;  // (maxRows) int32, 0 in padding rows
    private NDArray blockTables;  // (maxRows, stride) int32
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

    /** What a graph's launches depend on besides its buffers: rows and the split-K grid. */
    private record Key(int bucket, int parts, int partitionSize) {}

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
     * One pure decode step of {@code rows} sequences through a graph.
     *
     * @param inputsEmbeds (rows, hidden) model dtype, contiguous (read, not overwritten)
     * @return (rows, vocab) float32 logits in inputsEmbeds' manager
     */
    NDArray step(NDArray inputsEmbeds, AttentionMetadata meta, KvCache cache, int rows, long cos, long sin) {
        int bucket = bucket(rows);
        int maxBlocks = (int) meta.blockTables.getShape().get(1);
        kernels.ensureContext();
        decode.prepare(bucket, cache);
        int[] split = decode.split(meta.maxSeqLen, bucket);
        ensureBuffers(maxBlocks);
        long sig = 31L * (31L * decode.generation() + cos) + sin;
        if (sig != signature) {
            clear();
            signature = sig;
        }
        long h = kernels.address(residual);
        long pos = kernels.address(positions);
        long slot = kernels.address(slots);
        long ctx = kernels.address(contextLens);
        long tables = kernels.address(blockTables);
        cuda.waitForLegacy();
        cuda.copy(h, kernels.address(inputsEmbeds), 2L * rows * hidden);
        cuda.copy(pos, kernels.address(meta.positions), 8L * rows);
        cuda.copy(slot, kernels.address(meta.slotMapping), 8L * rows);
        cuda.copy(ctx, kernels.address(meta.contextLens), 4L * rows);
        cuda.copy2d(tables, 4L * stride, kernels.address(meta.blockTables), 4L * maxBlocks, 4L * maxBlocks, rows);
        if (bucket > rows) {
            cuda.fill32(slot + 8L * rows, -1, 2L * (bucket - rows)); // int64 -1: both words all ones
            cuda.fill32(ctx + 4L * rows, 0, bucket - rows);
        }
        Key key = new Key(bucket, split[0], split[1]);
        CudaGraphs.Graph graph = graphs.get(key);
        if (graph != null) {
            graph.launch();
            replays++;
        } else {
            kernels.setStream(cuda.stream());
            try {
                launches(h, bucket, pos, slot, ctx, tables, meta.blockSize, cos, sin, split);
                capture(key, h, bucket, pos, slot, ctx, tables, meta.blockSize, cos, sin, split);
            } finally {
                kernels.setStream(null);
            }
        }
        cuda.legacyWaits();
        NDManager step = inputsEmbeds.getManager();
        NDArray rowsView = logits.get(new NDIndex("0:" + rows));
        rowsView.attach(step);
        return rowsView.toType(DataType.FLOAT32, false);
    }

    /** Graphs captured and replayed so far, for logs and benchmarks. */
    String stats() {
        return captures + " graphs captured, " + replays + " steps replayed, " + graphs.size() + " held";
    }

    private void launches(long h, int bucket, long pos, long slot, long ctx, long tables, int blockSize, long cos,
                          long sin, int[] split) {
        decode.layers(blas, h, bucket, pos, slot, tables, ctx, stride, blockSize, cos, sin, split[0], split[1]);
        decode.head(blas, h, bucket, kernels.address(last), kernels.address(logits));
    }

    private void capture(Key key, long h, int bucket, long pos, long slot, long ctx, long tables, int blockSize,
                         long cos, long sin, int[] split) {
        RuntimeException failure = null;
        cuda.beginCapture();
        try {
            launches(h, bucket, pos, slot, ctx, tables, blockSize, cos, sin, split);
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
            blas = Cublas.load().orElseThrow(() -> new IllegalStateException("no libcublas for the graph handle"));
            blas.setStream(cuda.stream()); // before the workspace: a stream change drops it
            workspace = manager.create(new Shape(WORKSPACE_BYTES), DataType.INT8);
            if (!blas.setWorkspace(kernels.address(workspace), WORKSPACE_BYTES))
                throw new IllegalStateException("cublasSetWorkspace failed for the graph handle");
            DataType dtype = DataType.FLOAT16;
            residual = manager.create(new Shape(maxRows, hidden), dtype);
            positions = manager.zeros(new Shape(maxRows), DataType.INT64);
            slots = manager.create(new Shape(maxRows), DataType.INT64);
            contextLens = manager.zeros(new Shape(maxRows), DataType.INT32);
            last = manager.create(new Shape(maxRows, hidden), dtype);
            logits = manager.create(new Shape(maxRows, vocab), dtype);
        }
        if (maxBlocks > stride) {
            if (blockTables != null) blockTables.close();
            stride = Math.max(maxBlocks, Math.max(256, 2 * stride));
            blockTables = manager.zeros(new Shape(maxRows, stride), DataType.INT32);
            clear();
        }
    }

    private void clear() {
        for (CudaGraphs.Graph g : graphs.values()) g.close();
        graphs.clear();
    }
}

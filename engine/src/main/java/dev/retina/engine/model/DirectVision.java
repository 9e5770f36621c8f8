package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

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
 * manager and grow with the images per call (the engine's profile run allocates the largest).
 *
 * <p>Calls of up to {@link #GRAPH_MAX_IMAGES} images replay as CUDA graphs, one per (images, requested states): the
 * layers' ~185 launches cost about 3 ms of host time per call, more than the GPU's work for one image, so a single
 * image's encode was host-bound. The embeddings are copied into a persistent buffer, the layers run on Retina's own
 * stream (its own cuBLAS handle; libtorch's current stream set to it around the flash calls) and write the requested
 * states into persistent buffers, which the legacy stream copies out. A key's first call runs eagerly on that stream
 * and is then captured. The capture owns every block libtorch allocated in it (the flash outputs stay alive with the
 * graph), so no later allocation can reuse memory the graph writes. A failed capture turns graphs off. Engine thread
 * only.
 */
final class DirectVision {
    private static final Logger log = LoggerFactory.getLogger(DirectVision.class);
    /** The most images (tiles) per call that replay as a graph (-Dretina.visionGraphMaxImages; 0: none). */
    static final int GRAPH_MAX_IMAGES = Integer.getInteger("retina.visionGraphMaxImages", 2);
    private static final int MAX_GRAPHS = 16;
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
    private NDArray input;               // (capacity, hidden): the embeddings, copied in for graph replays
    /** The patch embedding, class and position embeddings and pre_layrnorm, for graphs that start from pixels. */
    private Embeddings embeddings;
    private NDArray pixels;              // (GRAPH_MAX_IMAGES, C, side, side) fp32 bytes: a pixel graph's input
    /** Graphs start from the pixels (-Dretina.visionGraphPixels=false: from DJL's embeddings, to compare). */
    private boolean pixelGraphs = true;
    private CudaGraphs cuda;             // the graphs' stream; null until the first graphed call
    private Cublas streamBlas;           // a cuBLAS handle on that stream
    private NDArray workspace;
    private boolean graphsOff = GRAPH_MAX_IMAGES <= 0; // also after a failed capture
    private boolean graphsEnabled = true;
    private int captures;
    private final Map<Key, Graph> graphs = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Key, Graph> eldest) {
            if (size() <= MAX_GRAPHS) return false;
            eldest.getValue().close();
            return true;
        }
    };

    /**
     * What a graph's launches depend on besides the buffers: the images, their length, the states asked for, and
     * where it starts: 0 the embeddings, 1 fp16 pixels, 2 fp32 pixels.
     */
    private record Key(int images, int seqLen, String indices, int from) {}

    /**
     * CLIP's embeddings for graphs that start from pixels, as device addresses in the model manager: the patch
     * convolution's weight as (hidden, kPad) GEMM rows, zero-padded from C * patch * patch to a multiple of 8; the
     * class embedding (hidden); the position embedding (grid * grid + 1, hidden); pre_layrnorm's weight and bias.
     */
    record Embeddings(long patchWeight, int kPad, long classEmbedding, long positionEmbedding, long preNormWeight,
                      long preNormBias, int channels, int patch, int grid) {}

    /** A captured call: the graph, its sequence starts, the states it writes, and what libtorch allocated in it. */
    private record Graph(CudaGraphs.Graph graph, NDArray cuSeq, NDArray[] states, NDManager owned)
            implements AutoCloseable {
        @Override
        public void close() {
            if (graph != null) graph.close();
            owned.close(); // cuSeq, states and the capture's flash outputs
        }
    }

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
        if (graphed((int) b)) return replay(embeddings, (int) b, s, indices);
        NDManager step = embeddings.getManager();
        NDArray[] out = new NDArray[indices.length];
        for (int j = 0; j < indices.length; j++) {
            if (indices[j] == 0) out[j] = embeddings;
            else if (indices[j] <= layerWeights.length) out[j] = step.create(shape, DataType.FLOAT16);
        }
        launches(cublas, kernels.address(embeddings), cuSeq, rows, s, indices, out, null);
        return out;
    }

    /** Gives graphs what they need to start from pixels (the embeddings and pre_layrnorm inside the graph). */
    void setEmbeddings(Embeddings embeddings) {
        this.embeddings = embeddings;
    }

    /**
     * Whether a call of {@code images} images replays as a graph that starts from the pixels
     * ({@link #hiddenStatesFromPixels}): graphs on, the embeddings given, and no request for state 0 (the embeddings
     * themselves, which that graph does not copy out).
     */
    boolean takesPixels(int images, int[] indices) {
        if (!pixelGraphs || embeddings == null || !kernels.hasPatchRows() || !graphed(images)) return false;
        for (int i : indices) if (i == 0) return false;
        return true;
    }

    /** Pixel graphs on or off (on by default; off only to compare). */
    void setPixelGraphs(boolean enabled) {
        pixelGraphs = enabled;
    }

    /**
     * {@link #hiddenStates} from the pixels: the patch embedding (patch rows, one GEMM per image), the class and
     * position embeddings and pre_layrnorm run inside the graph too, so the host's DJL ops before the tower (about
     * 0.5 ms for one image, with the GPU idle) are one copy into the graph's pixel buffer.
     *
     * @param pixelValues (B, C, side, side) float32 or float16, contiguous, on the GPU; B as {@link #takesPixels}
     * @return (B, grid * grid + 1, hidden) float16 arrays in pixelValues' manager
     */
    NDArray[] hiddenStatesFromPixels(NDArray pixelValues, int[] indices) {
        Embeddings e = embeddings;
        int b = (int) pixelValues.getShape().get(0);
        int s = e.grid() * e.grid() + 1;
        boolean f32 = pixelValues.getDataType() == DataType.FLOAT32;
        if (!f32 && pixelValues.getDataType() != DataType.FLOAT16)
            throw new IllegalArgumentException("pixels must be float32 or float16, not " + pixelValues.getDataType());
        long side = (long) e.grid() * e.patch();
        if (pixelValues.getShape().size() != (long) b * e.channels() * side * side || !kernels.isContiguous(pixelValues))
            throw new IllegalArgumentException("pixels " + pixelValues.getShape() + " are not " + b + " contiguous "
                    + e.channels() + "x" + side + "x" + side + " images");
        ensureCapacity(Math.max(b * s, (int) Math.ceil((double) b * (s - 1) * e.kPad() / inter)));
        kernels.ensureContext();
        if (pixels == null)
            pixels = manager.create(new Shape((long) GRAPH_MAX_IMAGES * e.channels() * side * side), DataType.FLOAT32);
        ensureStream();
        cuda.waitForLegacy(); // DJL uploaded the pixels on the legacy stream
        cuda.copy(kernels.address(pixels), kernels.address(pixelValues),
                pixelValues.getShape().size() * (f32 ? 4L : 2L));
        return launchGraph(new Key(b, s, Arrays.toString(indices), f32 ? 2 : 1), indices, pixelValues.getManager());
    }

    /**
     * The patch embedding, class and position embeddings and pre_layrnorm of the key's images from the pixel buffer
     * into the input buffer (the residual stream's start): patch rows into fc1 (free until the first MLP), one GEMM
     * per image into its rows 1.. of resid, the class embedding copied into its row 0, then per image the position
     * embedding's add (rounded to fp16, as torch's add) and pre_layrnorm (fp32 inside) into the input buffer.
     */
    private void embedLaunches(Cublas blas, Key key) {
        Embeddings e = embeddings;
        int cells = e.grid() * e.grid();
        int s = key.seqLen();
        long patches = kernels.address(fc1);
        long residPtr = kernels.address(resid);
        long inputPtr = kernels.address(input);
        kernels.patchRows(patches, kernels.address(pixels), key.from() == 2, e.channels(), e.patch(), e.grid(),
                e.kPad(), (long) key.images() * cells);
        for (int i = 0; i < key.images(); i++) {
            long image = residPtr + 2L * i * s * hidden;
            blas.linear(image + 2L * hidden, patches + 2L * i * cells * e.kPad(), e.patchWeight(), cells, hidden,
                    e.kPad(), false);
            kernels.addLayerNorm(image, e.classEmbedding(), 0L, 0L, 0L, 0L, 0L, 0L, 0, 0L, 0L, 0, 1, hidden, eps);
            kernels.addLayerNorm(image, image, e.positionEmbedding(), inputPtr + 2L * i * s * hidden,
                    e.preNormWeight(), e.preNormBias(), 0L, 0L, 0, 0L, 0L, 0, s, hidden, eps);
        }
    }

    /** Whether a call of {@code images} images replays as a graph (then it needs no sequence starts of its own). */
    boolean graphed(int images) {
        return graphsEnabled && !graphsOff && images <= GRAPH_MAX_IMAGES && shim.hasStreamGuard();
    }

    /** Graphs on or off (on by default up to {@link #GRAPH_MAX_IMAGES} images; off only to compare). */
    void setGraphsEnabled(boolean enabled) {
        graphsEnabled = enabled;
    }

    /**
     * The layers' launches from {@code x}: on {@code blas}'s stream (and the kernels' current one); each requested
     * state i > 0 is written into {@code out[j]}. With {@code keep}, the flash calls' outputs live on in it (a capture).
     */
    private void launches(Cublas blas, long x, NDArray cuSeq, int rows, int s, int[] indices, NDArray[] out,
                          NDManager keep) {
        long residPtr = kernels.address(resid);
        long normedPtr = kernels.address(normed);
        long qkvPtr = kernels.address(qkv);
        long attnOutPtr = kernels.address(attnOut);
        long fc1Ptr = kernels.address(fc1);
        long fc2Ptr = kernels.address(fc2);
        int qkvDim = 3 * hidden;
        double scale = Math.pow(headDim, -0.5);
        try (NDManager views = manager.newSubManager()) {
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
                blas.linear(qkvPtr, normedPtr, w[2], rows, qkvDim, hidden, true);
                NDArray attn = shim.flashAttentionVarlen(q, k, v, cuSeq, cuSeq, s, s, false, scale, keep);
                if (i == 0 && !kernels.isContiguous(attn))
                    throw new IllegalStateException("flash attention returned a non-contiguous output");
                blas.linear(attnOutPtr, kernels.address(attn), w[4], rows, hidden, hidden, true);
                // Freed into libtorch's caching allocator (the GEMM reading it is ahead in the same stream), or kept
                // alive with a captured graph that writes it.
                if (keep != null) attn.attach(keep);
                else attn.close();
                kernels.addLayerNorm(residPtr, residPtr, attnOutPtr, normedPtr, w[6], w[7], fc1Ptr, w[9], inter, 0L,
                        0L, 0, rows, hidden, eps);
                blas.linear(fc1Ptr, normedPtr, w[8], rows, inter, hidden, true);
                kernels.actFill(fc1Ptr, (long) rows * inter, activation, fc2Ptr, w[11], hidden, (long) rows * hidden);
                blas.linear(fc2Ptr, fc1Ptr, w[10], rows, hidden, inter, true);
                for (int j = 0; j < indices.length; j++) {
                    if (indices[j] != i + 1) continue;
                    kernels.addLayerNorm(kernels.address(out[j]), residPtr, fc2Ptr, 0L, 0L, 0L, 0L, 0L, 0, 0L, 0L, 0,
                            rows, hidden, eps);
                }
            }
        }
    }

    /** A graphed call: the embeddings into the input buffer, the key's graph (captured on its first call), copies out. */
    private NDArray[] replay(NDArray embeddings, int b, int s, int[] indices) {
        int rows = b * s;
        ensureStream();
        cuda.waitForLegacy(); // DJL computed the embeddings on the legacy stream
        cuda.copy(kernels.address(input), kernels.address(embeddings), 2L * rows * hidden);
        NDArray[] out = launchGraph(new Key(b, s, Arrays.toString(indices), 0), indices, embeddings.getManager());
        for (int j = 0; j < indices.length; j++) if (indices[j] == 0) out[j] = embeddings;
        return out;
    }

    private void ensureStream() {
        if (cuda != null) return;
        cuda = new CudaGraphs();
        workspace = manager.create(new Shape(DecodeGraphs.WORKSPACE_BYTES), DataType.INT8);
        streamBlas = Cublas.onStream(cuda.stream(), kernels.address(workspace), DecodeGraphs.WORKSPACE_BYTES);
    }

    /** Replays the key's graph (capturing it on its first call), then copies its states out into {@code step}. */
    private NDArray[] launchGraph(Key key, int[] indices, NDManager step) {
        Graph graph = graphs.get(key);
        if (graph != null) {
            graph.graph().launch();
        } else {
            graph = captured(key, key.images(), key.seqLen(), indices);
        }
        cuda.legacyWaits();
        NDArray[] out = new NDArray[indices.length];
        for (int j = 0; j < indices.length; j++) {
            if (indices[j] == 0) {
                continue; // the caller's embeddings (graphs from pixels do not take index 0)
            } else if (graph.states()[j] != null) {
                out[j] = graph.states()[j].duplicate(); // on the legacy stream, after the replay
                out[j].attach(step);
            }
        }
        if (graph.graph() == null) graph.close(); // a failed capture's buffers, after the copies are queued
        return out;
    }

    /**
     * Runs a key's call eagerly on the graphs' stream (its outputs are this call's), then captures it. Where the
     * capture fails, graphs go off and the eager outputs stand.
     */
    private Graph captured(Key key, int b, int s, int[] indices) {
        NDManager owned = manager.newSubManager();
        int[] starts = new int[b + 1];
        for (int i = 1; i <= b; i++) starts[i] = i * s;
        NDArray cuSeq = owned.create(starts);
        NDArray[] states = new NDArray[indices.length];
        Shape shape = new Shape(b, s, hidden);
        for (int j = 0; j < indices.length; j++)
            if (indices[j] > 0 && indices[j] <= layerWeights.length) states[j] = owned.create(shape, DataType.FLOAT16);
        int rows = b * s;
        long x = kernels.address(input);
        int device = manager.getDevice().getDeviceId();
        CudaGraphs.Graph g = null;
        RuntimeException failure = null;
        boolean ran = false; // the eager run on our stream finished: this call's states are in
        kernels.setStream(cuda.stream());
        try (AutoCloseable guard = shim.streamGuard(cuda.stream(), Math.max(device, 0))) {
            if (key.from() > 0) embedLaunches(streamBlas, key);
            launches(streamBlas, x, cuSeq, rows, s, indices, states, null);
            ran = true;
            cuda.beginRelaxedCapture();
            try {
                if (key.from() > 0) embedLaunches(streamBlas, key);
                launches(streamBlas, x, cuSeq, rows, s, indices, states, owned);
            } catch (RuntimeException e) {
                failure = e;
            }
            try {
                g = cuda.endCapture(); // ends the capture even after a failed launch
            } catch (RuntimeException e) {
                if (failure == null) failure = e;
            }
        } catch (Exception e) {
            if (failure == null) failure = e instanceof RuntimeException r ? r : new IllegalStateException(e);
        } finally {
            kernels.setStream(null);
        }
        if (failure != null || g == null) {
            if (g != null) g.close();
            graphsOff = true;
            log.warn("CUDA graph capture of the vision tower failed ({}); its layers launch eagerly from now on",
                    String.valueOf(failure));
            clearGraphs();
            if (!ran) { // this call's states from the legacy stream's launches instead
                cuda.legacyWaits();
                if (key.from() > 0) embedLaunches(cublas, key);
                launches(cublas, x, cuSeq, rows, s, indices, states, null);
            }
            return new Graph(null, cuSeq, states, owned); // the eager run's states stand; freed once copied out
        }
        Graph graph = new Graph(g, cuSeq, states, owned);
        graphs.put(key, graph);
        if (++captures == 1) log.info("vision tower calls of up to {} images replay as CUDA graphs", GRAPH_MAX_IMAGES);
        return graph;
    }

    private void clearGraphs() {
        for (Graph g : graphs.values()) g.close();
        graphs.clear();
    }

    private void ensureCapacity(int rows) {
        if (rows <= capacity) return;
        int cap = Math.max(rows, 2 * capacity);
        if (resid != null) for (NDArray a : new NDArray[] {resid, normed, qkv, attnOut, fc1, fc2, input}) a.close();
        clearGraphs(); // they write the old buffers
        resid = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        normed = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        qkv = manager.create(new Shape(cap, 3L * hidden), DataType.FLOAT16);
        attnOut = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        fc1 = manager.create(new Shape(cap, inter), DataType.FLOAT16);
        fc2 = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        input = manager.create(new Shape(cap, hidden), DataType.FLOAT16);
        capacity = cap;
    }
}

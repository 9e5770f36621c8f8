package dev.retina.engine.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A LLaVA-1.5 model on DJL, module for module as HF's {@code LlavaForConditionalGeneration}: {@code visionTower}
 * (CLIP), {@code multiModalProjector}, {@code languageModel} (Llama over a paged KV cache). Called only from the
 * engine thread.
 *
 * <p>Memory rule: weights live in {@link #manager()}, on the device. Every array a method returns, and every
 * temporary it makes, lands in the manager of its tensor argument ({@code pixelValues}, {@code inputIds},
 * {@code inputsEmbeds}). The caller runs each step in a child manager, {@code model.manager().newSubManager()}, and
 * closes it at step end; nothing of a step outlives it but what the caller copies out.
 */
public final class LlavaModel implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LlavaModel.class);

    private final LlavaConfig config;
    private final NDManager manager;
    private final DataType dtype;
    private final ClipVisionTower visionTower;
    private final MultiModalProjector multiModalProjector;
    private final LlamaModel languageModel;
    private final int[] visionFeatureIndices; // non-negative HF hidden_states indices
    private final NDArray imageNewline;       // (textHidden), LLaVA-NeXT only, else null

    private LlavaModel(LlavaConfig config, NDManager manager, DataType dtype, WeightSource weights,
                       boolean nativeKernels) {
        this.config = config;
        this.manager = manager;
        this.dtype = dtype;
        this.visionTower = new ClipVisionTower(config.visionConfig(), config.numVisionLayersToRun(), weights, manager,
                dtype);
        this.multiModalProjector = new MultiModalProjector(config, weights, visionTower.quickGeluAlpha());
        this.languageModel = new LlamaModel(config.textConfig(), config.tieWordEmbeddings(), weights, manager, dtype,
                nativeKernels);
        this.visionFeatureIndices = config.visionFeatureLayers().stream().mapToInt(config::resolveVisionLayer).toArray();
        this.imageNewline = config.isNext() ? weights.get("image_newline", config.textConfig().hiddenSize()) : null;
        configureVisionTower();
    }

    /** Loads {@code config.json} and the weights from a HF checkpoint directory onto the configured device. */
    public static LlavaModel load(Path modelDir, ModelLoadConfig cfg) throws IOException {
        LlavaConfig config = LlavaConfig.load(modelDir);
        DataType dtype = cfg.resolvedDtype();
        LoadFormat format = cfg.loadFormat();
        if (format == LoadFormat.AUTO) format = LoadFormat.SAFETENSORS;
        long startNanos = System.nanoTime();
        NDManager manager = NDManager.newBaseManager(cfg.device());
        try (WeightSource weights = format == LoadFormat.DUMMY
                ? new DummyWeights(manager, dtype, cfg.seed(), config.tieWordEmbeddings())
                : new CheckpointWeights(modelDir, manager, dtype)) {
            LlavaModel model = new LlavaModel(config, manager, dtype, weights, cfg.nativeKernels());
            log.info("loaded {} ({} weights) on {} as {} in {} ms", modelDir.getFileName(), format, cfg.device(), dtype,
                    (System.nanoTime() - startNanos) / 1_000_000);
            return model;
        } catch (IOException | RuntimeException e) {
            manager.close();
            throw e;
        }
    }

    /** True when the directory holds something {@link #load} can read with {@link LoadFormat#SAFETENSORS}. */
    public static boolean hasSafetensors(Path modelDir) throws IOException {
        try (var files = Files.list(modelDir)) {
            return files.anyMatch(p -> p.getFileName().toString().endsWith(".safetensors"));
        }
    }

    public LlavaConfig config() {
        return config;
    }

    /** The manager holding the weights, on the model's device; parent of per-step managers. */
    public NDManager manager() {
        return manager;
    }

    public DataType dtype() {
        return dtype;
    }

    public Device device() {
        return manager.getDevice();
    }

    /**
     * Vision tower, feature selection and projector.
     *
     * @param pixelValues (numImages, 3, imageSize, imageSize) float32 (or model dtype), on the model's device
     * @return imageFeatures (numImages, numImageTokens, textHidden), model dtype, in pixelValues' manager
     */
    public NDArray encodeImages(NDArray pixelValues) {
        // the tower casts the pixels to the model dtype (inside its graph where it starts from pixels)
        NDArray[] selected = visionTower.hiddenStates(pixelValues, visionFeatureIndices); // each (N, P + 1, visionHidden)
        boolean dropCls = config.visionFeatureSelectStrategy().equals("default");
        NDList features = new NDList(selected.length);
        for (NDArray hs : selected) features.add(dropCls ? hs.get(":, 1:, :") : hs);
        NDArray imageFeatures = features.size() == 1 ? features.get(0) : NDArrays.concat(features, -1);
        return multiModalProjector.forward(imageFeatures);
    }

    /**
     * LLaVA-NeXT placeholder tokens for one image of this size (what {@code LlavaNextProcessor} expands
     * {@code <image>} to); LLaVA-1.5's fixed count for llava models. Known before the image is encoded.
     */
    public int numImageTokens(int imageHeight, int imageWidth) {
        return config.numImageTokens(imageHeight, imageWidth);
    }

    /**
     * LLaVA-NeXT: encodes one image's tiles and packs them as HF's {@code pack_image_features} does: the base tile's
     * features, then the grid tiles' features laid out as one (rows * side, cols * side) map, unpadded to the image's
     * aspect ratio, with {@code image_newline} after every row.
     *
     * @param tiles       (numTiles, 3, imageSize, imageSize), numTiles = {@link LlavaConfig#numTiles}, on the
     *                    model's device; tile 0 is the whole image
     * @param imageHeight original image height (HF {@code image_sizes[i][0]})
     * @param imageWidth  original image width
     * @return imageFeatures (numImageTokens(imageHeight, imageWidth), textHidden), model dtype, in tiles' manager
     */
    public NDArray encodeImage(NDArray tiles, int imageHeight, int imageWidth) {
        if (!config.isNext()) throw new IllegalStateException("encodeImage is for llava_next; use encodeImages");
        int[] grid = config.tileGrid(imageHeight, imageWidth);
        long numTiles = tiles.getShape().get(0);
        if (numTiles != 1L + grid[0] * grid[1])
            throw new IllegalArgumentException(numTiles + " tiles for a " + imageWidth + "x" + imageHeight
                    + " image, expected " + (1 + grid[0] * grid[1]));
        NDArray features = encodeImages(tiles); // (numTiles, side * side, hidden)
        long hidden = config.textConfig().hiddenSize();
        int side = config.visionConfig().imageSize() / config.visionConfig().patchSize();
        NDArray base = features.get(0); // (side * side, hidden)
        NDArray gridFeatures = features.get("1:")
                .reshape(grid[0], grid[1], side, side, hidden)  // (rows, cols, side, side, hidden)
                .transpose(0, 2, 1, 3, 4)                        // (rows, side, cols, side, hidden)
                .reshape((long) grid[0] * side, (long) grid[1] * side, hidden);
        int[] kept = config.unpaddedFeatureGrid(imageHeight, imageWidth);
        int top = (grid[0] * side - kept[0]) / 2;
        int left = (grid[1] * side - kept[1]) / 2;
        NDArray unpadded = gridFeatures.get(top + ":" + (top + kept[0]) + ", " + left + ":" + (left + kept[1]));
        // Built in the step's manager (zeros + the weight) so no temporary lands in the model's manager.
        NDArray newline = unpadded.getManager().zeros(new Shape(kept[0], 1, hidden), unpadded.getDataType())
                .add(imageNewline);
        NDArray rows = NDArrays.concat(new NDList(unpadded, newline), 1); // (keptRows, keptCols + 1, hidden)
        return NDArrays.concat(new NDList(base, rows.reshape((long) kept[0] * (kept[1] + 1), hidden)), 0);
    }

    /**
     * @param inputIds (numTokens) int32 or int64, on the model's device
     * @return inputsEmbeds (numTokens, textHidden), model dtype, in inputIds' manager
     */
    public NDArray embedTokens(NDArray inputIds) {
        return languageModel.embedTokens(inputIds);
    }

    /**
     * Writes image features over the embeddings of image-token positions, in place (index_put), so a runner can place
     * the features for any chunk of a prompt.
     *
     * @param inputsEmbeds          (numTokens, textHidden) model dtype; modified
     * @param imageTokenPositions   indices into inputsEmbeds' rows, one per feature row, in order
     * @param imageFeatures         (N, textHidden) or (numImages, numImageTokens, textHidden), N rows in all
     * @return inputsEmbeds
     */
    public NDArray mergeImageFeatures(NDArray inputsEmbeds, int[] imageTokenPositions, NDArray imageFeatures) {
        if (imageTokenPositions.length == 0) return mergeImageFeatures(inputsEmbeds, null, 0, imageFeatures);
        return mergeImageFeatures(inputsEmbeds, imageTokenIndex(imageTokenPositions, inputsEmbeds.getManager()),
                imageTokenPositions.length, imageFeatures);
    }

    /**
     * The image-token rows of a step as the int64 index {@link #mergeImageFeatures(NDArray, NDArray, int, NDArray)}
     * takes, uploaded now into {@code step}: a caller uploads it before queueing the step's image encode, since the
     * upload waits for the device's queued work.
     */
    public NDArray imageTokenIndex(int[] imageTokenPositions, NDManager step) {
        long[] positions = new long[imageTokenPositions.length];
        for (int i = 0; i < positions.length; i++) positions[i] = imageTokenPositions[i];
        DeviceUploads uploads = languageModel.uploads();
        return uploads != null ? uploads.longs(positions, step) : step.create(positions);
    }

    /**
     * Uploads that do not wait for the device's queued work where the model runs on the GPU in float16
     * ({@link DeviceUploads}), else null.
     */
    public DeviceUploads deviceUploads() {
        return languageModel.uploads();
    }

    /**
     * A step's token ids as an int32 array on the model's device, in {@code step}. On the GPU (float16) the copy is
     * queued without waiting for the device's queued work ({@link DeviceUploads}).
     */
    public NDArray uploadTokenIds(int[] ids, NDManager step) {
        DeviceUploads uploads = languageModel.uploads();
        return uploads != null ? uploads.ints(ids, new Shape(ids.length), step) : step.create(ids);
    }

    /**
     * Images' float32 pixels stacked into one (shape) array on the GPU through page-locked staging, queued without
     * waiting for the device ({@link DeviceUploads}); null where the model has no such uploads (the CPU), so the
     * caller makes the array itself.
     */
    public NDArray uploadPixels(List<float[]> images, Shape shape, NDManager step) {
        DeviceUploads uploads = languageModel.uploads();
        return uploads == null ? null : uploads.floats(images, shape, step);
    }

    /**
     * {@link #mergeImageFeatures(NDArray, int[], NDArray)} with the positions already uploaded
     * ({@link #imageTokenIndex}).
     *
     * @param index   (count) int64 on the model's device; null only when count is 0
     * @param count   image-token rows
     */
    public NDArray mergeImageFeatures(NDArray inputsEmbeds, NDArray index, int count, NDArray imageFeatures) {
        long hidden = config.textConfig().hiddenSize();
        Shape fs = imageFeatures.getShape();
        long rows = fs.size() / hidden;
        if (rows != count || fs.get(fs.dimension() - 1) != hidden)
            throw new IllegalArgumentException("imageFeatures " + fs + " do not match " + count
                    + " image-token positions");
        if (count == 0) return inputsEmbeds;
        NDArray values = imageFeatures.reshape(rows, hidden);
        if (values.getDataType() != inputsEmbeds.getDataType()) values = values.toType(inputsEmbeds.getDataType(), false);
        inputsEmbeds.set(new NDIndex("{}", index), values);
        return inputsEmbeds;
    }

    /**
     * A pure decode step straight from token ids (no image features), where the direct path replays it as a CUDA graph
     * that does its own embedding lookup: no DJL op before the graph. Returns null where this step cannot go that
     * way (CPU, another dtype, graphs off, a prefill in the batch); the caller then embeds and calls {@link #forward}.
     *
     * @param inputIds (numSeqs) the token of each sequence
     * @return (numSeqs, vocab) float32 logits in {@code step}, or null
     */
    public NDArray forwardTokens(int[] inputIds, ForwardBatch batch, KvCache cache, NDManager step) {
        return languageModel.forwardTokens(inputIds, null, batch, cache, step);
    }

    /**
     * {@link #forwardTokens(int[], ForwardBatch, KvCache, NDManager)} with the token ids on the device: a run-ahead
     * decode step fed the previous step's samples without their coming back to the host first. The ids are read
     * after the work queued before this call (the sampling that writes them).
     *
     * @param deviceIds (numSeqs) int64 on the model's device, contiguous; {@code inputIds} is then not read
     */
    public NDArray forwardTokens(NDArray deviceIds, ForwardBatch batch, KvCache cache, NDManager step) {
        return languageModel.forwardTokens(new int[batch.numSeqs()], deviceIds, batch, cache, step);
    }

    /**
     * Captures the decode-step CUDA graphs (and tunes the small-batch GEMMs) for every batch bucket up to
     * {@code maxNumSeqs} before serving, as vLLM does at startup, so no request waits for a capture. The warm-up
     * steps write nothing into the cache (every slot -1). Returns how many steps ran: 0 where decode steps do not
     * replay as graphs (CPU, graphs off).
     */
    public int warmUpDecodeGraphs(KvCache cache, int maxNumSeqs) {
        int steps = 0;
        int previous = 0;
        for (int rows = 1; rows <= Math.min(maxNumSeqs, DecodeGraphs.MAX_BATCH); rows++) {
            int bucket = DecodeGraphs.bucket(rows);
            if (bucket == previous) continue;
            previous = bucket;
            int b = Math.min(bucket, maxNumSeqs);
            int[] zeros = new int[b];
            int[] slots = new int[b];
            java.util.Arrays.fill(slots, -1);
            int[] starts = new int[b + 1];
            int[] ones = new int[b];
            int[][] tables = new int[b][];
            for (int s = 0; s < b; s++) {
                starts[s + 1] = s + 1;
                ones[s] = 1;
                tables[s] = new int[] {0};
            }
            int[] logitsIndices = java.util.Arrays.copyOf(starts, b);
            ForwardBatch batch = new ForwardBatch(zeros, slots, starts, ones, tables, logitsIndices);
            try (NDManager step = manager.newSubManager()) {
                NDArray logits = forwardTokens(zeros, batch, cache, step);
                if (logits == null) continue; // no graph for this batch (CPU, graphs off, small-batch GEMV)
                logits.get(0, 0).getFloat(); // wait for it
            }
            steps++;
        }
        return steps;
    }

    /**
     * Captures the vision tower's CUDA graphs for calls of 1 to {@code -Dretina.visionGraphMaxImages} images (zero
     * pixels) before serving, so no request waits for a capture. Returns how many calls ran: 0 where the tower does
     * not replay as graphs (CPU, float32, graphs off).
     */
    public int warmUpVisionGraphs() {
        int side = config.visionConfig().imageSize();
        int calls = 0;
        for (int n = 1; visionTower.graphed(n); n++) {
            try (NDManager step = manager.newSubManager()) {
                // float32, as the engine's pixels come (a graph from pixels is captured per pixel dtype)
                NDArray pixels = step.zeros(new Shape(n, config.visionConfig().numChannels(), side, side),
                        DataType.FLOAT32);
                NDArray features = encodeImages(pixels);
                features.attach(step);
                features.get(0, 0, 0).getFloat(); // wait for it
            }
            calls++;
        }
        return calls;
    }

    /**
     * One language-model step over a flattened batch: writes each new token's K and V into {@code cache} at
     * {@code batch.slotMapping()}, attends each sequence's queries over its cached context (causal within the new
     * tokens), and returns the logits at {@code batch.logitsIndices()}.
     *
     * @param inputsEmbeds (T, textHidden) model dtype, in a per-step manager
     * @return logits (numSeqs, vocab) float32, in inputsEmbeds' manager
     */
    public NDArray forward(NDArray inputsEmbeds, ForwardBatch batch, KvCache cache) {
        checkStep(inputsEmbeds, batch, cache);
        return languageModel.forward(inputsEmbeds, batch, cache);
    }

    private void checkStep(NDArray inputsEmbeds, ForwardBatch batch, KvCache cache) {
        if (inputsEmbeds.getShape().get(0) != batch.numTokens())
            throw new IllegalArgumentException("inputsEmbeds has " + inputsEmbeds.getShape().get(0) + " rows, batch "
                    + batch.numTokens() + " tokens");
        if (cache.numLayers() != config.textConfig().numHiddenLayers())
            throw new IllegalArgumentException("KV cache has " + cache.numLayers() + " layers, model "
                    + config.textConfig().numHiddenLayers());
    }

    /** A step's attention metadata, uploaded by {@link #prepare} before its embeddings exist. */
    public static final class PreparedStep {
        private final LlamaModel.Prepared prepared;

        private PreparedStep(LlamaModel.Prepared prepared) {
            this.prepared = prepared;
        }
    }

    /**
     * Uploads a step's attention metadata into {@code step} ahead of {@link #forward(NDArray, PreparedStep, KvCache)}.
     * On the GPU the uploads go through page-locked staging and wait for nothing ({@link DeviceUploads}); through
     * DJL's create ({@code -Dretina.asyncUploads=false}) each waits for the device's queued work, which is why a step
     * that encodes images prepares first: then the uploads do not wait for the encode.
     */
    public PreparedStep prepare(ForwardBatch batch, KvCache cache, NDManager step) {
        return new PreparedStep(languageModel.prepare(batch, cache, step));
    }

    /** {@link #forward(NDArray, ForwardBatch, KvCache)} with the step's metadata already {@link #prepare}d. */
    public NDArray forward(NDArray inputsEmbeds, PreparedStep prepared, KvCache cache) {
        ForwardBatch batch = prepared.prepared.batch();
        checkStep(inputsEmbeds, batch, cache);
        return languageModel.forward(inputsEmbeds, prepared.prepared, cache);
    }

    /**
     * Turns the CUDA float16 native kernels ({@link ModelLoadConfig#nativeKernels()}) on or off for later steps, where
     * they apply; for comparing both paths on the same weights. Engine thread only.
     */
    public void setNativeKernels(boolean enabled) {
        languageModel.setNativeKernels(enabled);
        configureVisionTower();
    }

    /**
     * With native kernels on, whether Retina's own CUDA kernels (paged decode attention, fused rotary + cache write,
     * SiLU * up) are used too, or only libtorch's (flash attention over the gathered context, fused RMSNorm). On by
     * default; off only to compare the two. Engine thread only.
     */
    public void setRetinaKernels(boolean enabled) {
        languageModel.setRetinaKernels(enabled);
        configureVisionTower();
    }

    /** The vision tower follows the language model's kernel settings: flash attention and the direct layers. */
    private void configureVisionTower() {
        visionTower.setFlashAttention(languageModel.nativeShim());
        visionTower.setDirect(languageModel.retinaKernels(), languageModel::cublas);
    }

    /**
     * With Retina's kernels on, whether steps whose prefills have no cached context (a new prompt's first chunk, after
     * any decodes) take the direct path too: cuBLAS, Retina's kernels and flash attention over the step's own K/V rows,
     * no DJL op per layer. On by default ({@code -Dretina.directPrefill=false} turns it off); it needs flash attention
     * and the direct decode path's conditions (CUDA float16, no biases, dense weights).
     */
    public void setDirectPrefill(boolean enabled) {
        languageModel.setDirectPrefill(enabled);
    }

    /** See {@link #setDirectPrefill}. */
    public boolean directPrefill() {
        return languageModel.directPrefill();
    }

    /**
     * With Retina's kernels on, whether the vision tower's encoder layers take the direct path (cuBLAS, flash attention
     * and Retina's kernels on raw device addresses, no DJL op per layer; see DirectVision). On by default where it can
     * load ({@code -Dretina.directVision=false} turns it off); off only to compare. Engine thread only.
     */
    public void setDirectVision(boolean enabled) {
        visionTower.setDirectEnabled(enabled);
    }

    /**
     * Whether the direct vision tower replays calls of up to {@code -Dretina.visionGraphMaxImages} (default 2) images
     * as CUDA graphs (see DirectVision). On by default; off only to compare. Engine thread only.
     */
    public void setVisionGraphs(boolean enabled) {
        visionTower.setGraphsEnabled(enabled);
    }

    /**
     * Whether those graphs start from the pixels (patch, class and position embeddings and pre_layrnorm inside the
     * graph) or from the embeddings DJL's ops computed. On by default ({@code -Dretina.visionGraphPixels=false} turns
     * it off); off only to compare. Engine thread only.
     */
    public void setVisionPixelGraphs(boolean enabled) {
        visionTower.setPixelGraphs(enabled);
    }

    /**
     * A timer of GPU spans on the legacy stream ({@link GpuSpans}) where this model runs Retina's CUDA kernels, else
     * null: on the CPU every op has finished when it returns, so wall time is the op's time.
     */
    public GpuSpans newGpuSpans() {
        CudaKernels kernels = languageModel.retinaKernels();
        return kernels == null ? null : new GpuSpans(kernels);
    }

    /**
     * With Retina's kernels on, whether pure decode steps take the direct path (cuBLAS and Retina's kernels on raw
     * device addresses, no DJL op per layer; see DirectDecode). On by default where it can load
     * ({@code -Dretina.directDecode=false} turns it off); off only to compare. Engine thread only.
     */
    public void setDirectDecode(boolean enabled) {
        languageModel.setDirectDecode(enabled);
    }

    /**
     * Steps mixing decodes and prefill chunks: decodes through the paged decode kernel and only the chunks' contexts
     * gathered for flash attention (on by default with Retina's kernels; {@code -Dretina.mixedAttention=false} turns
     * it off), or every context gathered (off; only to compare). Engine thread only.
     */
    public void setMixedAttention(boolean enabled) {
        languageModel.setMixedAttention(enabled);
    }

    /** Split-K decode attention on the direct path (on by default where the PTX has it); off only to compare. */
    public void setSplitKAttention(boolean enabled) {
        languageModel.setSplitK(enabled);
    }

    /**
     * Whether the direct path's GEMV kernels start on ({@code -Dretina.gemv=false} off): decode steps of one sequence
     * take them instead of cuBLAS (-Dretina.gemvMaxRows raises the limit to 2 or 4). On the H200 they made a batch-1
     * step's graph 0.07 ms faster (docs/BENCHMARKS.md).
     */
    public static final boolean GEMV_DEFAULT = !"false".equals(System.getProperty("retina.gemv"));

    /**
     * The direct path's GEMV kernels (SwiGLU in gate_up's epilogue) for decode steps of few sequences on or off; see
     * {@link #GEMV_DEFAULT}.
     */
    public void setGemv(boolean enabled) {
        languageModel.setGemv(enabled);
    }

    /**
     * Pure decode steps replayed as CUDA graphs on or off (on by default; {@code -Dretina.cudaGraph=false} off); off,
     * the direct path launches every kernel and GEMM of the step from the host.
     */
    public void setCudaGraph(boolean enabled) {
        languageModel.setCudaGraph(enabled);
    }

    /**
     * The decode step's GEMMs through cuBLASLt, autotuned per shape for up to 8 rows, on or off (on by default;
     * {@code -Dretina.cublasLt=false} off: cublasGemmEx's heuristic pick).
     */
    public void setCublasLt(boolean enabled) {
        languageModel.setCublasLt(enabled);
    }

    /** How many decode-step graphs were captured and replayed (benchmarks, logs). */
    public String cudaGraphStats() {
        return languageModel.cudaGraphStats();
    }

    /** The direct vision tower's host time per phase (profiling runs, -Dretina.directProfile=true), then resets. */
    public String visionHostProfile() {
        return visionTower.hostProfile();
    }

    /** With {@code -Dretina.directProfile=true}: the direct decode path's time per launch kind since the last call. */
    public String directDecodeProfile() {
        return languageModel.directProfile();
    }

    /**
     * Measurement only: tunes the direct prefill's GEMMs (cuBLASLt against cublasGemmEx, as the decode GEMMs are) at
     * exactly {@code rows} rows, so later direct prefills of that many tokens take the fastest; returns the tuning's
     * summary. The engine does not call it. Engine thread only.
     */
    public String tunePrefillGemms(int rows) {
        return languageModel.tunePrefillGemms(rows);
    }

    /**
     * Waits until the device has run everything queued so far (a one-value copy back to the host, which the legacy
     * default stream orders after all earlier work); for profiling. A no-op on the CPU.
     */
    public void synchronizeDevice() {
        if (!manager.getDevice().isGpu()) return;
        try (NDManager scratch = manager.newSubManager()) {
            scratch.create(0f).toFloatArray();
        }
    }

    /** A KV cache of {@code numBlocks} blocks shaped for this model. */
    public KvCache newKvCache(int numBlocks, int blockSize) {
        return KvCache.forModel(this, numBlocks, blockSize);
    }

    @Override
    public void close() {
        languageModel.close();
        manager.close();
    }
}

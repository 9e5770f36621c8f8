package dev.retina.engine;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import dev.retina.engine.model.ForwardBatch;
import dev.retina.engine.model.KvCache;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.engine.model.LlavaModel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The real {@link ModelRunner}: turns a {@link SchedulerOutput} into one {@link ForwardBatch} over the paged KV cache
 * (token embeddings with image features placed at image-token positions), runs the LLaVA forward pass and samples
 * with the {@link Sampler}. Called only from the engine thread.
 *
 * <p>Images: the first time a request's prompt tokens are fed (first chunk, a forked n &gt; 1 choice's tail, or a
 * recompute after preemption), all its images are encoded at once and kept, in a manager of their own, until the
 * request appears in {@link SchedulerOutput#finishedRequestIds()}; each chunk takes the feature rows of the image
 * tokens it holds. So a chunk may end anywhere inside an image's tokens. LLaVA-NeXT anyres images are encoded tile by
 * tile and packed with {@link LlavaModel#encodeImage}; single images with {@link LlavaModel#encodeImages}.
 *
 * <p>Encoder cache: an image with a {@link ImageInput#contentHash()} is looked up by it first, and its encoder output
 * kept afterwards ({@link EncoderCache}, bounded in image tokens), so the same image in another request or turn runs
 * no vision tower; {@link #encoderCacheStats()} counts passes, hits and misses.
 *
 * <p>Owns the KV cache (closed in {@link #close()}); the model stays the caller's to close.
 */
public final class LlavaModelRunner implements ModelRunner {
    /** A request's encoded images and where their tokens sit in the prompt. */
    private record RequestImages(NDManager manager, NDArray imageFeatures /* (numImagePositions, textHidden) */,
                                 int[] imageTokenPositions /* ascending prompt positions */) {
    }

    private final LlavaModel model;
    private final KvCache cache;
    private final int blockSize;
    private final int imageTokenId;
    private final Sampler sampler = new Sampler();
    private final Map<String, RequestImages> images = new HashMap<>();
    private final EncoderCache encoderCache;
    // Written by the engine thread only; volatile so encoderCacheStats() reads them from any thread.
    private volatile long numEncoderPasses;
    private volatile long encoderNanos;
    private volatile long numCacheHits;
    private volatile long numCacheMisses;
    private volatile int numCachedImages;
    private volatile int numCachedTokens;

    /** Default capacity of the encoder cache, in image tokens (about 28 LLaVA-1.5 images). */
    public static final int DEFAULT_ENCODER_CACHE_SIZE = 16384;

    public LlavaModelRunner(LlavaModel model, int numBlocks, int blockSize) {
        this(model, numBlocks, blockSize, DEFAULT_ENCODER_CACHE_SIZE);
    }

    /**
     * @param encoderCacheSize capacity of the encoder-output cache in image tokens (feature rows); 0 disables it
     */
    public LlavaModelRunner(LlavaModel model, int numBlocks, int blockSize, int encoderCacheSize) {
        this.model = model;
        this.cache = model.newKvCache(numBlocks, blockSize);
        this.blockSize = blockSize;
        this.imageTokenId = model.config().imageTokenIndex();
        this.encoderCache = new EncoderCache(model.manager(), encoderCacheSize);
    }

    public KvCache cache() { return cache; }

    @Override
    public RunnerOutput execute(SchedulerOutput so) {
        for (String requestId : so.finishedRequestIds()) dropImages(requestId);
        List<ScheduledSequence> seqs = so.sequences();
        int numSeqs = seqs.size();
        int numTokens = so.numBatchedTokens();
        int[] inputIds = new int[numTokens];
        int[] positions = new int[numTokens];
        int[] slotMapping = new int[numTokens];
        int[] queryStartLoc = new int[numSeqs + 1];
        int[] seqLens = new int[numSeqs];
        int[][] blockTables = new int[numSeqs][];
        int[] logitsIndices = new int[numSeqs];
        List<Integer> samplingRows = new ArrayList<>();
        List<ScheduledSequence> samplingSeqs = new ArrayList<>();
        int t = 0;
        for (int s = 0; s < numSeqs; s++) {
            ScheduledSequence seq = seqs.get(s);
            queryStartLoc[s] = t;
            for (int i = 0; i < seq.numNewTokens(); i++, t++) {
                int pos = seq.startPosition() + i;
                inputIds[t] = seq.tokenIds()[i];
                positions[t] = pos;
                slotMapping[t] = seq.blockTable()[pos / blockSize] * blockSize + pos % blockSize;
            }
            seqLens[s] = seq.seqLen();
            blockTables[s] = seq.blockTable();
            logitsIndices[s] = t - 1;
            if (seq.sample()) {
                samplingRows.add(s);
                samplingSeqs.add(seq);
            }
        }
        queryStartLoc[numSeqs] = t;
        ForwardBatch batch = new ForwardBatch(positions, slotMapping, queryStartLoc, seqLens, blockTables, logitsIndices);

        try (NDManager step = model.manager().newSubManager()) {
            NDArray inputsEmbeds = model.embedTokens(step.create(inputIds)); // (T, textHidden)
            try {
                mergeImages(step, inputsEmbeds, seqs, queryStartLoc);
            } finally {
                numCachedImages = encoderCache.numImages();
                numCachedTokens = encoderCache.numTokens();
            }
            NDArray logits = model.forward(inputsEmbeds, batch, cache);    // (numSeqs, vocab) float32
            if (samplingSeqs.isEmpty()) return new RunnerOutput(new int[0], List.of());
            if (samplingSeqs.size() < numSeqs) {
                long[] rows = samplingRows.stream().mapToLong(Integer::longValue).toArray();
                logits = logits.get(new NDIndex("{}", step.create(rows)));
            }
            return sampler.sample(logits, samplingSeqs);
        }
    }

    /** Places each chunk's image-token features (encoding a request's images on first need). */
    private void mergeImages(NDManager step, NDArray inputsEmbeds, List<ScheduledSequence> seqs, int[] queryStartLoc) {
        List<Integer> batchPositions = new ArrayList<>();
        NDList featureRows = new NDList();
        for (int s = 0; s < seqs.size(); s++) {
            ScheduledSequence seq = seqs.get(s);
            if (seq.images().isEmpty() || !seq.hasPromptTokens()) continue;
            RequestImages ri = images.computeIfAbsent(seq.requestId(), id -> encode(seq));
            int from = lowerBound(ri.imageTokenPositions(), seq.startPosition());
            int to = lowerBound(ri.imageTokenPositions(), Math.min(seq.seqLen(), seq.promptTokenIds().length));
            if (from == to) continue;
            for (int r = from; r < to; r++)
                batchPositions.add(queryStartLoc[s] + ri.imageTokenPositions()[r] - seq.startPosition());
            NDArray slice = ri.imageFeatures().get(from + ":" + to); // a view; owned by this step, not the request
            slice.attach(step);
            featureRows.add(slice);
        }
        if (batchPositions.isEmpty()) return;
        NDArray rows = featureRows.size() == 1 ? featureRows.get(0) : NDArrays.concat(featureRows, 0);
        model.mergeImageFeatures(inputsEmbeds, batchPositions.stream().mapToInt(Integer::intValue).toArray(), rows);
    }

    private RequestImages encode(ScheduledSequence seq) {
        int[] prompt = seq.promptTokenIds();
        int[] imagePositions = Arrays.stream(java.util.stream.IntStream.range(0, prompt.length).toArray())
                .filter(i -> prompt[i] == imageTokenId).toArray();
        int expected = seq.images().stream().mapToInt(ImageInput::numImageTokens).sum();
        if (imagePositions.length != expected)
            throw new IllegalArgumentException("request " + seq.requestId() + ": " + imagePositions.length
                    + " image tokens in the prompt, images need " + expected);
        NDManager m = model.manager().newSubManager();
        // Encoder temporaries live in enc and go at once; only the final features move to the request's manager.
        try (NDManager enc = model.manager().newSubManager()) {
            NDList perImage = new NDList();
            for (ImageInput image : seq.images()) perImage.add(featuresOf(image, enc));
            NDArray all = perImage.size() == 1 ? perImage.get(0) : NDArrays.concat(perImage, 0);
            all = all.toType(model.dtype(), false).toDevice(model.device(), false);
            all.attach(m);
            return new RequestImages(m, all, imagePositions);
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    /**
     * One image's features: precomputed ones as given; otherwise from the encoder cache by content hash, or from the
     * vision tower (LLaVA-NeXT tiles packed with the original size), then cached.
     *
     * @return (numImageTokens, textHidden) in {@code enc}
     */
    private NDArray featuresOf(ImageInput image, NDManager enc) {
        long hidden = model.config().textConfig().hiddenSize();
        if (image.imageFeatures() != null) // shape checked in checkRequest
            return enc.create(image.imageFeatures(), new Shape(image.numImageTokens(), hidden));
        NDArray cached = encoderCache.get(image.contentHash(), enc);
        if (cached != null) {
            numCacheHits++;
            return cached;
        }
        if (image.contentHash() != null) numCacheMisses++;
        NDArray pixelValues = enc.create(image.pixelValues(),
                new Shape(image.numTiles(), 3, image.height(), image.width())); // (numTiles, 3, H, W)
        NDArray features;
        long t0 = System.nanoTime();
        if (image.isTiled()) {
            features = model.encodeImage(pixelValues, image.imageHeight(), image.imageWidth());
        } else {
            features = model.encodeImages(pixelValues);
            features = features.reshape(features.getShape().size() / hidden, hidden);
        }
        // Reading one element waits for the device, so the time is the pass's, not its launch's (GPU ops are async).
        features.get("0:1, 0:1").toType(ai.djl.ndarray.types.DataType.FLOAT32, false).toFloatArray();
        encoderNanos += System.nanoTime() - t0;
        numEncoderPasses++;
        if (features.getShape().get(0) != image.numImageTokens())
            throw new IllegalArgumentException("image gives " + features.getShape().get(0)
                    + " feature rows, its placeholder has " + image.numImageTokens());
        encoderCache.put(image.contentHash(), features);
        return features;
    }

    @Override
    public String checkRequest(EngineRequest request) {
        LlavaConfig config = model.config();
        int hidden = config.textConfig().hiddenSize();
        int side = config.visionConfig().imageSize();
        int numImageTokenIds = 0;
        for (int id : request.promptTokenIds()) if (id == imageTokenId) numImageTokenIds++;
        int expectedTokens = 0;
        for (int i = 0; i < request.images().size(); i++) {
            ImageInput image = request.images().get(i);
            expectedTokens += image.numImageTokens();
            String which = "image " + i + ": ";
            if (image.imageFeatures() != null) {
                long expected = (long) image.numImageTokens() * hidden;
                if (image.imageFeatures().length != expected)
                    return which + "precomputed image features must have shape (numImageTokens, hidden_size) = ("
                            + image.numImageTokens() + ", " + hidden + "), " + expected + " values; got "
                            + image.imageFeatures().length + " values (" + image.imageFeatures().length
                            / image.numImageTokens() + " per image token)";
                continue;
            }
            if (image.height() != side || image.width() != side)
                return which + "pixel values must be " + side + "x" + side + " per tile (vision_config.image_size), got "
                        + image.width() + "x" + image.height();
            int tokens;
            if (image.isTiled()) {
                if (!config.isNext()) return which + "tiled (anyres) input needs a llava_next model";
                int tiles = config.numTiles(image.imageHeight(), image.imageWidth());
                if (image.numTiles() != tiles)
                    return which + image.numTiles() + " tiles, a " + image.imageWidth() + "x" + image.imageHeight()
                            + " image needs " + tiles;
                tokens = config.numImageTokens(image.imageHeight(), image.imageWidth());
            } else {
                tokens = config.numImageTokens();
            }
            if (image.numImageTokens() != tokens)
                return which + "numImageTokens is " + image.numImageTokens() + ", the model gives " + tokens;
        }
        if (numImageTokenIds != expectedTokens)
            return "the prompt has " + numImageTokenIds + " image tokens (id " + imageTokenId + "), its images need "
                    + expectedTokens;
        return null;
    }

    /** Vision-encoder counters (images encoded, cache hits and misses); safe from any thread. */
    @Override
    public EncoderCacheStats encoderCacheStats() {
        return new EncoderCacheStats(numEncoderPasses, numCacheHits, numCacheMisses, numCachedImages, numCachedTokens,
                encoderNanos);
    }

    private static int lowerBound(int[] sorted, int key) {
        int i = Arrays.binarySearch(sorted, key);
        return i >= 0 ? i : -i - 1;
    }

    private void dropImages(String requestId) {
        RequestImages ri = images.remove(requestId);
        if (ri != null) ri.manager().close();
    }

    /** Requests whose image features are held (for tests and metrics). */
    public int numRequestsWithImages() { return images.size(); }

    @Override
    public void close() {
        for (RequestImages ri : images.values()) ri.manager().close();
        images.clear();
        encoderCache.close();
        cache.close();
    }
}

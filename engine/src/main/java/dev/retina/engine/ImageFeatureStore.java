package dev.retina.engine;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.retina.engine.model.GpuSpans;
import dev.retina.engine.model.LlavaModel;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * The image features of the requests in flight, encoded by the vision tower (or taken from the encoder cache) and
 * handed out chunk by chunk; owned by {@link LlavaModelRunner} and called only from the engine thread, except
 * {@link #stats()}, which any thread may read.
 *
 * <p>The first time a request's prompt tokens are fed (first chunk, a forked n &gt; 1 choice's tail, or a recompute
 * after preemption), all its images are encoded at once and kept, in a manager of their own, until {@link #drop}; each
 * chunk takes the feature rows of the image tokens it holds. So a chunk may end anywhere inside an image's tokens.
 * LLaVA-1.5 images of all the requests first fed in a step go through the vision tower together, stacked into one
 * {@link LlavaModel#encodeImages} call of at most {@link #MAX_IMAGES_PER_ENCODE} images (the vision tower is
 * row-independent, so each image's features are those of encoding it alone); LLaVA-NeXT anyres images are encoded one
 * image (all its tiles) at a time and packed with {@link LlavaModel#encodeImage}.
 *
 * <p>Encoder cache: an image with a {@link ImageInput#contentHash()} is looked up by it first, and its encoder output
 * kept afterwards ({@link EncoderCache}, bounded in image tokens), so the same image in another request or turn runs
 * no vision tower; {@link #stats()} counts passes, hits and misses.
 */
final class ImageFeatureStore implements AutoCloseable {
    /**
     * Most LLaVA-1.5 images stacked into one vision-tower call ({@code -Dretina.visionBatch}, default 16); more are
     * split. It bounds the encoder's activations, which the KV cache profile reserves. When {@code ClipVisionTower}
     * kept every layer's temporaries until the call ended (about 1.4 GB per 336-pixel float16 image), 4 was the
     * compromise. The tower now frees each layer's temporaries and uses flash attention on CUDA, so on the H200 a
     * batch of 16 reserves only ~1.3k tokens more of KV cache than 4 did, and one call serves a whole 8192-token
     * prompt step (~13 images): the tower took 1.5 ms per image at 11 images against 15.8 ms for one
     * (docs/BENCHMARKS.md).
     */
    static final int MAX_IMAGES_PER_ENCODE = Integer.getInteger("retina.visionBatch", 16);

    /** A request's encoded images and where their tokens sit in the prompt. */
    private record RequestImages(NDManager manager, NDArray imageFeatures /* (numImagePositions, textHidden) */,
                                 int[] imageTokenPositions /* ascending prompt positions */) {
    }

    /**
     * One step's image-token feature rows and the batch rows (indices into the step's flattened tokens) they replace.
     */
    record StepImageFeatures(int[] batchPositions, NDArray batchIndex /* batchPositions, int64 on the device */,
                             NDArray imageFeatures /* (batchPositions.length, textHidden) */) {
    }

    private final LlavaModel model;
    private final int imageTokenId;
    private final Map<String, RequestImages> images = new HashMap<>();
    private final EncoderCache encoderCache;
    /**
     * The encoder's GPU time, read once the GPU has passed it (CUDA events) so that no encode makes the host wait; null
     * on the CPU, where an op has finished when it returns.
     */
    private final GpuSpans gpuSpans;
    // Written by the engine thread only; volatile so stats() reads them from any thread.
    private volatile long numEncoderPasses;
    private volatile long encoderNanos;
    private volatile long pixelNanos; // of encoderNanos (batched path): stacking pixels on the host and their upload
    private ByteBuffer staging;       // the batched path's pixel upload buffer, reused (engine thread only)
    private volatile long numCacheHits;
    private volatile long numCacheMisses;
    private volatile int numCachedImages;
    private volatile int numCachedTokens;

    /** @param encoderCacheSize capacity of the encoder-output cache in image tokens (feature rows); 0 disables it */
    ImageFeatureStore(LlavaModel model, int encoderCacheSize) {
        this.model = model;
        this.imageTokenId = model.config().imageTokenIndex();
        this.encoderCache = new EncoderCache(model.manager(), encoderCacheSize);
        this.gpuSpans = model.newGpuSpans();
    }

    /**
     * The image-token feature rows of this step's chunks (encoding a request's images on first need), in {@code step};
     * null when no chunk holds an image token.
     *
     * @param queryStartLoc each sequence's first row in the step's flattened tokens
     */
    StepImageFeatures forStep(NDManager step, List<ScheduledSequence> seqs, int[] queryStartLoc) {
        settleEncoderTime(false);
        try {
            return gather(step, seqs, queryStartLoc);
        } finally {
            numCachedImages = encoderCache.numImages();
            numCachedTokens = encoderCache.numTokens();
        }
    }

    /**
     * Adds the encoder's GPU time of the calls the GPU has finished (all of them with {@code await}, for a profile
     * whose step has synchronized) to the encoder time. A call's time thus counts by the next step at the latest.
     */
    void settleEncoderTime(boolean await) {
        if (gpuSpans != null) encoderNanos += await ? gpuSpans.awaitNanos() : gpuSpans.settledNanos();
    }

    /**
     * The step's image-token rows come from each request's image-token positions, known from its prompt before any
     * encode, so their index goes to the device first: an upload through DJL's create (the CPU, or
     * {@code -Dretina.asyncUploads=false}) waits for the device's queued work, and after the encode it would wait for
     * the vision tower. Nothing here waits for the encode; the merge and the forward pass queue behind it.
     */
    private StepImageFeatures gather(NDManager step, List<ScheduledSequence> seqs, int[] queryStartLoc) {
        List<ScheduledSequence> toEncode = new ArrayList<>();
        Map<String, int[]> fresh = new HashMap<>(); // image-token positions of the requests encoded this step
        for (ScheduledSequence seq : seqs)
            if (!seq.images().isEmpty() && seq.hasPromptTokens() && !images.containsKey(seq.requestId())
                    && !fresh.containsKey(seq.requestId())) {
                toEncode.add(seq);
                fresh.put(seq.requestId(), imagePositions(seq));
            }
        List<Integer> batchPositions = new ArrayList<>();
        List<int[]> chunks = new ArrayList<>(); // {sequence, first feature row, end feature row}
        for (int s = 0; s < seqs.size(); s++) {
            ScheduledSequence seq = seqs.get(s);
            if (seq.images().isEmpty() || !seq.hasPromptTokens()) continue;
            RequestImages held = images.get(seq.requestId());
            int[] positions = held != null ? held.imageTokenPositions() : fresh.get(seq.requestId());
            int from = lowerBound(positions, seq.startPosition());
            int to = lowerBound(positions, Math.min(seq.seqLen(), seq.promptTokenIds().length));
            if (from == to) continue;
            for (int r = from; r < to; r++) batchPositions.add(queryStartLoc[s] + positions[r] - seq.startPosition());
            chunks.add(new int[] {s, from, to});
        }
        int[] rowsOut = batchPositions.stream().mapToInt(Integer::intValue).toArray();
        NDArray index = rowsOut.length == 0 ? null : model.imageTokenIndex(rowsOut, step);
        if (!toEncode.isEmpty()) encode(toEncode, fresh);
        if (rowsOut.length == 0) return null;
        NDList featureRows = new NDList();
        for (int[] c : chunks) {
            NDArray slice = images.get(seqs.get(c[0]).requestId()).imageFeatures().get(c[1] + ":" + c[2]);
            slice.attach(step); // a view; owned by this step, not the request
            featureRows.add(slice);
        }
        NDArray rows = featureRows.size() == 1 ? featureRows.get(0) : NDArrays.concat(featureRows, 0);
        return new StepImageFeatures(rowsOut, index, rows);
    }

    /**
     * Encodes the images of the requests first fed this step and keeps them per request. Images the vision tower
     * must see are stacked (LLaVA-1.5: (N, 3, H, W)) and run in as few {@link LlavaModel#encodeImages} calls as
     * {@link #MAX_IMAGES_PER_ENCODE} allows; LLaVA-NeXT tiled images still run one image (all its tiles) a call.
     */
    private void encode(List<ScheduledSequence> seqs, Map<String, int[]> positions) {
        // Encoder temporaries live in enc and go at once; only the final features move to each request's manager.
        try (NDManager enc = model.manager().newSubManager()) {
            List<NDArray[]> perRequest = new ArrayList<>(seqs.size());
            List<ImageInput> pending = new ArrayList<>();       // images for the batched vision tower, in order
            List<NDArray[]> pendingSlots = new ArrayList<>();   // where each pending image's features go
            List<Integer> pendingIndex = new ArrayList<>();
            Map<String, Integer> pendingByHash = new HashMap<>(); // a repeated image within the step encodes once
            List<Runnable> afterEncode = new ArrayList<>();
            for (ScheduledSequence seq : seqs) {
                NDArray[] features = new NDArray[seq.images().size()];
                perRequest.add(features);
                for (int i = 0; i < features.length; i++) {
                    ImageInput image = seq.images().get(i);
                    if (image.imageFeatures() != null || image.isTiled()) {
                        features[i] = featuresOf(image, enc);
                        continue;
                    }
                    String hash = image.contentHash();
                    if (hash != null && pendingByHash.containsKey(hash)) {
                        numCacheHits++; // as if the earlier copy had been encoded and cached first
                        int at = pendingByHash.get(hash);
                        int slot = i;
                        afterEncode.add(() -> features[slot] = pendingFeature(pendingSlots, pendingIndex, at).duplicate());
                        continue;
                    }
                    NDArray cached = encoderCache.get(hash, enc);
                    if (cached != null) {
                        numCacheHits++;
                        features[i] = cached;
                        continue;
                    }
                    if (hash != null) {
                        numCacheMisses++;
                        // One-at-a-time, a repeat would have hit the cache entry the first one left, if kept.
                        if (encoderCache.keeps(image.numImageTokens())) pendingByHash.put(hash, pending.size());
                    }
                    pending.add(image);
                    pendingSlots.add(features);
                    pendingIndex.add(i);
                }
            }
            encodeBatched(pending, pendingSlots, pendingIndex, enc);
            for (Runnable r : afterEncode) r.run();
            for (int r = 0; r < seqs.size(); r++) {
                NDArray[] features = perRequest.get(r);
                NDManager m = model.manager().newSubManager();
                try {
                    NDArray all = features.length == 1 ? features[0] : NDArrays.concat(new NDList(features), 0);
                    all = all.toType(model.dtype(), false).toDevice(model.device(), false);
                    all.attach(m);
                    String id = seqs.get(r).requestId();
                    images.put(id, new RequestImages(m, all, positions.get(id)));
                } catch (RuntimeException e) {
                    m.close();
                    throw e;
                }
            }
        }
    }

    private static NDArray pendingFeature(List<NDArray[]> slots, List<Integer> index, int at) {
        return slots.get(at)[index.get(at)];
    }

    /**
     * Runs the vision tower over {@code pending} (untiled pixel images, all the model's input size) in batches of at
     * most {@link #MAX_IMAGES_PER_ENCODE}; image k's (numImageTokens, textHidden) features land in
     * {@code slots.get(k)[index.get(k)]} and, by content hash, in the encoder cache.
     */
    private void encodeBatched(List<ImageInput> pending, List<NDArray[]> slots, List<Integer> index, NDManager enc) {
        long hidden = model.config().textConfig().hiddenSize();
        for (int from = 0; from < pending.size(); from += MAX_IMAGES_PER_ENCODE) {
            int to = Math.min(pending.size(), from + MAX_IMAGES_PER_ENCODE);
            NDArray features = encodePixels(pending.subList(from, to), enc); // (n, numImageTokens, textHidden)
            for (int k = from; k < to; k++) {
                ImageInput image = pending.get(k);
                NDArray one = features.get(k - from); // (numImageTokens, textHidden)
                if (one.getShape().size() / hidden != image.numImageTokens())
                    throw new IllegalArgumentException("image gives " + one.getShape().size() / hidden
                            + " feature rows, its placeholder has " + image.numImageTokens());
                numEncoderPasses++;
                encoderCache.put(image.contentHash(), one);
                slots.get(k)[index.get(k)] = one;
            }
        }
    }

    /** One vision-tower call over untiled images of one size: (n, 3, H, W) stacked on the host, one transfer. */
    private NDArray encodePixels(List<ImageInput> batch, NDManager enc) {
        long t0 = System.nanoTime();
        ImageInput first = batch.getFirst();
        int perImage = 3 * first.height() * first.width();
        for (ImageInput image : batch)
            if (image.pixelValues().length != perImage)
                throw new IllegalArgumentException("image pixel sizes differ within a batch");
        Shape shape = new Shape(batch.size(), 3, first.height(), first.width());
        NDArray uploaded = model.uploadPixels(batch.stream().map(ImageInput::pixelValues).toList(), shape, enc);
        if (uploaded != null) { // the GPU: page-locked staging, the copy queued without waiting for the device
            long t1 = System.nanoTime();
            pixelNanos += t1 - t0;
            return encodedFeatures(timed(() -> model.encodeImages(uploaded), t0, t1), batch.size());
        }
        // Stacked straight into a reused direct buffer: one host copy per image and no fresh zeroed buffer per call
        // (DJL's create(float[]) makes both). On a GPU libtorch copies it to the device before create returns; on the
        // CPU the array aliases the buffer, which is safe because the tower has read it before the next call refills it.
        long bytes = (long) batch.size() * perImage * Float.BYTES;
        if (staging == null || staging.capacity() < bytes)
            staging = ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.nativeOrder());
        FloatBuffer floats = staging.clear().asFloatBuffer();
        for (ImageInput image : batch) floats.put(image.pixelValues());
        NDArray pixelValues = enc.create(staging.limit(Math.toIntExact(bytes)), shape, DataType.FLOAT32);
        long t1 = System.nanoTime();
        pixelNanos += t1 - t0;
        return encodedFeatures(timed(() -> model.encodeImages(pixelValues), t0, t1), batch.size());
    }

    /** The encoder's output of {@code n} images as (n, numImageTokens, textHidden). */
    private NDArray encodedFeatures(NDArray features, int n) {
        long hidden = model.config().textConfig().hiddenSize();
        return features.reshape(n, features.getShape().size() / hidden / n, hidden);
    }

    /**
     * Runs one encoder call and counts its time without waiting for the device: on the GPU the host's time from
     * {@code hostStart} to {@code gpuStart} (stacking and uploading pixels) now, and the call's GPU time once the GPU
     * has passed it ({@link #settleEncoderTime}); on the CPU, where ops finish before they return, the wall time.
     */
    private NDArray timed(java.util.function.Supplier<NDArray> call, long hostStart, long gpuStart) {
        if (gpuSpans == null) {
            NDArray out = call.get();
            encoderNanos += System.nanoTime() - hostStart;
            return out;
        }
        encoderNanos += gpuStart - hostStart;
        gpuSpans.begin();
        try {
            return call.get();
        } finally {
            gpuSpans.end();
        }
    }

    /** Profiling only: one vision-tower call over {@code numImages} copies of {@code image} (the encoder's peak). */
    void profileEncoder(ImageInput image, int numImages) {
        try (NDManager enc = model.manager().newSubManager()) {
            encodePixels(Collections.nCopies(numImages, image), enc);
        }
    }

    private int[] imagePositions(ScheduledSequence seq) {
        int[] prompt = seq.promptTokenIds();
        int[] imagePositions = IntStream.range(0, prompt.length).filter(i -> prompt[i] == imageTokenId).toArray();
        int expected = seq.images().stream().mapToInt(ImageInput::numImageTokens).sum();
        if (imagePositions.length != expected)
            throw new IllegalArgumentException("request " + seq.requestId() + ": " + imagePositions.length
                    + " image tokens in the prompt, images need " + expected);
        return imagePositions;
    }

    /**
     * One image's features, one at a time: precomputed ones as given; otherwise from the encoder cache by content
     * hash, or from the vision tower (LLaVA-NeXT tiles packed with the original size, or a single LLaVA-1.5 image),
     * then cached. The batched path is {@link #encode(List)}; this one serves tiled and precomputed images.
     *
     * @return (numImageTokens, textHidden) in {@code enc}
     */
    NDArray featuresOf(ImageInput image, NDManager enc) {
        long hidden = model.config().textConfig().hiddenSize();
        if (image.imageFeatures() != null) // shape checked in LlavaModelRunner.checkRequest
            return enc.create(image.imageFeatures(), new Shape(image.numImageTokens(), hidden));
        NDArray cached = encoderCache.get(image.contentHash(), enc);
        if (cached != null) {
            numCacheHits++;
            return cached;
        }
        if (image.contentHash() != null) numCacheMisses++;
        NDArray pixelValues = enc.create(image.pixelValues(),
                new Shape(image.numTiles(), 3, image.height(), image.width())); // (numTiles, 3, H, W)
        long t0 = System.nanoTime();
        NDArray features = timed(() -> image.isTiled()
                ? model.encodeImage(pixelValues, image.imageHeight(), image.imageWidth())
                : model.encodeImages(pixelValues), t0, t0);
        if (!image.isTiled()) features = features.reshape(features.getShape().size() / hidden, hidden);
        numEncoderPasses++;
        if (features.getShape().get(0) != image.numImageTokens())
            throw new IllegalArgumentException("image gives " + features.getShape().get(0)
                    + " feature rows, its placeholder has " + image.numImageTokens());
        encoderCache.put(image.contentHash(), features);
        return features;
    }

    /** Features of untiled pixel {@code images} through the batched path, concatenated (numTokens, textHidden); tests. */
    NDArray encodeStacked(List<ImageInput> images, NDManager into) {
        NDArray[] out = new NDArray[images.size()];
        List<NDArray[]> slots = new ArrayList<>();
        List<Integer> index = new ArrayList<>();
        for (int i = 0; i < out.length; i++) {
            slots.add(out);
            index.add(i);
        }
        encodeBatched(images, slots, index, into);
        return NDArrays.concat(new NDList(out), 0);
    }

    /** Features of {@code images} encoded one at a time (the unbatched reference, for tests). */
    NDArray encodeOneAtATime(List<ImageInput> images, NDManager into) {
        NDList out = new NDList();
        for (ImageInput image : images) out.add(featuresOf(image, into));
        return NDArrays.concat(out, 0);
    }

    /** Vision-encoder counters (images encoded, cache hits and misses); safe from any thread. */
    EncoderCacheStats stats() {
        return new EncoderCacheStats(numEncoderPasses, numCacheHits, numCacheMisses, numCachedImages, numCachedTokens,
                encoderNanos);
    }

    /** Nanoseconds the batched path spent stacking pixels and uploading them (part of the encoder time); profiling. */
    long pixelNanos() {
        return pixelNanos;
    }

    /** Releases a finished request's features (a no-op for a request that holds none). */
    void drop(String requestId) {
        RequestImages ri = images.remove(requestId);
        if (ri != null) ri.manager().close();
    }

    /** Requests whose image features are held. */
    int numRequests() { return images.size(); }

    private static int lowerBound(int[] sorted, int key) {
        int i = Arrays.binarySearch(sorted, key);
        return i >= 0 ? i : -i - 1;
    }

    @Override
    public void close() {
        for (RequestImages ri : images.values()) ri.manager().close();
        images.clear();
        encoderCache.close();
    }
}

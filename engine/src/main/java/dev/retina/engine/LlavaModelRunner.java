package dev.retina.engine;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import dev.retina.engine.model.DeviceUploads;
import dev.retina.engine.model.ForwardBatch;
import dev.retina.engine.model.KvCache;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.engine.model.LlavaModel;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The real {@link ModelRunner}: turns a {@link SchedulerOutput} into one {@link ForwardBatch} over the paged KV cache
 * (token embeddings with image features placed at image-token positions), runs the LLaVA forward pass and samples
 * with the {@link Sampler}. Called only from the engine thread.
 *
 * <p>Images: the {@link ImageFeatureStore} it owns encodes each request's images the first time its prompt tokens are
 * fed (batched through the vision tower, looked up in the encoder cache first) and holds them until the request
 * appears in {@link SchedulerOutput#finishedRequestIds()}; each step this runner places the feature rows of the image
 * tokens its chunks hold. {@link #encoderCacheStats()} counts vision-tower passes, cache hits and misses.
 *
 * <p>Owns the KV cache and the image features (closed in {@link #close()}); the model stays the caller's to close.
 */
public final class LlavaModelRunner implements ModelRunner {
    private static final Logger log = LoggerFactory.getLogger(LlavaModelRunner.class);
    private final LlavaModel model;
    private final KvCache cache;
    private final int blockSize;
    private final int imageTokenId;
    private final Sampler sampler;
    private final ImageFeatureStore imageFeatures;
    private final StepProfile profile = Boolean.getBoolean("retina.stepProfile") ? new StepProfile() : null;
    private final long[] lastStepNanos = new long[3]; // inputs, forward call, sampling of the last step (host clock)

    /** Default capacity of the encoder cache, in image tokens (about 28 LLaVA-1.5 images). */
    public static final int DEFAULT_ENCODER_CACHE_SIZE = 16384;

    /** Most LLaVA-1.5 images stacked into one vision-tower call: {@link ImageFeatureStore#MAX_IMAGES_PER_ENCODE}. */
    static final int MAX_IMAGES_PER_ENCODE = ImageFeatureStore.MAX_IMAGES_PER_ENCODE;

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
        this.imageFeatures = new ImageFeatureStore(model, encoderCacheSize);
        this.sampler = new Sampler(model.deviceUploads());
    }

    public KvCache cache() { return cache; }

    /**
     * Captures the decode-step CUDA graphs for batches up to {@code maxNumSeqs}, then the vision tower's (GPU only; a
     * no-op elsewhere).
     */
    public void warmUpDecodeGraphs(int maxNumSeqs) {
        long t0 = System.nanoTime();
        int steps = model.warmUpDecodeGraphs(cache, maxNumSeqs);
        if (steps > 0)
            log.info("decode CUDA graphs captured for {} batch sizes up to {} in {} ms", steps, maxNumSeqs,
                    (System.nanoTime() - t0) / 1_000_000);
        long t1 = System.nanoTime();
        int calls = model.warmUpVisionGraphs();
        if (calls > 0)
            log.info("vision tower CUDA graphs captured for 1 to {} images in {} ms", calls,
                    (System.nanoTime() - t1) / 1_000_000);
    }

    @Override
    public long[] lastStepNanos() {
        return lastStepNanos.clone();
    }

    @Override
    public RunnerOutput execute(SchedulerOutput so) {
        return submit(so, null).await();
    }

    /** On a GPU (unless step profiling, which synchronizes each phase): see {@link #submit}. */
    @Override
    public boolean canRunAhead() {
        return model.deviceUploads() != null && profile == null;
    }

    /**
     * Queues the step. On a GPU, a step whose every sampling sequence can be sampled on the device (no logprobs)
     * returns as soon as its work is queued: the chosen ids stay on the device, and one page-locked copy brings them
     * to the host when {@link PendingStep#await} asks. A run-ahead step's tokens ({@link
     * ScheduledSequence#FROM_PREVIOUS_STEP}) are then read on the device from {@code previous}'s ids by the decode
     * graph; where the step does not take that path, they are read back from previous first.
     */
    @Override
    public PendingStep submit(SchedulerOutput so, PendingStep previous) {
        long inputsStart = System.nanoTime();
        for (String requestId : so.finishedRequestIds()) imageFeatures.drop(requestId);
        List<ScheduledSequence> scheduled = so.sequences();
        int numSeqs = scheduled.size();
        int[] order = decodesFirst(scheduled); // batch row -> index in the scheduler's list
        List<ScheduledSequence> seqs = new ArrayList<>(numSeqs);
        for (int index : order) seqs.add(scheduled.get(index));
        int numTokens = so.numBatchedTokens();
        int[] inputIds = new int[numTokens];
        int[] positions = new int[numTokens];
        int[] slotMapping = new int[numTokens];
        int[] queryStartLoc = new int[numSeqs + 1];
        int[] seqLens = new int[numSeqs];
        int[][] blockTables = new int[numSeqs][];
        int[] logitsIndices = new int[numSeqs];
        boolean fed = false;
        int t = 0;
        for (int s = 0; s < numSeqs; s++) {
            ScheduledSequence seq = seqs.get(s);
            fed |= seq.fedFromPreviousStep();
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
        }
        // Sampling goes in the scheduler's order (RunnerOutput's contract); rows are where each sits in the batch.
        int[] batchRow = new int[numSeqs];
        for (int row = 0; row < numSeqs; row++) batchRow[order[row]] = row;
        List<Integer> samplingRows = new ArrayList<>();
        List<ScheduledSequence> samplingSeqs = new ArrayList<>();
        boolean inOrder = true;
        for (int i = 0; i < numSeqs; i++) {
            ScheduledSequence seq = scheduled.get(i);
            if (!seq.sample()) continue;
            inOrder &= batchRow[i] == samplingRows.size();
            samplingRows.add(batchRow[i]);
            samplingSeqs.add(seq);
        }
        queryStartLoc[numSeqs] = t;
        ForwardBatch batch = new ForwardBatch(positions, slotMapping, queryStartLoc, seqLens, blockTables, logitsIndices);

        boolean prompt = numTokens > numSeqs;
        long t0 = profile != null ? profile.start() : 0;
        long encoder0 = profile != null ? imageFeatures.stats().encoderNanos() : 0;
        long pixels0 = profile != null ? imageFeatures.pixelNanos() : 0;
        NDManager step = model.manager().newSubManager();
        try {
            // A step with prompt tokens always embeds here: its ids and attention metadata go up before any image is
            // encoded. On the GPU the uploads wait for nothing (page-locked staging); through DJL's create each would
            // wait for the device's queued work, the encode included had it been queued first. ImageFeatureStore
            // uploads the merge's index before the encode too and never waits for it, so the GPU goes from the vision
            // tower to the merge and the prefill without waiting on the host.
            NDArray ids = prompt ? model.uploadTokenIds(inputIds, step) : null;
            LlavaModel.PreparedStep prepared = prompt ? model.prepare(batch, cache, step) : null;
            ImageFeatureStore.StepImageFeatures stepImages = imageFeatures.forStep(step, seqs, queryStartLoc);
            long t1 = profile != null ? profile.mark(model) : 0;
            if (profile != null) imageFeatures.settleEncoderTime(true); // the device has synced: this step's calls
            if (profile != null)
                profile.encoder(imageFeatures.stats().encoderNanos() - encoder0, imageFeatures.pixelNanos() - pixels0);
            // A text-only decode step goes from token ids straight into a replayed CUDA graph where the GPU path has
            // one (null otherwise); every other step embeds here. A run-ahead step's ids come from the previous
            // step's samples on the device where the graph takes them.
            long forwardStart = System.nanoTime();
            NDArray logits = null;
            if (stepImages == null) {
                NDArray deviceIds = fed && !prompt ? fedIds(seqs, previous, step) : null;
                logits = deviceIds != null ? model.forwardTokens(deviceIds, batch, cache, step) : null;
                if (logits == null && fed) resolveOnHost(inputIds, seqs, queryStartLoc, previous);
                if (logits == null) logits = model.forwardTokens(inputIds, batch, cache, step);
            } else if (fed) {
                resolveOnHost(inputIds, seqs, queryStartLoc, previous);
            }
            if (logits == null) {
                NDArray inputsEmbeds = model.embedTokens(ids != null ? ids : model.uploadTokenIds(inputIds, step));
                if (stepImages != null)
                    model.mergeImageFeatures(inputsEmbeds, stepImages.batchIndex(), stepImages.batchPositions().length,
                            stepImages.imageFeatures());
                logits = prepared != null ? model.forward(inputsEmbeds, prepared, cache)  // (numSeqs, vocab) float32
                        : model.forward(inputsEmbeds, batch, cache);
            }
            long t2 = profile != null ? profile.mark(model) : 0;
            long sampleStart = System.nanoTime();
            RunnerOutput out = null;
            NDArray chosen = null;
            if (samplingSeqs.isEmpty()) {
                out = new RunnerOutput(new int[0], List.of());
            } else {
                if (samplingSeqs.size() < numSeqs || !inOrder) {
                    long[] rows = samplingRows.stream().mapToLong(Integer::longValue).toArray();
                    logits = logits.get(new NDIndex("{}", step.create(rows)));
                }
                if (model.deviceUploads() != null && !Sampler.wantsLogprobs(samplingSeqs))
                    chosen = sampler.sampleIds(logits, samplingSeqs); // stays on the device; awaited later
                else
                    out = sampler.sample(logits, samplingSeqs);
            }
            if (profile != null) profile.add(prompt, t0, t1, t2, profile.mark(model), numTokens);
            lastStepNanos[0] = forwardStart - inputsStart;
            lastStepNanos[1] = sampleStart - forwardStart;
            lastStepNanos[2] = System.nanoTime() - sampleStart;
            if (out != null) {
                step.close();
                return PendingStep.done(so, out);
            }
            Queued queued = new Queued(so, step, chosen, model.deviceUploads().longsToHost(chosen));
            step = null; // the queued step closes it
            return queued;
        } finally {
            if (step != null) step.close();
        }
    }

    /**
     * The device ids of a run-ahead step's rows (all fed, in row order): previous's chosen ids, gathered where the rows
     * are not previous's sampling rows in order. Null where previous keeps none on the device (its tokens are then
     * read back on the host).
     */
    private NDArray fedIds(List<ScheduledSequence> rows, PendingStep previous, NDManager step) {
        if (!(previous instanceof Queued q) || q.chosen == null) return null;
        java.util.Map<Long, Integer> index = new java.util.HashMap<>();
        int k = 0;
        for (ScheduledSequence s : q.schedulerOutput().sequences()) if (s.sample()) index.put(s.seqId(), k++);
        long[] pick = new long[rows.size()];
        boolean identity = rows.size() == k;
        for (int r = 0; r < rows.size(); r++) {
            ScheduledSequence s = rows.get(r);
            Integer at = s.fedFromPreviousStep() ? index.get(s.seqId()) : null;
            if (at == null) return null;
            pick[r] = at;
            identity &= at == r;
        }
        if (identity) return q.chosen;
        return q.chosen.get(new NDIndex("{}", model.deviceUploads().longs(pick, step))); // an upload that never waits
    }

    /** Writes previous's tokens into the fed rows' input ids (waiting for them). */
    private static void resolveOnHost(int[] inputIds, List<ScheduledSequence> rows, int[] queryStartLoc,
                                      PendingStep previous) {
        if (previous == null) throw new IllegalStateException("a run-ahead step without the step before it");
        SchedulerOutput resolved = ScheduledSequence.resolve(new SchedulerOutput(rows, inputIds.length, List.of(),
                java.util.Set.of()), previous.schedulerOutput(), previous.await());
        for (int r = 0; r < rows.size(); r++)
            if (rows.get(r).fedFromPreviousStep()) inputIds[queryStartLoc[r]] = resolved.sequences().get(r).tokenIds()[0];
    }

    /** A step whose chosen ids are on their way to the host; its NDManager lives until they have come back. */
    private static final class Queued implements PendingStep {
        private final SchedulerOutput so;
        private NDManager step;
        private NDArray chosen; // (samplingSeqs) int64 on the device, until awaited
        private final DeviceUploads.Download download;
        private RunnerOutput out;
        private RuntimeException failure;

        Queued(SchedulerOutput so, NDManager step, NDArray chosen, DeviceUploads.Download download) {
            this.so = so;
            this.step = step;
            this.chosen = chosen;
            this.download = download;
        }

        @Override
        public SchedulerOutput schedulerOutput() { return so; }

        @Override
        public RunnerOutput await() {
            if (out != null) return out;
            if (failure != null) throw failure;
            try {
                out = new RunnerOutput(Sampler.toInts(download.longs()), null);
                return out;
            } catch (RuntimeException e) {
                failure = e;
                throw e;
            } finally {
                chosen = null;
                step.close();
            }
        }
    }

    /**
     * {@code -Dretina.stepProfile=true}: wall time of each step's phases (image encoding, forward, sampling), the
     * device synchronized after each so the times are the GPU's; split by steps with prompt tokens and decode-only
     * steps, logged (means and medians; warm-up steps included) when the runner closes. Off by default: the
     * synchronizations cost overlap.
     */
    private static final class StepProfile {
        private final List<List<double[]>> steps = List.of(new ArrayList<>(), new ArrayList<>());
        private double encoderMs;   // this step's vision-tower calls (pixels included), set before add
        private double pixelMs;     // of which stacking and uploading pixels
        private double totalEncoderMs;
        private double totalPixelMs;
        private long imageSteps;

        void encoder(long encoderNanos, long pixelNanos) {
            encoderMs = encoderNanos / 1e6;
            pixelMs = pixelNanos / 1e6;
        }

        long start() {
            return System.nanoTime();
        }

        long mark(LlavaModel model) {
            model.synchronizeDevice();
            return System.nanoTime();
        }

        void add(boolean prompt, long t0, long t1, long t2, long t3, int numTokens) {
            steps.get(prompt ? 0 : 1).add(new double[] {(t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, numTokens});
            if (encoderMs > 0) {
                imageSteps++;
                totalEncoderMs += encoderMs;
                totalPixelMs += pixelMs;
            }
            encoderMs = 0;
            pixelMs = 0;
        }

        boolean hasSteps() {
            return !steps.get(0).isEmpty() || !steps.get(1).isEmpty();
        }

        @Override
        public String toString() {
            StringBuilder b = new StringBuilder("step profile (device synchronized per phase; ms per step, mean / median):");
            String[] names = {"with prompt tokens", "decode-only"};
            for (int k = 0; k < 2; k++) {
                List<double[]> list = steps.get(k);
                if (list.isEmpty()) continue;
                b.append(String.format(java.util.Locale.ROOT, " %s: %d steps, %.1f tokens each, encode images %s,"
                        + " forward %s, sample %s;", names[k], list.size(), stat(list, 3)[0], fmt(stat(list, 0)),
                        fmt(stat(list, 1)), fmt(stat(list, 2))));
            }
            if (imageSteps > 0)
                b.append(String.format(java.util.Locale.ROOT, " in the %d steps that encoded images, vision-tower calls"
                        + " took %.2f ms per step, of which stacking and uploading pixels %.2f;", imageSteps,
                        totalEncoderMs / imageSteps, totalPixelMs / imageSteps));
            return b.toString();
        }

        private static double[] stat(List<double[]> list, int column) {
            double[] v = list.stream().mapToDouble(x -> x[column]).sorted().toArray();
            double mean = java.util.Arrays.stream(v).average().orElse(0);
            return new double[] {mean, v[v.length / 2]};
        }

        private static String fmt(double[] meanMedian) {
            return String.format(java.util.Locale.ROOT, "%.2f / %.2f", meanMedian[0], meanMedian[1]);
        }
    }

    /**
     * The batch order: one-token sequences (decodes) first, then the rest, each group in the scheduler's order, so a
     * mixed step's decodes form the prefix the model's paged decode kernel takes. Returns, per batch row, the index
     * of its sequence in {@code scheduled}.
     */
    static int[] decodesFirst(List<ScheduledSequence> scheduled) {
        int n = scheduled.size();
        int[] order = new int[n];
        int row = 0;
        for (int i = 0; i < n; i++) if (scheduled.get(i).numNewTokens() == 1) order[row++] = i;
        for (int i = 0; i < n; i++) if (scheduled.get(i).numNewTokens() != 1) order[row++] = i;
        return order;
    }

    /** Profiling only: one vision-tower call over {@code numImages} copies of {@code image} (the encoder's peak). */
    void profileEncoder(ImageInput image, int numImages) {
        imageFeatures.profileEncoder(image, numImages);
    }

    /** Features of untiled pixel {@code images} through the batched path, concatenated (numTokens, textHidden); tests. */
    NDArray encodeStacked(List<ImageInput> images, NDManager into) {
        return imageFeatures.encodeStacked(images, into);
    }

    /** Features of {@code images} encoded one at a time (the unbatched reference, for tests). */
    NDArray encodeOneAtATime(List<ImageInput> images, NDManager into) {
        return imageFeatures.encodeOneAtATime(images, into);
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
        return imageFeatures.stats();
    }

    /** Requests whose image features are held (for tests and metrics). */
    public int numRequestsWithImages() { return imageFeatures.numRequests(); }

    @Override
    public void close() {
        if (profile != null && profile.hasSteps()) log.info("{}", profile);
        if (Boolean.getBoolean("retina.graphTiming")) log.info("decode graphs: {}", model.cudaGraphStats());
        imageFeatures.close();
        cache.close();
    }
}

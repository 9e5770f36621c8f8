package dev.retina.examples;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.retina.engine.model.ForwardBatch;
import dev.retina.engine.model.KvCache;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.LoadFormat;
import dev.retina.engine.model.ModelLoadConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Times Retina's LLaVA forward pass with random weights of a real shape ({@link LoadFormat#DUMMY}): one image's
 * vision encode, a batch-1 prefill, and decode steps at several batch sizes over fixed-length contexts. Each timed
 * call ends by pulling a result to the host, so the time covers the GPU work. Decode contexts are not filled by a
 * real prefill (the cache holds zeros): attention reads the same number of K/V rows either way, so the cost is the
 * same. Prints medians; a measurement, not a test.
 *
 * <pre>java -cp ... dev.retina.examples.DecodeBench --config examples/configs/llava-1.5-7b --device gpu \
 *     --dtype float16 --batches 1,8,32,64 --context 606 --kernels all</pre>
 * ({@code --kernels}: djl, libtorch, native, both = djl + native, all = the three)
 */
public final class DecodeBench {
    private static final int BLOCK_SIZE = 16;
    /** --tune-prefill true: after the prefill's timing, tune its GEMMs at the context's rows and time it again. */
    private static boolean tunePrefill;

    private DecodeBench() {}

    public static void main(String[] args) throws Exception {
        Path config = Path.of("examples/configs/llava-1.5-7b");
        Device device = Device.cpu();
        DataType dtype = DataType.FLOAT32;
        int[] batches = {1, 8, 32, 64};
        int context = 606;
        int steps = 20;
        int warmup = 5;
        String kernels = "both";
        boolean compare = false;
        int mixedPrefill = 0;
        int[] encodeBatches = {};
        for (int i = 0; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--config" -> config = Path.of(v);
                case "--device" -> device = v.equals("gpu") ? Device.gpu() : Device.cpu();
                case "--dtype" -> dtype = v.equals("float16") ? DataType.FLOAT16 : DataType.FLOAT32;
                case "--batches" -> batches = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
                case "--context" -> context = Integer.parseInt(v);
                case "--steps" -> steps = Integer.parseInt(v);
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--kernels" -> kernels = v;
                case "--compare" -> compare = Boolean.parseBoolean(v);
                case "--mixed" -> mixedPrefill = Integer.parseInt(v);
                case "--tune-prefill" -> tunePrefill = Boolean.parseBoolean(v);
                case "--encode" -> encodeBatches = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        long t0 = System.nanoTime();
        try (LlavaModel model = LlavaModel.load(config, new ModelLoadConfig(device, dtype, LoadFormat.DUMMY, 0L))) {
            System.out.printf(Locale.ROOT, "loaded %s on %s as %s in %.1f s%n", config, device, dtype,
                    (System.nanoTime() - t0) / 1e9);
            // djl: DJL ops only; libtorch: + libtorch's flash attention / fused RMSNorm; native: + Retina's kernels
            // direct: native + the direct decode path (cuBLAS + Retina's kernels on raw addresses, no DJL op per layer),
            // as the engine runs it (split-K attention; the GEMV kernels as -Dretina.gemv says); direct-cublas: GEMMs in
            // cuBLAS; direct-gemv: the GEMV kernels (up to -Dretina.gemvMaxRows sequences, 1 by default); direct-nosplit: cuBLAS and no split-K;
            // direct-cublas and direct-nosplit replay decode steps as CUDA graphs (as -Dretina.cudaGraph says),
            // direct-eager launches them from the host (graphs off); graph: direct-eager then direct-cublas;
            // direct-nolt: graphs, GEMMs all cublasGemmEx (no cuBLASLt autotuning); lt: direct-nolt then direct-cublas
            List<String> modes = switch (kernels) {
                case "djl", "libtorch", "native", "direct", "direct-nosplit", "direct-cublas", "direct-gemv",
                     "direct-eager", "direct-nolt" ->
                        List.of(kernels);
                case "all" -> List.of("djl", "libtorch", "native", "direct-nosplit", "direct-cublas", "direct-gemv");
                case "new" -> List.of("native", "direct-cublas", "direct-gemv");
                case "graph" -> List.of("direct-eager", "direct-cublas");
                case "lt" -> List.of("direct-nolt", "direct-cublas");
                default -> List.of("djl", "native");
            };
            if (compare) compare(model, batches, context);
            if (mixedPrefill > 0) mixed(model, batches, context, mixedPrefill, steps, warmup);
            if (encodeBatches.length > 0) encode(model, encodeBatches, steps, warmup);
            for (String mode : modes) {
                // Same weights, other kernels (reloading 7B would cost more than the runs).
                mode(model, mode);
                run(device, dtype, mode, batches, context, steps, warmup, model);
            }
        }
    }

    private static void run(Device device, DataType dtype, String label, int[] batches, int context,
                            int steps, int warmup, LlavaModel model) {
        int side = model.config().visionConfig().imageSize();
        int vocab = model.config().textConfig().vocabSize();
        int maxBatch = Arrays.stream(batches).max().orElse(1);
        int maxLen = context + warmup + steps + 2;
        int blocksPerSeq = (maxLen + BLOCK_SIZE - 1) / BLOCK_SIZE;
        Random random = new Random(0);
        try (KvCache cache = model.newKvCache(maxBatch * blocksPerSeq, BLOCK_SIZE)) {
            // Vision encode of one image.
            float[] pixels = new float[3 * side * side];
            for (int i = 0; i < pixels.length; i++) pixels[i] = (float) random.nextGaussian();
            List<Double> encodeHost = new ArrayList<>(); // until encodeImages returns: every launch queued
            double encodeMs = median(warmup, steps, () -> {
                try (NDManager step = model.manager().newSubManager()) {
                    NDArray px = step.create(pixels, new Shape(1, 3, side, side));
                    long t = System.nanoTime();
                    NDArray features = model.encodeImages(px);
                    encodeHost.add((System.nanoTime() - t) / 1e6);
                    features.get(0, 0, 0).toType(DataType.FLOAT32, false).getFloat(); // sync
                }
            });
            // Prefill of one context-long prompt.
            int[] prompt = new int[context];
            for (int i = 0; i < context; i++) prompt[i] = random.nextInt(Math.min(vocab, 32000));
            int[] table0 = blockTable(0, blocksPerSeq);
            ForwardBatch prefill = ForwardBatch.single(0, context, table0, BLOCK_SIZE);
            List<Double> prefillHost = new ArrayList<>();
            if (Boolean.getBoolean("retina.directProfile")) {
                // one untimed prefill first: the profile then leaves out one-time setup (buffers, handles)
                try (NDManager step = model.manager().newSubManager()) {
                    model.forward(model.embedTokens(step.create(prompt)), prefill, cache).argMax(1).toLongArray();
                }
                model.directDecodeProfile();
            }
            Runnable timedPrefill = () -> {
                try (NDManager step = model.manager().newSubManager()) {
                    NDArray embeds = model.embedTokens(step.create(prompt));
                    long t = System.nanoTime();
                    NDArray logits = model.forward(embeds, prefill, cache);
                    prefillHost.add((System.nanoTime() - t) / 1e6);
                    logits.argMax(1).toLongArray(); // sync, as greedy sampling would
                }
            };
            double prefillMs = median(Math.min(warmup, 3), Math.min(steps, 10), timedPrefill);
            System.out.printf(Locale.ROOT, "[%s] encode 1 image: %.2f ms (host %.2f)   prefill %d tokens: %.2f ms (host"
                    + " %.2f)%n", label, encodeMs, medianOf(encodeHost, warmup), context, prefillMs,
                    medianOf(prefillHost, Math.min(warmup, 3)));
            if (Boolean.getBoolean("retina.directProfile") && label.startsWith("direct"))
                System.out.println("[" + label + "] " + model.visionHostProfile());
            if (Boolean.getBoolean("retina.directProfile") && label.startsWith("direct") && model.directPrefill())
                System.out.println("[" + label + "] prefill:\n" + model.directDecodeProfile());
            if (tunePrefill && label.startsWith("direct") && model.directPrefill()) {
                System.out.println("[" + label + "] prefill GEMMs tuned at m = " + context + ":\n"
                        + model.tunePrefillGemms(context));
                prefillHost.clear();
                double tunedMs = median(Math.min(warmup, 3), Math.min(steps, 10), timedPrefill);
                System.out.printf(Locale.ROOT, "[%s] prefill %d tokens with the tuned GEMMs: %.2f ms (host %.2f),"
                        + " before %.2f ms%n", label, context, tunedMs, medianOf(prefillHost, Math.min(warmup, 3)),
                        prefillMs);
                if (Boolean.getBoolean("retina.directProfile"))
                    System.out.println("[" + label + "] prefill, tuned GEMMs:\n" + model.directDecodeProfile());
            }
            if (label.startsWith("direct") && model.directPrefill()) {
                // The same prompt through the DJL-op layers: time and logits against the direct prefill's.
                float[][] logits = new float[2][];
                for (int on = 1; on >= 0; on--) {
                    model.setDirectPrefill(on == 1);
                    try (NDManager step = model.manager().newSubManager()) {
                        logits[on] = model.forward(model.embedTokens(step.create(prompt)), prefill, cache).toFloatArray();
                    }
                }
                double offMs = median(Math.min(warmup, 3), Math.min(steps, 10), () -> {
                    try (NDManager step = model.manager().newSubManager()) {
                        model.forward(model.embedTokens(step.create(prompt)), prefill, cache).argMax(1).toLongArray();
                    }
                });
                model.setDirectPrefill(true);
                if (Boolean.getBoolean("retina.directProfile")) model.directDecodeProfile(); // not a decode step's
                System.out.printf(Locale.ROOT, "[%s] prefill %d tokens through the DJL-op layers: %.2f ms; direct against"
                        + " it: %s%n", label, context, offMs, logitDiff(logits[1], logits[0], 1, vocab));
            }
            System.out.printf(Locale.ROOT, "[%s] %6s %10s %12s %14s%n", label, "batch", "ms/step", "out tok/s",
                    "host ms/step");
            for (int b : batches) {
                int[] ids = new int[b];
                for (int i = 0; i < b; i++) ids[i] = random.nextInt(Math.min(vocab, 32000));
                int[] stepNo = {0};
                int numSeqs = b;
                List<Double> hostMs = new ArrayList<>();
                double ms = median(warmup, steps, () -> {
                    // Each sequence's context grows by one per step, as in real decoding.
                    int pos = context + stepNo[0]++;
                    List<ForwardBatch> seqs = new ArrayList<>(numSeqs);
                    for (int s = 0; s < numSeqs; s++) {
                        int[] table = blockTable(s, blocksPerSeq);
                        seqs.add(ForwardBatch.single(pos, 1, table, BLOCK_SIZE));
                    }
                    ForwardBatch batch = ForwardBatch.concat(seqs.toArray(ForwardBatch[]::new));
                    try (NDManager step = model.manager().newSubManager()) {
                        long t0 = System.nanoTime();
                        // as the engine's runner: token ids into a replayed graph where there is one, else embed
                        NDArray logits = model.forwardTokens(ids, batch, cache, step);
                        if (logits == null) logits = model.forward(model.embedTokens(step.create(ids)), batch, cache);
                        hostMs.add((System.nanoTime() - t0) / 1e6); // launches queued (embedding included)
                        logits.argMax(1).toLongArray(); // sync: greedy tokens to the host
                    }
                });
                System.out.printf(Locale.ROOT, "[%s] %6d %10.2f %12.0f %14.2f%n", label, b, ms, b * 1000.0 / ms,
                        medianOf(hostMs.subList(warmup, hostMs.size()), 0));
                if (Boolean.getBoolean("retina.directProfile") && label.startsWith("direct"))
                    System.out.println(model.directDecodeProfile());
            }
        }
        if (label.startsWith("direct")) System.out.println("[" + label + "] " + model.cudaGraphStats());
        System.out.printf(Locale.ROOT, "[%s] device %s, dtype %s, context %d, median of %d after %d warm-up%n", label,
                device, dtype, context, steps, warmup);
    }

    private static void mode(LlavaModel model, String mode) {
        model.setNativeKernels(!mode.equals("djl"));
        model.setRetinaKernels(mode.equals("native") || mode.startsWith("direct"));
        model.setDirectDecode(mode.startsWith("direct"));
        model.setSplitKAttention(!mode.equals("direct-nosplit"));
        model.setGemv(mode.equals("direct-gemv") || (mode.equals("direct") && LlavaModel.GEMV_DEFAULT));
        model.setCudaGraph(!mode.equals("direct-eager") && !"false".equals(System.getProperty("retina.cudaGraph")));
        model.setCublasLt(!mode.equals("direct-nolt") && !"false".equals(System.getProperty("retina.cublasLt")));
    }

    /**
     * The direct decode path against the native one on a real cache: each sequence gets a random prompt prefilled
     * (distinct contents), then one decode step runs on each path from the same state (the step's K/V writes are
     * the same values at the same slots); prints the largest logit difference and whether greedy tokens agree.
     */
    private static void compare(LlavaModel model, int[] batches, int context) {
        int vocab = model.config().textConfig().vocabSize();
        int maxBatch = Arrays.stream(batches).max().orElse(1);
        int blocksPerSeq = (context + 2 + BLOCK_SIZE - 1) / BLOCK_SIZE;
        Random random = new Random(7);
        mode(model, "native");
        try (KvCache cache = model.newKvCache(maxBatch * blocksPerSeq, BLOCK_SIZE)) {
            int[] next = new int[maxBatch];
            for (int s = 0; s < maxBatch; s++) {
                int[] prompt = new int[context];
                for (int i = 0; i < context; i++) prompt[i] = random.nextInt(Math.min(vocab, 32000));
                try (NDManager step = model.manager().newSubManager()) {
                    NDArray logits = model.forward(model.embedTokens(step.create(prompt)),
                            ForwardBatch.single(0, context, blockTable(s, blocksPerSeq), BLOCK_SIZE), cache);
                    next[s] = (int) logits.argMax(1).toLongArray()[0];
                }
            }
            for (int b : batches) {
                List<ForwardBatch> seqs = new ArrayList<>(b);
                for (int s = 0; s < b; s++) seqs.add(ForwardBatch.single(context, 1, blockTable(s, blocksPerSeq), BLOCK_SIZE));
                ForwardBatch batch = ForwardBatch.concat(seqs.toArray(ForwardBatch[]::new));
                int[] ids = Arrays.copyOf(next, b);
                String[] paths = {"native", "direct-eager", "direct-cublas", "direct-gemv"};
                float[][] out = new float[paths.length][];
                for (int p = 0; p < paths.length; p++) {
                    mode(model, paths[p]);
                    // direct-cublas: a batch shape's first step runs eagerly and is captured; the second replays the
                    // graph (the step's K/V writes are the same values at the same slots both times)
                    int runs = paths[p].equals("direct-cublas") ? 2 : 1;
                    for (int r = 0; r < runs; r++) {
                        try (NDManager step = model.manager().newSubManager()) {
                            out[p] = model.forward(model.embedTokens(step.create(ids)), batch, cache).toFloatArray();
                        }
                    }
                }
                for (int p = 1; p < paths.length; p++) {
                    System.out.printf(Locale.ROOT, "[compare] batch %d, context %d: %s vs native %s%n", b, context,
                            paths[p], logitDiff(out[0], out[p], b, vocab));
                }
                System.out.printf(Locale.ROOT, "[compare] batch %d, context %d: graph replay vs eager direct %s%n", b,
                        context, logitDiff(out[1], out[2], b, vocab));
                // The runner's path: token ids in, the embedding lookup inside the graph (capture, then replay).
                mode(model, "direct-cublas");
                float[] tokens = null;
                for (int r = 0; r < 2; r++) {
                    try (NDManager step = model.manager().newSubManager()) {
                        NDArray logits = model.forwardTokens(ids, batch, cache, step);
                        tokens = logits == null ? null : logits.toFloatArray();
                    }
                }
                System.out.printf(Locale.ROOT, "[compare] batch %d, context %d: graph from token ids vs eager direct %s%n",
                        b, context, tokens == null ? "not taken" : logitDiff(out[1], tokens, b, vocab));
            }
        }
    }

    /**
     * Steps that mix decodes with prefill (as a serving engine's prompt steps do): {@code b} decodes at {@code context}
     * plus prompts of {@code context} tokens filling {@code prefillTokens}, with mixed attention on (decodes through the
     * paged kernel, only the prompts' contexts gathered) and off (every context gathered for flash attention). Prints
     * ms per step for both and how far their logits are apart. The cache holds random values (non-zero contexts). A
     * first row with no decodes times a prefill-only step (rotary and cache writes by Retina's kernel or by DJL ops).
     */
    private static void mixed(LlavaModel model, int[] batches, int context, int prefillTokens, int steps,
                              int warmup) {
        int vocab = model.config().textConfig().vocabSize();
        int maxBatch = Arrays.stream(batches).max().orElse(1);
        int numPrompts = Math.max(1, prefillTokens / context);
        int blocksPerSeq = (context + 1 + BLOCK_SIZE - 1) / BLOCK_SIZE;
        Random random = new Random(11);
        mode(model, "native");
        try (KvCache cache = model.newKvCache((maxBatch + numPrompts) * blocksPerSeq, BLOCK_SIZE)) {
            for (int l = 0; l < cache.numLayers(); l++) {
                for (NDArray layer : new NDArray[] {cache.keyCache(l), cache.valueCache(l)}) {
                    try (NDManager tmp = model.manager().newSubManager()) {
                        NDArray values = tmp.randomNormal(0f, 1f, layer.getShape(), DataType.FLOAT32)
                                .toType(layer.getDataType(), false);
                        layer.set(new ai.djl.ndarray.index.NDIndex(":"), values);
                    }
                }
            }
            int[] decodeCounts = new int[batches.length + 1]; // 0 first: a prefill-only step
            System.arraycopy(batches, 0, decodeCounts, 1, batches.length);
            for (int b : decodeCounts) {
                List<ForwardBatch> parts = new ArrayList<>();
                for (int s = 0; s < b; s++) parts.add(ForwardBatch.single(context, 1, blockTable(s, blocksPerSeq), BLOCK_SIZE));
                for (int p = 0; p < numPrompts; p++)
                    parts.add(ForwardBatch.single(0, context, blockTable(maxBatch + p, blocksPerSeq), BLOCK_SIZE));
                ForwardBatch batch = ForwardBatch.concat(parts.toArray(ForwardBatch[]::new));
                int[] ids = new int[batch.numTokens()];
                for (int i = 0; i < ids.length; i++) ids[i] = random.nextInt(Math.min(vocab, 32000));
                int rows = batch.numSeqs();
                float[][] out = new float[2][];
                double[] ms = new double[2];
                for (int on = 0; on < 2; on++) {
                    model.setMixedAttention(on == 1);
                    int which = on;
                    try (NDManager step = model.manager().newSubManager()) {
                        out[which] = model.forward(model.embedTokens(step.create(ids)), batch, cache).toFloatArray();
                    }
                    ms[which] = median(warmup, steps, () -> {
                        try (NDManager step = model.manager().newSubManager()) {
                            NDArray logits = model.forward(model.embedTokens(step.create(ids)), batch, cache);
                            logits.argMax(1).toLongArray();
                        }
                    });
                }
                System.out.printf(Locale.ROOT, "[mixed] %d decodes at context %d + %d prompts of %d: gather-all %.2f ms,"
                        + " mixed %.2f ms per step; %s%n", b, context, numPrompts, context, ms[0], ms[1],
                        logitDiff(out[0], out[1], rows, vocab));
            }
            model.setMixedAttention(true);
        }
    }

    /**
     * The vision tower plus projector on {@code n} stacked images, for each n: the pixel upload (a float array to a
     * device array, synchronized), then the encode (synchronized) through the direct tower and through the DJL-op
     * layers, timed apart, and the largest difference between their image features.
     */
    private static void encode(LlavaModel model, int[] counts, int steps, int warmup) {
        int side = model.config().visionConfig().imageSize();
        Random random = new Random(3);
        mode(model, "native");
        for (int n : counts) {
            float[] pixels = new float[n * 3 * side * side];
            for (int i = 0; i < pixels.length; i++) pixels[i] = (float) random.nextGaussian();
            Shape shape = new Shape(n, 3, side, side);
            double uploadMs = median(warmup, steps, () -> {
                try (NDManager step = model.manager().newSubManager()) {
                    step.create(pixels, shape).get(0, 0, 0, 0).getFloat(); // sync
                }
            });
            double[] encodeMs = new double[4];
            float[][] features = new float[4][];
            try (NDManager held = model.manager().newSubManager()) {
                NDArray px = held.create(pixels, shape);
                // 3: direct, CUDA graphs from the pixels; 2: graphs from DJL's embeddings; 1: direct eager; 0: DJL
                for (int direct = 3; direct >= 0; direct--) {
                    model.setDirectVision(direct >= 1);
                    model.setVisionGraphs(direct >= 2);
                    model.setVisionPixelGraphs(direct == 3);
                    encodeMs[direct] = median(warmup, steps, () -> {
                        try (NDManager step = model.manager().newSubManager()) {
                            NDArray f = model.encodeImages(px);
                            f.attach(step);
                            f.get(0, 0, 0).toType(DataType.FLOAT32, false).getFloat(); // sync
                        }
                    });
                    try (NDManager step = model.manager().newSubManager()) {
                        NDArray f = model.encodeImages(px);
                        f.attach(step);
                        features[direct] = f.toType(DataType.FLOAT32, false).toFloatArray();
                    }
                }
            }
            model.setDirectVision(true);
            model.setVisionGraphs(true);
            model.setVisionPixelGraphs(true);
            double maxDiff = 0;
            double graphDiff = 0;
            double pixelDiff = 0;
            double maxAbs = 0;
            for (int i = 0; i < features[0].length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(features[0][i] - features[1][i]));
                graphDiff = Math.max(graphDiff, Math.abs(features[2][i] - features[1][i]));
                pixelDiff = Math.max(pixelDiff, Math.abs(features[3][i] - features[1][i]));
                maxAbs = Math.max(maxAbs, Math.abs(features[0][i]));
            }
            System.out.printf(Locale.ROOT, "[encode] %d images: upload %.2f ms; vision tower + projector: direct %.2f ms"
                    + " (%.2f per image), direct as CUDA graphs (up to %s images) from DJL's embeddings %.2f ms, from"
                    + " the pixels %.2f ms, DJL-op layers %.2f ms (%.2f per image); max |dfeature| direct vs DJL %.3e,"
                    + " graph vs direct %.3e, graph from pixels vs direct %.3e (max |feature| %.2f)%n", n,
                    uploadMs, encodeMs[1], encodeMs[1] / n, System.getProperty("retina.visionGraphMaxImages", "2"),
                    encodeMs[2], encodeMs[3], encodeMs[0], encodeMs[0] / n, maxDiff, graphDiff, pixelDiff, maxAbs);
        }
    }

    /** The largest logit difference of {@code rows} rows of two runs, and how many rows' greedy tokens agree. */
    private static String logitDiff(float[] a, float[] b, int rows, int vocab) {
        double maxDiff = 0;
        double maxAbs = 0;
        int agree = 0;
        for (int s = 0; s < rows; s++) {
            int a0 = 0;
            int a1 = 0;
            for (int v = 0; v < vocab; v++) {
                float x = a[s * vocab + v];
                float y = b[s * vocab + v];
                maxDiff = Math.max(maxDiff, Math.abs(x - y));
                maxAbs = Math.max(maxAbs, Math.abs(x));
                if (x > a[s * vocab + a0]) a0 = v;
                if (y > b[s * vocab + a1]) a1 = v;
            }
            if (a0 == a1) agree++;
        }
        return String.format(Locale.ROOT, "max |dlogit| %.3e (max |logit| %.2f), greedy token equal %d/%d", maxDiff,
                maxAbs, agree, rows);
    }

    private static int[] blockTable(int seq, int blocksPerSeq) {
        int[] table = new int[blocksPerSeq];
        for (int i = 0; i < blocksPerSeq; i++) table[i] = seq * blocksPerSeq + i;
        return table;
    }

    /** Median of the values from index {@code from} on (the timed runs after warm-up). */
    private static double medianOf(List<Double> values, int from) {
        double[] v = values.subList(Math.min(from, values.size()), values.size()).stream()
                .mapToDouble(Double::doubleValue).sorted().toArray();
        return v.length == 0 ? Double.NaN : v[v.length / 2];
    }

    private static double median(int warmup, int steps, Runnable body) {
        for (int i = 0; i < warmup; i++) body.run();
        double[] ms = new double[steps];
        for (int i = 0; i < steps; i++) {
            long t = System.nanoTime();
            body.run();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        Arrays.sort(ms);
        return steps % 2 == 1 ? ms[steps / 2] : (ms[steps / 2 - 1] + ms[steps / 2]) / 2;
    }
}

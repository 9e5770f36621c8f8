package dev.retina.engine.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * GPU check of {@link CudaKernels} against float32 references computed with DJL ops on the same random inputs (and,
 * for decode attention, against libtorch's flash attention over the gathered context, the path it replaces): several
 * head shapes incl. GQA/MQA, context lengths that are not multiples of the block size, scattered block tables.
 * Outputs are poisoned with NaN first so an unwritten element shows. Prints relative errors ‖out − ref‖/‖ref‖ and
 * exits 1 when one exceeds 1e-2. Needs a CUDA device; not part of the CPU test suite.
 *
 * <pre>java --enable-native-access=ALL-UNNAMED -cp ... dev.retina.engine.model.CudaKernelsCheck</pre>
 */
public final class CudaKernelsCheck {
    private static final double LIMIT = 1e-2;
    private static boolean failed;

    private CudaKernelsCheck() {}

    public static void main(String[] args) {
        int[] contexts = {1, 5, 16, 17, 100, 607, 1000, 2500};
        // The manager first: DJL's engine must load libtorch before the shim and the kernels look it up by name.
        try (NDManager m = NDManager.newBaseManager(Device.gpu())) {
            m.zeros(new Shape(1)).close();
            TorchShim shim = TorchShim.cuda().orElse(null);
            CudaKernels kernels = CudaKernels.load(m).orElseThrow(() -> new IllegalStateException("kernels did not load"));
            // heads, kvHeads, headDim, blockSize
            int[][] shapes = {{32, 32, 128, 16}, {32, 8, 128, 16}, {8, 2, 8, 4}, {4, 1, 8, 16}, {4, 4, 16, 16},
                    {8, 8, 64, 32}, {8, 2, 80, 16}, {12, 4, 96, 16}, {8, 1, 256, 16}};
            for (int[] s : shapes) attention(kernels, shim, m, s[0], s[1], s[2], s[3], contexts, new Random(s[0] * 31L + s[2]));
            for (int tokens : new int[] {9, 40}) { // 40: several heads per block (a prefill's launch shape)
                rope(kernels, m, 32, 32, 128, tokens);
                rope(kernels, m, 8, 2, 8, tokens);
                rope(kernels, m, 4, 1, 16, tokens);
            }
            silu(kernels, m, 11008, 7);
            silu(kernels, m, 11008, 606);
            silu(kernels, m, 64, 3);
            silu(kernels, m, 12, 3);     // not a multiple of 8: one value per thread
            if (kernels.hasRmsNorm()) {
                rmsNorm(kernels, m, 4096, 1);
                rmsNorm(kernels, m, 4096, 606);
                rmsNorm(kernels, m, 40, 5);
                rmsNorm(kernels, m, 36, 3);  // not a multiple of 8
            }
            if (kernels.hasVisionKernels()) {
                layerNorm(kernels, m, 1024, 577 * 2, true);  // CLIP-L: residual add + layer_norm, two images
                layerNorm(kernels, m, 1024, 3, false);        // layer 0: the embeddings alone
                layerNorm(kernels, m, 40, 5, true);            // tiny
                act(kernels, m, CudaKernels.ACT_QUICK_GELU, 4096, 577, 1024);
                act(kernels, m, CudaKernels.ACT_GELU, 4096, 577, 1024);
                act(kernels, m, CudaKernels.ACT_QUICK_GELU, 37, 3, 16);
            } else {
                System.out.println("this PTX has no vision kernels");
            }
            if (kernels.hasGemv()) {
                for (int rows = 1; rows <= CudaKernels.GEMV_MAX_ROWS; rows++) {
                    if (!CudaKernels.gemvFits(rows, 8)) continue;
                    gemv(kernels, m, false, rows, 12288, 4096, false); // the 7B's qkv
                    gemv(kernels, m, false, rows, 4096, 4096, true);   // o + residual (a narrow output)
                    gemv(kernels, m, true, rows, 22016, 4096, false);  // gate_up + SiLU·up
                    gemv(kernels, m, false, rows, 4096, 11008, true);  // down + residual
                    gemv(kernels, m, false, rows, 32064, 4096, false); // lm_head
                    gemv(kernels, m, false, rows, 44, 32, true);       // tiny, N not a block multiple
                    gemv(kernels, m, false, rows, 8196, 88, false);    // a wide output, a partial last block
                    gemv(kernels, m, true, rows, 48, 88, false);       // tiny gate | up
                }
            } else {
                System.out.println("this PTX has no gemv kernels");
            }
        }
        System.out.println(failed ? "CudaKernelsCheck: FAILED" : "CudaKernelsCheck: all within " + LIMIT);
        if (failed) System.exit(1);
    }

    private static void attention(CudaKernels kernels, TorchShim shim, NDManager root, int heads, int kvHeads, int d,
                                  int blockSize, int[] contexts, Random random) {
        try (NDManager m = root.newSubManager()) {
            int numSeqs = contexts.length;
            int maxBlocks = 0;
            for (int c : contexts) maxBlocks = Math.max(maxBlocks, (c + blockSize - 1) / blockSize + 1); // one spare
            int numBlocks = numSeqs * maxBlocks + 3;
            List<Integer> perm = new ArrayList<>();
            for (int b = 0; b < numBlocks; b++) perm.add(b);
            Collections.shuffle(perm, random); // scattered tables
            int[][] tables = new int[numSeqs][maxBlocks];
            int[] flat = new int[numSeqs * maxBlocks];
            for (int s = 0, next = 0; s < numSeqs; s++)
                for (int j = 0; j < maxBlocks; j++) flat[s * maxBlocks + j] = tables[s][j] = perm.get(next++);
            long kvDim = (long) kvHeads * d;
            long rowLen = (long) (heads + 2 * kvHeads) * d; // queries inside qkv-shaped rows, as in the model
            NDArray keyCache = m.randomNormal(new Shape((long) numBlocks * blockSize, kvDim)).toType(DataType.FLOAT16, false);
            NDArray valueCache = m.randomNormal(new Shape((long) numBlocks * blockSize, kvDim)).toType(DataType.FLOAT16, false);
            NDArray qkv = m.randomNormal(new Shape(numSeqs, rowLen)).toType(DataType.FLOAT16, false);
            NDArray out = m.full(new Shape(numSeqs, (long) heads * d), Float.NaN, DataType.FLOAT16);
            float scale = (float) Math.pow(d, -0.5);
            kernels.pagedAttentionDecode(out, qkv, keyCache, valueCache, m.create(flat, new Shape(numSeqs, maxBlocks)),
                    m.create(contexts.clone()), blockSize, heads, kvHeads, d, scale);
            // float32 reference per sequence from the gathered context
            NDArray q32 = qkv.get(new NDIndex(":, :{}", (long) heads * d)).toType(DataType.FLOAT32, false);
            NDArray k32 = keyCache.toType(DataType.FLOAT32, false);
            NDArray v32 = valueCache.toType(DataType.FLOAT32, false);
            NDList refs = new NDList();
            List<Long> packed = new ArrayList<>();
            int rep = heads / kvHeads;
            for (int s = 0; s < numSeqs; s++) {
                long[] slots = new long[contexts[s]];
                for (int j = 0; j < contexts[s]; j++) slots[j] = (long) tables[s][j / blockSize] * blockSize + j % blockSize;
                for (long slot : slots) packed.add(slot);
                NDArray idx = m.create(slots);
                NDArray k = LlamaModel.rows(idx, k32, m).reshape(contexts[s], kvHeads, d).transpose(1, 2, 0); // (kv, d, c)
                NDArray v = LlamaModel.rows(idx, v32, m).reshape(contexts[s], kvHeads, d).transpose(1, 0, 2); // (kv, c, d)
                NDArray q = q32.get(s).reshape(kvHeads, rep, d);
                NDArray p = q.matMul(k).mul(scale).softmax(-1);
                refs.add(p.matMul(v).reshape(1, (long) heads * d));
            }
            NDArray ref = ai.djl.ndarray.NDArrays.concat(refs, 0); // (numSeqs, heads * d) float32
            report(String.format(Locale.ROOT, "paged decode attention heads %d kv %d d %d block %d", heads, kvHeads, d,
                    blockSize), out, ref);
            if (kernels.hasSplitAttention(d)) {
                // split-K: partitions of 64 tokens (the model's smallest), partial states merged by the reduce kernel
                int maxCtx = 0;
                for (int c : contexts) maxCtx = Math.max(maxCtx, c);
                int partition = 64;
                int parts = (maxCtx + partition - 1) / partition;
                long states = (long) numSeqs * heads * parts;
                NDArray partM = m.zeros(new Shape(states), DataType.FLOAT32);
                NDArray partL = m.zeros(new Shape(states), DataType.FLOAT32);
                NDArray partAcc = m.zeros(new Shape(states, d), DataType.FLOAT32);
                NDArray splitOut = m.full(new Shape(numSeqs, (long) heads * d), Float.NaN, DataType.FLOAT16);
                kernels.pagedAttentionDecodeSplit(kernels.address(splitOut), (long) heads * d, kernels.address(qkv),
                        rowLen, kernels.address(keyCache), kernels.address(valueCache),
                        kernels.address(m.create(flat, new Shape(numSeqs, maxBlocks))),
                        kernels.address(m.create(contexts.clone())), numSeqs, maxBlocks, blockSize, heads, kvHeads, d,
                        scale, partition, parts, kernels.address(partM), kernels.address(partL),
                        kernels.address(partAcc));
                report(String.format(Locale.ROOT, "  split-K, %d partitions of %d", parts, partition), splitOut, ref);
            }
            if (shim != null && shim.hasFlashAttention() && d % 8 == 0) {
                long[] slots = packed.stream().mapToLong(Long::longValue).toArray();
                int[] cuK = new int[numSeqs + 1];
                int[] cuQ = new int[numSeqs + 1];
                for (int s = 0; s < numSeqs; s++) {
                    cuK[s + 1] = cuK[s] + contexts[s];
                    cuQ[s + 1] = s + 1;
                }
                NDArray idx = m.create(slots);
                NDArray keys = LlamaModel.rows(idx, keyCache, m).reshape(slots.length, kvHeads, d);
                NDArray values = LlamaModel.rows(idx, valueCache, m).reshape(slots.length, kvHeads, d);
                NDArray q = qkv.get(new NDIndex(":, :{}", (long) heads * d)).reshape(numSeqs, heads, d);
                int maxK = 0;
                for (int c : contexts) maxK = Math.max(maxK, c);
                NDArray flash = shim.flashAttentionVarlen(q, keys, values, m.create(cuQ), m.create(cuK), 1, maxK,
                        false, scale).reshape(numSeqs, (long) heads * d);
                report("  libtorch flash attention (gathered), same inputs", flash, ref);
                report("  paged kernel vs flash attention", out, flash.toType(DataType.FLOAT32, false));
            }
        }
    }

    private static void rope(CudaKernels kernels, NDManager root, int heads, int kvHeads, int d, int numTokens) {
        try (NDManager m = root.newSubManager()) {
            int numPositions = 4096;
            int numSlots = 64;
            Random random = new Random(heads * 7L + d);
            long[] positions = new long[numTokens];
            long[] slots = new long[numTokens];
            List<Integer> perm = new ArrayList<>();
            for (int i = 0; i < numSlots; i++) perm.add(i);
            Collections.shuffle(perm, random);
            for (int t = 0; t < numTokens; t++) {
                positions[t] = random.nextInt(numPositions);
                slots[t] = perm.get(t);
            }
            float[] cos = new float[numPositions * d];
            float[] sin = new float[numPositions * d];
            for (int p = 0; p < numPositions; p++)
                for (int i = 0; i < d / 2; i++) {
                    double angle = p * Math.pow(10000, -2.0 * i / d);
                    cos[p * d + i] = cos[p * d + d / 2 + i] = (float) Math.cos(angle);
                    sin[p * d + i] = sin[p * d + d / 2 + i] = (float) Math.sin(angle);
                }
            NDArray cosT = m.create(cos, new Shape(numPositions, d)).toType(DataType.FLOAT16, false);
            NDArray sinT = m.create(sin, new Shape(numPositions, d)).toType(DataType.FLOAT16, false);
            long kvDim = (long) kvHeads * d;
            NDArray qkv = m.randomNormal(new Shape(numTokens, (long) (heads + 2 * kvHeads) * d)).toType(DataType.FLOAT16, false);
            NDArray qkv32 = qkv.toType(DataType.FLOAT32, false); // before the in-place rotation
            NDArray qkvBack = qkv.duplicate(); // for the k_back run below
            NDArray keyCache = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            NDArray valueCache = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            NDArray pos = m.create(positions);
            NDArray slot = m.create(slots);
            kernels.ropeKvWrite(qkv, pos, slot, cosT, sinT, keyCache, valueCache, heads, kvHeads, d);
            // reference: RotaryEmbedding.rotate in float32 on the same (fp16) tables
            NDArray c = LlamaModel.rows(pos, cosT, m).toType(DataType.FLOAT32, false).expandDims(1);
            NDArray s = LlamaModel.rows(pos, sinT, m).toType(DataType.FLOAT32, false).expandDims(1);
            NDList split = qkv32.split(new long[] {(long) (heads + kvHeads) * d}, 1);
            NDArray x = split.get(0).reshape(numTokens, heads + kvHeads, d);
            NDList halves = x.split(2, 2);
            NDArray rotated = x.mul(c).add(halves.get(1).neg().concat(halves.get(0), -1).mul(s));
            NDList qk = rotated.split(new long[] {heads}, 1);
            String label = String.format(Locale.ROOT, "rope_kv_write heads %d kv %d d %d, %d tokens", heads, kvHeads, d,
                    numTokens);
            report(label + ": q in place", qkv.get(new NDIndex(":, :{}", (long) heads * d)),
                    qk.get(0).reshape(numTokens, (long) heads * d));
            report(label + ": k at slots", LlamaModel.rows(slot, keyCache, m), qk.get(1).reshape(numTokens, kvDim));
            report(label + ": v at slots", LlamaModel.rows(slot, valueCache, m), split.get(1));
            // The same inputs one element off 16-byte alignment take rope_kv_write even with the vec kernels on
            // (then the run above took rope_kv_write_vec where d % 16 == 0 and there are 16 tokens or more): the
            // arithmetic per pair is written the same way in both, so q and the cache rows must be bit for bit equal.
            NDArray[] shiftedQkv = shifted(m, qkv32.toType(DataType.FLOAT16, false), 0);
            NDArray keyCache4 = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            NDArray valueCache4 = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            kernels.ropeKvWrite(kernels.address(shiftedQkv[0]) + 2, kernels.address(pos), kernels.address(slot),
                    kernels.address(cosT), kernels.address(sinT), kernels.address(keyCache4),
                    kernels.address(valueCache4), numTokens, heads, kvHeads, d);
            NDArray unaligned = shiftedQkv[0].get("1:").reshape(qkv.getShape());
            String against = kernels.vectorized() && d % 16 == 0 && numTokens >= 16 ? "vec" : "aligned";
            same(label + ": q, unaligned against " + against, unaligned.get(new NDIndex(":, :{}", (long) heads * d)),
                    qkv.get(new NDIndex(":, :{}", (long) heads * d)));
            same(label + ": k, v at slots, unaligned against " + against,
                    LlamaModel.rows(slot, keyCache4, m).concat(LlamaModel.rows(slot, valueCache4, m), 1),
                    LlamaModel.rows(slot, keyCache, m).concat(LlamaModel.rows(slot, valueCache, m), 1));
            NDArray keyCache2 = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            NDArray valueCache2 = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            kernels.ropeKvWrite(kernels.address(qkvBack), kernels.address(pos), kernels.address(slot),
                    kernels.address(cosT), kernels.address(sinT), kernels.address(keyCache2),
                    kernels.address(valueCache2), numTokens, heads, kvHeads, d, true);
            report(label + ": k written back (k_back)", qkvBack.get(new NDIndex(":, {}:{}", (long) heads * d,
                    (long) (heads + kvHeads) * d)), qk.get(1).reshape(numTokens, kvDim));
            report(label + ": k at slots (k_back)", LlamaModel.rows(slot, keyCache2, m), qk.get(1).reshape(numTokens, kvDim));
            // A CUDA graph's padding row (slot -1) writes nothing; the other tokens are written as before.
            long[] padded = slots.clone();
            padded[numTokens - 1] = -1;
            NDArray keyCache3 = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            NDArray valueCache3 = m.full(new Shape(numSlots, kvDim), Float.NaN, DataType.FLOAT16);
            NDArray slotPad = m.create(padded);
            kernels.ropeKvWrite(qkv32.toType(DataType.FLOAT16, false), pos, slotPad, cosT, sinT, keyCache3,
                    valueCache3, heads, kvHeads, d);
            long written = keyCache3.isNaN().logicalNot().sum().toType(DataType.INT64, false).getLong()
                    + valueCache3.isNaN().logicalNot().sum().toType(DataType.INT64, false).getLong();
            long expected = 2L * (numTokens - 1) * kvDim;
            boolean padOk = written == expected;
            if (!padOk) failed = true;
            System.out.printf(Locale.ROOT, "%-70s %d values written, %d expected %s%n", label + ": slot -1 skipped",
                    written, expected, padOk ? "ok" : "FAIL");
            if (numTokens > 1) {
                NDArray real = m.create(Arrays.copyOf(slots, numTokens - 1));
                report(label + ": k at slots (padded run)", LlamaModel.rows(real, keyCache3, m),
                        qk.get(1).reshape(numTokens, kvDim).get(new NDIndex("0:{}", numTokens - 1)));
            }
        }
    }

    private static void silu(CudaKernels kernels, NDManager root, int inter, int numTokens) {
        try (NDManager m = root.newSubManager()) {
            NDArray gateUp = m.randomNormal(new Shape(numTokens, 2L * inter)).mul(3).toType(DataType.FLOAT16, false);
            NDArray out = m.full(new Shape(numTokens, inter), Float.NaN, DataType.FLOAT16);
            kernels.siluMul(out, gateUp, inter);
            NDList gu = gateUp.toType(DataType.FLOAT32, false).split(2, 1);
            NDArray g = gu.get(0);
            report("silu_mul inter " + inter + ", " + numTokens + " tokens", out,
                    g.mul(g.getNDArrayInternal().sigmoid()).mul(gu.get(1)));
            // The same inputs one element off 16-byte alignment take silu_mul even with the vec kernels on
            // (then the aligned run above took silu_mul_vec): the arithmetic per value is the same, so the outputs
            // must be bit for bit equal.
            NDArray[] shifted = shifted(m, gateUp, out.size());
            kernels.siluMul(kernels.address(shifted[1]) + 2, kernels.address(shifted[0]) + 2, numTokens, inter);
            same("silu_mul inter " + inter + ", unaligned against " + (kernels.vectorized() ? "vec" : "aligned"), out, shifted[1].get("1:").reshape(out.getShape()));
        }
    }

    /** rms_norm against HF's LlamaRMSNorm in float32 arithmetic with its two fp16 roundings. */
    private static void rmsNorm(CudaKernels kernels, NDManager root, int hidden, int rows) {
        try (NDManager m = root.newSubManager()) {
            float eps = 1e-5f;
            NDArray x = m.randomNormal(new Shape(rows, hidden)).mul(3).add(0.5).toType(DataType.FLOAT16, false);
            NDArray w = m.randomNormal(new Shape(hidden)).add(1).toType(DataType.FLOAT16, false);
            NDArray out = m.full(new Shape(rows, hidden), Float.NaN, DataType.FLOAT16);
            kernels.rmsNorm(kernels.address(out), kernels.address(x), kernels.address(w), rows, hidden, eps);
            NDArray xf = x.toType(DataType.FLOAT32, false);
            NDArray normed = xf.mul(xf.square().mean(new int[] {1}, true).add(eps).pow(-0.5f)).toType(DataType.FLOAT16, false);
            NDArray ref = normed.toType(DataType.FLOAT32, false).mul(w.toType(DataType.FLOAT32, false));
            report("rms_norm hidden " + hidden + ", " + rows + " rows", out, ref);
            // Unaligned, rms_norm even with the vec kernels on (then the aligned run took rms_norm_vec, whose
            // sum of squares adds up in another order): equal within two fp16 steps.
            NDArray[] shifted = shifted(m, x, out.size());
            NDArray wShifted = NDArrays.concat(new NDList(m.zeros(new Shape(1), DataType.FLOAT16), w));
            kernels.rmsNorm(kernels.address(shifted[1]) + 2, kernels.address(shifted[0]) + 2,
                    kernels.address(wShifted) + 2, rows, hidden, eps);
            NDArray other = shifted[1].get("1:").reshape(out.getShape()).toType(DataType.FLOAT32, false);
            NDArray o = out.toType(DataType.FLOAT32, false);
            float maxUlps = other.sub(o).abs().div(o.abs().maximum(6.1e-5f)).max().getFloat() * 1024;
            boolean ok = maxUlps <= 2 && !other.isNaN().any().getBoolean();
            if (!ok) failed = true;
            System.out.printf(Locale.ROOT, "%-70s max %.2f fp16 steps %s%n", "rms_norm hidden " + hidden
                    + ", unaligned against " + (kernels.vectorized() ? "vec" : "aligned"), maxUlps, ok ? "ok" : "FAIL");
        }
    }

    /** A copy of {@code in} starting one fp16 element into a new buffer, and a NaN-filled output buffer likewise. */
    private static NDArray[] shifted(NDManager m, NDArray in, long outSize) {
        NDArray input = NDArrays.concat(new NDList(m.zeros(new Shape(1), DataType.FLOAT16), in.flatten()));
        NDArray output = m.full(new Shape(outSize + 1), Float.NaN, DataType.FLOAT16);
        return new NDArray[] {input, output};
    }

    private static void same(String label, NDArray a, NDArray b) {
        boolean ok = a.toType(DataType.FLOAT32, false).eq(b.toType(DataType.FLOAT32, false)).all().getBoolean();
        if (!ok) failed = true;
        System.out.printf(Locale.ROOT, "%-70s %s%n", label, ok ? "bit-equal ok" : "differs FAIL");
    }

    /** add_layer_norm: the residual (x + y rounded), its LayerNorm, and the two bias fills. */
    private static void layerNorm(CudaKernels kernels, NDManager root, int hidden, int rows, boolean add) {
        try (NDManager m = root.newSubManager()) {
            float eps = 1e-5f;
            NDArray x = m.randomNormal(new Shape(rows, hidden)).mul(3).add(0.5).toType(DataType.FLOAT16, false);
            NDArray y = m.randomNormal(new Shape(rows, hidden)).toType(DataType.FLOAT16, false);
            NDArray w = m.randomNormal(new Shape(hidden)).mul(0.2).add(1).toType(DataType.FLOAT16, false);
            NDArray b = m.randomNormal(new Shape(hidden)).mul(0.1).toType(DataType.FLOAT16, false);
            NDArray biasA = m.randomNormal(new Shape(3L * hidden)).toType(DataType.FLOAT16, false);
            NDArray biasB = m.randomNormal(new Shape(hidden)).toType(DataType.FLOAT16, false);
            NDArray resid = m.full(new Shape(rows, hidden), Float.NaN, DataType.FLOAT16);
            NDArray out = m.full(new Shape(rows, hidden), Float.NaN, DataType.FLOAT16);
            NDArray fillA = m.full(new Shape(rows, 3L * hidden), Float.NaN, DataType.FLOAT16);
            NDArray fillB = m.full(new Shape(rows, hidden), Float.NaN, DataType.FLOAT16);
            kernels.addLayerNorm(kernels.address(resid), kernels.address(x), add ? kernels.address(y) : 0L,
                    kernels.address(out), kernels.address(w), kernels.address(b), kernels.address(fillA),
                    kernels.address(biasA), 3 * hidden, kernels.address(fillB), kernels.address(biasB), hidden, rows,
                    hidden, eps);
            NDArray r = add ? x.toType(DataType.FLOAT32, false).add(y.toType(DataType.FLOAT32, false))
                    .toType(DataType.FLOAT16, false) : x;
            NDArray r32 = r.toType(DataType.FLOAT32, false);
            NDArray mean = r32.mean(new int[] {1}, true);
            NDArray centered = r32.sub(mean);
            NDArray var = centered.square().mean(new int[] {1}, true);
            NDArray ref = centered.div(var.add(eps).sqrt()).mul(w.toType(DataType.FLOAT32, false))
                    .add(b.toType(DataType.FLOAT32, false));
            String label = "add_layer_norm hidden " + hidden + " rows " + rows + (add ? " x + y" : " x");
            report(label + ": residual", resid, r32);
            report(label + ": layer norm", out, ref);
            boolean filled = fillA.toType(DataType.FLOAT32, false).sub(biasA.toType(DataType.FLOAT32, false))
                    .abs().max().getFloat() == 0 && fillB.toType(DataType.FLOAT32, false)
                    .sub(biasB.toType(DataType.FLOAT32, false)).abs().max().getFloat() == 0;
            if (!filled) failed = true;
            System.out.printf(Locale.ROOT, "%-70s %s%n", label + ": bias rows", filled ? "exact ok" : "FAIL");
        }
    }

    /** act_fill: quick_gelu / GELU in place against float32, and the fc2 bias rows. */
    private static void act(CudaKernels kernels, NDManager root, int activation, int inter, int rows, int hidden) {
        try (NDManager m = root.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(rows, inter)).mul(3).toType(DataType.FLOAT16, false);
            NDArray x32 = x.toType(DataType.FLOAT32, false);
            NDArray bias = m.randomNormal(new Shape(hidden)).toType(DataType.FLOAT16, false);
            NDArray fill = m.full(new Shape(rows, hidden), Float.NaN, DataType.FLOAT16);
            NDArray ref = activation == CudaKernels.ACT_QUICK_GELU
                    ? x32.mul(x32.mul(1.702f).getNDArrayInternal().sigmoid())
                    : ai.djl.nn.Activation.gelu(x32);
            kernels.actFill(kernels.address(x), (long) rows * inter, activation, kernels.address(fill),
                    kernels.address(bias), hidden, (long) rows * hidden);
            String label = String.format(Locale.ROOT, "act_fill %s %d x %d",
                    activation == CudaKernels.ACT_QUICK_GELU ? "quick_gelu" : "gelu", rows, inter);
            report(label, x, ref);
            boolean filled = fill.toType(DataType.FLOAT32, false).sub(bias.toType(DataType.FLOAT32, false))
                    .abs().max().getFloat() == 0;
            if (!filled) failed = true;
            System.out.printf(Locale.ROOT, "%-70s %s%n", label + ": bias rows", filled ? "exact ok" : "FAIL");
        }
    }

    private static void gemv(CudaKernels kernels, NDManager root, boolean glu, int rows, int n, int k,
                             boolean accumulate) {
        try (NDManager m = root.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(rows, k)).mul(2).toType(DataType.FLOAT16, false);
            NDArray w = m.randomNormal(new Shape(n, k)).mul(1 / Math.sqrt(k)).toType(DataType.FLOAT16, false);
            long outCols = glu ? n / 2 : n;
            NDArray y0 = m.randomNormal(new Shape(rows, outCols)).toType(DataType.FLOAT16, false);
            NDArray y = accumulate ? y0.duplicate() : m.full(new Shape(rows, outCols), Float.NaN, DataType.FLOAT16);
            kernels.gemv(glu, kernels.address(y), kernels.address(x), kernels.address(w), rows, n, k, accumulate);
            NDArray ref = x.toType(DataType.FLOAT32, false).matMul(w.toType(DataType.FLOAT32, false).transpose());
            if (glu) { // gate and up rounded to fp16 (as the GEMM's output would be), then silu(gate) * up
                NDList gu = ref.toType(DataType.FLOAT16, false).toType(DataType.FLOAT32, false).split(2, 1);
                NDArray g = gu.get(0);
                ref = g.mul(g.getNDArrayInternal().sigmoid()).mul(gu.get(1));
            }
            if (accumulate) ref = ref.add(y0.toType(DataType.FLOAT32, false));
            report(String.format(Locale.ROOT, "%s n %d k %d%s", CudaKernels.gemvEntry(rows, glu, n, CudaKernels.GEMV_LOADS), n, k,
                    accumulate ? " + y" : ""), y, ref);
        }
    }

    private static void report(String label, NDArray out, NDArray ref) {
        NDArray o = out.toType(DataType.FLOAT32, false);
        NDArray r = ref.toType(DataType.FLOAT32, false);
        boolean nan = o.isNaN().any().getBoolean();
        double err = o.sub(r).norm().getFloat() / Math.max(1e-30, r.norm().getFloat());
        boolean ok = !nan && err < LIMIT;
        if (!ok) failed = true;
        System.out.printf(Locale.ROOT, "%-70s rel err %.2e%s %s%n", label, err, nan ? " NaN!" : "", ok ? "ok" : "FAIL");
    }
}

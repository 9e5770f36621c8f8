package dev.retina.engine;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.retina.engine.model.DeviceUploads;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns one step's logits into token ids on the logits' device, with vLLM's semantics: penalties, min_tokens,
 * temperature (0 = greedy), min_p, top_k, top_p, and logprobs of the raw distribution. Called only from the engine
 * thread.
 *
 * <p>Reproducibility: each sequence brings its own uniform draw in [0, 1) ({@link ScheduledSequence#uniform()},
 * drawn on the host from the sequence's seeded generator), and a row's token is the inverse CDF at that draw: of its
 * filtered, descending-sorted distribution when it has top_k, top_p or min_p; of its whole distribution in vocabulary
 * order (no sort) when it has none. All ops are row-wise, so a seed gives the same tokens whatever else
 * is in the batch. Only the chosen ids (and requested logprobs) come back to the host, in one transfer.
 */
public final class Sampler {
    /** Where the sampling parameters go up without waiting for the device (the GPU), or null: DJL's create. */
    private final DeviceUploads uploads;

    public Sampler() {
        this(null);
    }

    /**
     * @param uploads page-locked uploads for the per-row parameters on the GPU, so that the sampling ops are queued
     *                behind the forward pass while it runs instead of each parameter's copy waiting for it; null:
     *                DJL's create (the CPU)
     */
    public Sampler(DeviceUploads uploads) {
        this.uploads = uploads;
    }

    /**
     * @param logits        (numSeqs, vocabSize) float32 (or f16) on the model's device, one row per sampling sequence
     * @param samplingSeqs  the sampling sequences, in row order
     */
    public RunnerOutput sample(NDArray logits, List<ScheduledSequence> samplingSeqs) {
        int numSeqs = samplingSeqs.size();
        if (logits.getShape().dimension() != 2 || logits.getShape().get(0) != numSeqs)
            throw new IllegalArgumentException("logits " + logits.getShape() + " for " + numSeqs + " sequences");
        if (!wantsLogprobs(samplingSeqs)) {
            try (NDArray chosen = sampleIds(logits, samplingSeqs)) {
                return new RunnerOutput(toInts(chosen.toLongArray()), null); // the step's one host sync
            }
        }
        int maxTopLogprobs = -1;
        for (ScheduledSequence s : samplingSeqs) {
            Integer lp = s.params().logprobs();
            if (lp != null) maxTopLogprobs = Math.max(maxTopLogprobs, lp);
        }
        try (NDManager sm = logits.getManager().newSubManager()) {
            NDArray raw = logits.toType(DataType.FLOAT32, true); // (numSeqs, vocab), a copy owned by this step
            raw.attach(sm);
            NDArray chosen = choose(sm, raw, samplingSeqs);
            return withLogprobs(sm, raw, chosen, samplingSeqs, maxTopLogprobs);
        }
    }

    /** Whether any sequence asks for logprobs (then only {@link #sample} serves the batch). */
    public static boolean wantsLogprobs(List<ScheduledSequence> samplingSeqs) {
        for (ScheduledSequence s : samplingSeqs) if (s.params().logprobs() != null) return true;
        return false;
    }

    /**
     * The chosen ids, left on the logits' device, queued behind the forward pass and never waited for: the engine can
     * then queue the next decode step (fed these ids on the device) before they come back. Same ids as {@link #sample}.
     *
     * @return (numSeqs,) int64 in the logits' manager
     * @throws IllegalArgumentException where a sequence asks for logprobs ({@link #wantsLogprobs})
     */
    public NDArray sampleIds(NDArray logits, List<ScheduledSequence> samplingSeqs) {
        int numSeqs = samplingSeqs.size();
        if (logits.getShape().dimension() != 2 || logits.getShape().get(0) != numSeqs)
            throw new IllegalArgumentException("logits " + logits.getShape() + " for " + numSeqs + " sequences");
        if (wantsLogprobs(samplingSeqs)) throw new IllegalArgumentException("logprobs need sample()");
        if (isPlainGreedy(samplingSeqs)) return logits.argMax(1); // greedy fast path: no float32 copy
        try (NDManager sm = logits.getManager().newSubManager()) {
            NDArray raw = logits.toType(DataType.FLOAT32, true); // (numSeqs, vocab), a copy owned by this step
            raw.attach(sm);
            NDArray chosen = choose(sm, raw, samplingSeqs);
            chosen.attach(logits.getManager());
            return chosen;
        }
    }

    /** Penalties, min_tokens, logit_bias and constraints on the float32 logits, then argmax or a random draw. */
    private NDArray choose(NDManager sm, NDArray raw, List<ScheduledSequence> samplingSeqs) {
        int vocabSize = (int) raw.getShape().get(1);
        boolean allGreedy = true;
        for (ScheduledSequence s : samplingSeqs) allGreedy &= s.params().isGreedy();
        NDArray x = applyPenalties(sm, raw, samplingSeqs, vocabSize);
        x = applyMinTokens(sm, x, samplingSeqs, vocabSize);
        x = applyLogitBias(sm, x, samplingSeqs, vocabSize);
        x = applyAllowedTokens(sm, x, samplingSeqs, vocabSize);
        NDArray chosen = x.argMax(1); // (numSeqs,) int64
        if (!allGreedy) chosen = sampleRandom(sm, x, samplingSeqs, vocabSize, chosen, uploads);
        return chosen;
    }

    /** vLLM's penalties: repetition over prompt and output, frequency and presence over output, on raw logits. */
    static NDArray applyPenalties(NDManager sm, NDArray x, List<ScheduledSequence> seqs, int vocabSize) {
        int numSeqs = seqs.size();
        boolean any = false;
        for (ScheduledSequence s : seqs) any |= hasPenalty(s.params());
        if (!any) return x;
        List<Long> countIdx = new ArrayList<>();
        List<Float> countVal = new ArrayList<>();
        List<Long> seenIdx = new ArrayList<>();
        float[] rep = new float[numSeqs];
        float[] freq = new float[numSeqs];
        float[] pres = new float[numSeqs];
        for (int row = 0; row < numSeqs; row++) {
            ScheduledSequence s = seqs.get(row);
            SamplingParams p = s.params();
            rep[row] = p.repetitionPenalty();
            freq[row] = p.frequencyPenalty();
            pres[row] = p.presencePenalty();
            if (!hasPenalty(p)) continue;
            Map<Integer, Integer> counts = new HashMap<>();
            for (int id : s.outputTokenIds()) counts.merge(id, 1, Integer::sum);
            long base = (long) row * vocabSize;
            for (Map.Entry<Integer, Integer> e : counts.entrySet()) {
                countIdx.add(base + e.getKey());
                countVal.add((float) e.getValue());
            }
            if (p.repetitionPenalty() != 1f) {
                BitSet seen = new BitSet(vocabSize);
                for (int id : s.promptTokenIds()) if (id >= 0 && id < vocabSize) seen.set(id);
                for (int id : s.outputTokenIds()) seen.set(id);
                for (int id = seen.nextSetBit(0); id >= 0; id = seen.nextSetBit(id + 1)) seenIdx.add(base + id);
            }
        }
        Shape shape = new Shape(numSeqs, vocabSize);
        Shape col = new Shape(numSeqs, 1);
        if (!seenIdx.isEmpty()) {
            NDArray seen = scatterOnes(sm, seenIdx, numSeqs, vocabSize, x.getDevice()).reshape(shape).gt(0f);
            NDArray r = sm.create(rep, col).toDevice(x.getDevice(), false);
            NDArray penalised = NDArrays.where(x.gt(0f), x.div(r), x.mul(r));
            x = NDArrays.where(seen, penalised, x);
        }
        if (!countIdx.isEmpty()) {
            long[] idx = countIdx.stream().mapToLong(Long::longValue).toArray();
            float[] val = new float[countVal.size()];
            for (int i = 0; i < val.length; i++) val[i] = countVal.get(i);
            NDArray counts = sm.zeros(new Shape((long) numSeqs * vocabSize)).toDevice(x.getDevice(), false)
                    .put(sm.create(idx).toDevice(x.getDevice(), false), sm.create(val).toDevice(x.getDevice(), false))
                    .reshape(shape);
            x = x.sub(counts.mul(sm.create(freq, col).toDevice(x.getDevice(), false)));
            x = x.sub(counts.gt(0f).toType(DataType.FLOAT32, false).mul(sm.create(pres, col).toDevice(x.getDevice(), false)));
        }
        return x;
    }

    private static boolean hasPenalty(SamplingParams p) {
        return p.repetitionPenalty() != 1f || p.frequencyPenalty() != 0f || p.presencePenalty() != 0f;
    }

    /** Until min_tokens are out, EOS (unless ignore_eos) and stop ids cannot be sampled. */
    private static NDArray applyMinTokens(NDManager sm, NDArray x, List<ScheduledSequence> seqs, int vocabSize) {
        List<Long> banned = new ArrayList<>();
        for (int row = 0; row < seqs.size(); row++) {
            ScheduledSequence s = seqs.get(row);
            // A constrained row's EOS is the constraint's to decide (it may be the only token allowed).
            if (s.outputTokenIds().length >= s.params().minTokens() || s.allowedTokenIds() != null) continue;
            long base = (long) row * vocabSize;
            if (!s.params().ignoreEos()) for (int id : s.eosTokenIds()) if (id < vocabSize) banned.add(base + id);
            for (int id : s.params().stopTokenIds()) if (id < vocabSize) banned.add(base + id);
        }
        if (banned.isEmpty()) return x;
        NDArray allowed = scatterOnes(sm, banned, seqs.size(), vocabSize, x.getDevice()).reshape(x.getShape()).eq(0f);
        // DJL's where broadcasts only its third operand: keep x in the second.
        return NDArrays.where(allowed, x, sm.create(Float.NEGATIVE_INFINITY).toDevice(x.getDevice(), false));
    }

    /** OpenAI's logit_bias: adds each row's biases (ids past the vocabulary are ignored, as vLLM rejects them earlier). */
    static NDArray applyLogitBias(NDManager sm, NDArray x, List<ScheduledSequence> seqs, int vocabSize) {
        List<Long> idx = new ArrayList<>();
        List<Float> val = new ArrayList<>();
        for (int row = 0; row < seqs.size(); row++) {
            long base = (long) row * vocabSize;
            for (Map.Entry<Integer, Float> e : seqs.get(row).params().logitBias().entrySet()) {
                if (e.getKey() >= vocabSize || e.getValue() == 0f) continue;
                idx.add(base + e.getKey());
                val.add(e.getValue());
            }
        }
        if (idx.isEmpty()) return x;
        float[] v = new float[val.size()];
        for (int i = 0; i < v.length; i++) v[i] = val.get(i);
        Device device = x.getDevice();
        NDArray bias = sm.zeros(new Shape((long) seqs.size() * vocabSize)).toDevice(device, false)
                .put(sm.create(idx.stream().mapToLong(Long::longValue).toArray()).toDevice(device, false),
                        sm.create(v).toDevice(device, false))
                .reshape(x.getShape());
        return x.add(bias);
    }

    /**
     * Structured output: constrained rows keep only their allowed ids. The masks of the constrained rows go to the
     * device in one (numConstrained + 1, vocab) 0/-inf tensor whose last row is all zeros, and a row gather spreads
     * it over the batch, so unconstrained rows cost nothing on the host.
     */
    static NDArray applyAllowedTokens(NDManager sm, NDArray x, List<ScheduledSequence> seqs, int vocabSize) {
        int numSeqs = seqs.size();
        long[] rowOf = new long[numSeqs];
        List<java.util.BitSet> masks = new ArrayList<>();
        for (int row = 0; row < numSeqs; row++) {
            java.util.BitSet allowed = seqs.get(row).allowedTokenIds();
            if (allowed == null) continue;
            rowOf[row] = masks.size();
            masks.add(allowed);
        }
        if (masks.isEmpty()) return x;
        int numMasks = masks.size();
        for (int row = 0; row < numSeqs; row++) if (seqs.get(row).allowedTokenIds() == null) rowOf[row] = numMasks;
        float[] host = new float[(numMasks + 1) * vocabSize];
        Arrays.fill(host, 0, numMasks * vocabSize, Float.NEGATIVE_INFINITY);
        for (int m = 0; m < numMasks; m++) {
            java.util.BitSet allowed = masks.get(m);
            int base = m * vocabSize;
            for (int id = allowed.nextSetBit(0); id >= 0 && id < vocabSize; id = allowed.nextSetBit(id + 1))
                host[base + id] = 0f;
        }
        Device device = x.getDevice();
        NDArray mask = sm.create(host, new Shape(numMasks + 1, vocabSize)).toDevice(device, false);
        mask = mask.get(new ai.djl.ndarray.index.NDIndex("{}", sm.create(rowOf).toDevice(device, false)));
        return x.add(mask); // (numSeqs, vocab)
    }

    /** A (numSeqs * vocab) float tensor on {@code device}: 1 at the given flat indices, 0 elsewhere. */
    private static NDArray scatterOnes(NDManager sm, List<Long> flatIdx, int numSeqs, int vocabSize, Device device) {
        long[] idx = flatIdx.stream().mapToLong(Long::longValue).distinct().toArray();
        float[] ones = new float[idx.length];
        Arrays.fill(ones, 1f);
        return sm.zeros(new Shape((long) numSeqs * vocabSize)).toDevice(device, false)
                .put(sm.create(idx).toDevice(device, false), sm.create(ones).toDevice(device, false));
    }

    /**
     * True when the step needs nothing but an argmax: every row greedy, with no penalties, no logit bias, no token
     * constraint, no logprobs and no min_tokens ban in force (then {@link #sample} would compute exactly argmax of
     * the raw logits).
     */
    static boolean isPlainGreedy(List<ScheduledSequence> seqs) {
        for (ScheduledSequence s : seqs) {
            SamplingParams p = s.params();
            if (!p.isGreedy() || hasPenalty(p) || p.logprobs() != null) return false;
            if (!p.logitBias().isEmpty() || s.allowedTokenIds() != null) return false;
            if (s.outputTokenIds().length < p.minTokens()) return false;
        }
        return true;
    }

    /**
     * True when a random row keeps the whole distribution (no top_k, top_p or min_p): its token is then the inverse
     * CDF over the vocabulary in id order, which needs no sort. Decided per row, so a row samples the same way
     * whatever else is in the batch.
     */
    static boolean isUnfiltered(SamplingParams p, int vocabSize) {
        return (p.topK() < 0 || p.topK() >= vocabSize) && p.topP() >= 1f && p.minP() <= 0f;
    }

    /**
     * Inverse CDF at each row's uniform over softmax(x / temperature) in vocabulary order (no sort): the same
     * distribution as the sorted inverse CDF, a different token for the same uniform.
     *
     * @return (numSeqs,) int64 ids
     */
    private static NDArray sampleUnsorted(NDArray scaled, NDArray uniformCol, int vocabSize) {
        NDArray cum = scaled.softmax(1).cumSum(1);                     // (numSeqs, vocab), id order
        NDArray total = cum.get(":, -1:");
        NDArray target = total.mul(uniformCol);
        // The first id whose cumulative mass exceeds the target: zero-probability ids (masked, -inf) never qualify,
        // since their cumulative equals their predecessor's; capped at the last id with mass, for a target that
        // rounds up to the total.
        // Both counts lie in [0, vocab - 1] (the last id's cumulative equals the total), so no clip: DJL's clip takes
        // its bounds as device scalars and reads them back, which waits for the device.
        NDArray first = cum.lte(target).sum(new int[] {1});
        NDArray lastWithMass = cum.lt(total).sum(new int[] {1});
        return NDArrays.minimum(first, lastWithMass).toType(DataType.INT64, false);
    }

    /**
     * Temperature, then min_p on the full distribution, top_k, top_p on what remains (vLLM v1's order), then the
     * inverse CDF at each row's uniform: over the descending-sorted filtered distribution for rows with a filter,
     * over the unsorted one for rows without ({@link #isUnfiltered}). Greedy rows keep {@code greedyIds}.
     */
    private static NDArray sampleRandom(NDManager sm, NDArray x, List<ScheduledSequence> seqs, int vocabSize,
                                        NDArray greedyIds, DeviceUploads uploads) {
        int numSeqs = seqs.size();
        boolean[] unfiltered = new boolean[numSeqs];
        boolean anyFiltered = false;
        for (int row = 0; row < numSeqs; row++) {
            SamplingParams p = seqs.get(row).params();
            unfiltered[row] = p.isGreedy() || isUnfiltered(p, vocabSize);
            anyFiltered |= !unfiltered[row];
        }
        float[] temp = new float[numSeqs];
        float[] topK = new float[numSeqs];
        float[] topP = new float[numSeqs];
        float[] minP = new float[numSeqs];
        float[] uniform = new float[numSeqs];
        boolean[] greedy = new boolean[numSeqs];
        for (int row = 0; row < numSeqs; row++) {
            SamplingParams p = seqs.get(row).params();
            greedy[row] = p.isGreedy();
            temp[row] = p.isGreedy() ? 1f : p.temperature();
            topK[row] = p.topK() < 0 ? vocabSize : Math.min(p.topK(), vocabSize);
            topP[row] = p.topP();
            minP[row] = p.minP();
            uniform[row] = (float) seqs.get(row).uniform();
        }
        Device device = x.getDevice();
        Shape col = new Shape(numSeqs, 1);
        NDArray scaled = x.div(floats(sm, temp, col, device, uploads));
        NDArray uniformCol = floats(sm, uniform, col, device, uploads);
        NDArray isGreedy = bools(sm, greedy, device, uploads);
        NDArray unsortedIds = sampleUnsorted(scaled, uniformCol, vocabSize);
        if (!anyFiltered) return NDArrays.where(isGreedy, greedyIds, unsortedIds);
        NDArray order = scaled.argSort(1, false);                      // (numSeqs, vocab) ids, most likely first
        NDArray sorted = scaled.gather(order, 1);
        NDArray probs = sorted.softmax(1);                             // (numSeqs, vocab), descending
        // Nothing below copies from the host or reads back: rank + 1 is a running count of ones (exact in float32),
        // masks multiply, and the index is capped by the last id with mass instead of a clip.
        NDArray rankPlusOne = probs.onesLike().cumSum(1);              // (numSeqs, vocab): 1, 2, ...
        NDArray keep = rankPlusOne.lte(floats(sm, topK, col, device, uploads));
        keep = keep.logicalAnd(probs.gte(probs.get(":, 0:1").mul(floats(sm, minP, col, device, uploads))));
        NDArray kept = probs.mul(keep.toType(DataType.FLOAT32, false));
        kept = kept.div(kept.sum(new int[] {1}, true));
        NDArray exclusiveCum = kept.cumSum(1).sub(kept);
        keep = keep.logicalAnd(exclusiveCum.lt(floats(sm, topP, col, device, uploads)));
        NDArray finalProbs = kept.mul(keep.toType(DataType.FLOAT32, false));
        NDArray cum = finalProbs.cumSum(1);
        NDArray total = cum.get(":, -1:");
        NDArray target = total.mul(uniformCol);
        NDArray index = NDArrays.minimum(cum.lt(target).sum(new int[] {1}, true), cum.lt(total).sum(new int[] {1}, true))
                .toType(DataType.INT64, false);
        NDArray sortedIds = order.gather(index, 1).reshape(numSeqs);
        NDArray sampledIds = NDArrays.where(bools(sm, unfiltered, device, uploads), unsortedIds, sortedIds);
        return NDArrays.where(isGreedy, greedyIds, sampledIds);
    }

    private static NDArray floats(NDManager sm, float[] v, Shape shape, Device device, DeviceUploads uploads) {
        return uploads != null && device.isGpu() ? uploads.floats(v, shape, sm) : sm.create(v, shape).toDevice(device, false);
    }

    private static NDArray bools(NDManager sm, boolean[] v, Device device, DeviceUploads uploads) {
        return uploads != null && device.isGpu() ? uploads.bools(v, new Shape(v.length), sm)
                : sm.create(v).toDevice(device, false);
    }

    /** Logprobs of the raw distribution: the chosen id's and the top ones, pulled to the host in one transfer. */
    private static RunnerOutput withLogprobs(NDManager sm, NDArray raw, NDArray chosen, List<ScheduledSequence> seqs,
                                             int maxTop) {
        int numSeqs = seqs.size();
        NDArray logprobs = raw.logSoftmax(1);                           // (numSeqs, vocab)
        NDArray chosenCol = chosen.reshape(numSeqs, 1);
        NDList parts = new NDList(chosenCol.toType(DataType.FLOAT32, false), logprobs.gather(chosenCol, 1));
        if (maxTop > 0) {
            NDList top = logprobs.topK(maxTop, 1, true, true);        // values (numSeqs, maxTop), indices
            parts.add(top.get(0));
            parts.add(top.get(1).toType(DataType.FLOAT32, false));     // ids < 2^24 are exact in float32
        }
        int width = 2 + 2 * maxTop;
        float[] host = NDArrays.concat(parts, 1).toFloatArray();       // the step's one host sync
        int[] ids = new int[numSeqs];
        List<TokenLogprobs> out = new ArrayList<>(numSeqs);
        for (int row = 0; row < numSeqs; row++) {
            int o = row * width;
            ids[row] = (int) host[o];
            Integer wanted = seqs.get(row).params().logprobs();
            if (wanted == null) {
                out.add(null);
                continue;
            }
            int[] topIds = new int[wanted];
            float[] topLps = new float[wanted];
            for (int j = 0; j < wanted; j++) {
                topLps[j] = host[o + 2 + j];
                topIds[j] = (int) host[o + 2 + maxTop + j];
            }
            out.add(new TokenLogprobs(ids[row], host[o + 1], topIds, topLps));
        }
        return new RunnerOutput(ids, out);
    }

    static int[] toInts(long[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = (int) ids[i];
        return out;
    }
}

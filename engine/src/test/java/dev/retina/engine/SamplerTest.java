package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class SamplerTest {
    private static final int VOCAB = 64;
    private static NDManager manager;
    private final Sampler sampler = new Sampler();

    @BeforeAll
    static void setUp() { manager = NDManager.newBaseManager(); }

    @AfterAll
    static void tearDown() { manager.close(); }

    static SamplingParams params(float temperature, int topK, float topP, float minP) {
        return new SamplingParams(1, temperature, topP, topK, minP, 1L, 0f, 0f, 1f, 100, 0, List.of(), false, null);
    }

    static ScheduledSequence row(SamplingParams p, double uniform, int[] prompt, int[] output) {
        return new ScheduledSequence(0, "r", 0, new int[] {1}, prompt.length + output.length - 1, new int[] {0}, true,
                prompt, output, uniform, p, List.of(FakeModelRunner.EOS), List.of());
    }

    static ScheduledSequence row(SamplingParams p, double uniform) {
        return row(p, uniform, new int[] {5}, new int[0]);
    }

    static float[][] randomLogits(long seed, int rows) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[][] l = new float[rows][VOCAB];
        for (float[] r : l) for (int j = 0; j < VOCAB; j++) r[j] = (float) (rnd.nextGaussian() * 2);
        return l;
    }

    static NDArray tensor(float[][] rows) {
        float[] flat = new float[rows.length * VOCAB];
        for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, flat, i * VOCAB, VOCAB);
        return manager.create(flat, new Shape(rows.length, VOCAB));
    }

    static int argmax(float[] r) {
        int best = 0;
        for (int j = 1; j < r.length; j++) if (r[j] > r[best]) best = j;
        return best;
    }

    @Test
    void greedyIsArgmaxAndTopKOneIsGreedy() {
        float[][] logits = randomLogits(1, 6);
        List<ScheduledSequence> rows = new ArrayList<>();
        for (int i = 0; i < 6; i++)
            rows.add(i % 2 == 0 ? row(SamplingParams.greedy(10), 0.5) : row(params(1.3f, 1, 1f, 0f), i / 7.0));
        int[] ids = sampler.sample(tensor(logits), rows).sampledTokenIds();
        for (int i = 0; i < 6; i++) assertEquals(argmax(logits[i]), ids[i], "row " + i);
    }

    /**
     * Double-precision reference of vLLM v1's order: temperature, min_p, top_k, top_p (renormalised), inverse CDF;
     * over the descending-sorted distribution when a filter is set, over vocabulary order when none is (no sort).
     */
    static int referenceSample(float[] logits, SamplingParams p, double u) {
        Integer[] order = IntStream.range(0, VOCAB).boxed().toArray(Integer[]::new);
        if (!Sampler.isUnfiltered(p, VOCAB)) Arrays.sort(order, Comparator.comparingDouble(j -> -logits[j]));
        double[] probs = new double[VOCAB];
        double max = logits[order[0]] / p.temperature();
        double sum = 0;
        for (int k = 0; k < VOCAB; k++) sum += probs[k] = Math.exp(logits[order[k]] / p.temperature() - max);
        for (int k = 0; k < VOCAB; k++) probs[k] /= sum;
        int topK = p.topK() < 0 ? VOCAB : p.topK();
        double keptSum = 0;
        for (int k = 0; k < VOCAB; k++) {
            if (k >= topK || probs[k] < p.minP() * probs[0]) probs[k] = 0;
            keptSum += probs[k];
        }
        double cum = 0;
        for (int k = 0; k < VOCAB; k++) {
            probs[k] /= keptSum;
            if (cum >= p.topP()) probs[k] = 0;
            cum += probs[k];
        }
        double total = Arrays.stream(probs).sum();
        double c = 0;
        for (int k = 0; k < VOCAB; k++) {
            c += probs[k];
            if (c > u * total) return order[k];
        }
        return order[VOCAB - 1];
    }

    @Test
    void randomSamplingMatchesAFloat64InverseCdfReference() {
        SplittableRandom rnd = new SplittableRandom(2);
        List<SamplingParams> settings = List.of(params(1f, -1, 1f, 0f), params(0.7f, 5, 1f, 0f),
                params(1.5f, -1, 0.8f, 0f), params(1f, -1, 1f, 0.1f), params(0.9f, 10, 0.6f, 0.05f));
        int checked = 0;
        for (int trial = 0; trial < 40; trial++) {
            float[][] logits = randomLogits(100 + trial, settings.size());
            List<ScheduledSequence> rows = new ArrayList<>();
            double[] us = new double[settings.size()];
            for (int i = 0; i < settings.size(); i++) rows.add(row(settings.get(i), us[i] = rnd.nextDouble()));
            int[] ids = sampler.sample(tensor(logits), rows).sampledTokenIds();
            for (int i = 0; i < settings.size(); i++) {
                int expected = referenceSample(logits[i], settings.get(i), us[i]);
                // A float32 cumsum can land on a neighbour only when u sits within ~1e-6 of a CDF step.
                if (expected != ids[i] && nearStep(logits[i], settings.get(i), us[i])) continue;
                assertEquals(expected, ids[i], "trial " + trial + " row " + i);
                checked++;
            }
        }
        assertTrue(checked > 190);
    }

    private static boolean nearStep(float[] logits, SamplingParams p, double u) {
        return referenceSample(logits, p, Math.max(0, u - 1e-5)) != referenceSample(logits, p, Math.min(0.999999, u + 1e-5));
    }

    @Test
    void seededRowGivesTheSameTokenWhateverElseIsInTheBatch() {
        float[][] mine = randomLogits(3, 1);
        SamplingParams p = params(1.2f, 20, 0.9f, 0.02f);
        int[] alone = new int[20];
        SplittableRandom seeded = new SplittableRandom(42);
        for (int step = 0; step < 20; step++)
            alone[step] = sampler.sample(tensor(mine), List.of(row(p, seeded.nextDouble()))).sampledTokenIds()[0];
        seeded = new SplittableRandom(42);
        SplittableRandom other = new SplittableRandom(9);
        for (int step = 0; step < 20; step++) {
            float[][] batch = randomLogits(50 + step, 5);
            int pos = step % 5;
            batch[pos] = mine[0];
            List<ScheduledSequence> rows = new ArrayList<>();
            for (int i = 0; i < 5; i++)
                rows.add(i == pos ? row(p, seeded.nextDouble())
                        : row(params(0.5f + i, i + 2, 0.5f + 0.1f * i, 0f), other.nextDouble()));
            assertEquals(alone[step], sampler.sample(tensor(batch), rows).sampledTokenIds()[pos], "step " + step);
        }
        assertTrue(Arrays.stream(alone).distinct().count() > 3, "seeded draws should vary across steps");
    }

    @Test
    void penaltiesFollowVllm() {
        float[][] logits = randomLogits(4, 3);
        int[] prompt = {3, 7, 7, 9};
        int[] output = {7, 11, 11, 11, 12};
        SamplingParams rep = new SamplingParams(1, 1f, 1f, -1, 0f, 1L, 0f, 0f, 1.3f, 100, 0, List.of(), false, null);
        SamplingParams freqPres = new SamplingParams(1, 1f, 1f, -1, 0f, 1L, 0.4f, 0.25f, 1f, 100, 0, List.of(), false, null);
        SamplingParams none = params(1f, -1, 1f, 0f);
        List<ScheduledSequence> rows = List.of(row(rep, 0, prompt, output), row(freqPres, 0, prompt, output),
                row(none, 0, prompt, output));
        try (NDManager sm = manager.newSubManager()) {
            NDArray in = tensor(logits);
            in.attach(sm);
            float[] got = Sampler.applyPenalties(sm, in, rows, VOCAB).toFloatArray();
            for (int j = 0; j < VOCAB; j++) {
                int id = j;
                boolean seen = Arrays.stream(prompt).anyMatch(t -> t == id) || Arrays.stream(output).anyMatch(t -> t == id);
                float l = logits[0][j];
                float expectedRep = seen ? (l > 0 ? l / 1.3f : l * 1.3f) : l;
                assertEquals(expectedRep, got[j], 1e-6, "repetition, token " + j);
                long count = Arrays.stream(output).filter(t -> t == id).count();
                float expectedFp = logits[1][j] - 0.25f * count - (count > 0 ? 0.4f : 0f);
                assertEquals(expectedFp, got[VOCAB + j], 1e-6, "frequency/presence, token " + j);
                assertEquals(logits[2][j], got[2 * VOCAB + j], 0f, "no penalty, token " + j);
            }
        }
    }

    @Test
    void minTokensMasksEosAndStopIdsUntilReached() {
        float[][] logits = randomLogits(5, 3);
        for (float[] r : logits) {
            r[FakeModelRunner.EOS] = 50f;
            r[17] = 40f;
        }
        SamplingParams min = new SamplingParams(1, 0f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 3, List.of(17), false, null);
        int[] ids = sampler.sample(tensor(logits), List.of(row(min, 0, new int[] {4}, new int[] {8, 9}),
                row(min, 0, new int[] {4}, new int[] {8, 9, 10}), row(SamplingParams.greedy(5), 0))).sampledTokenIds();
        float[] masked = logits[0].clone();
        masked[FakeModelRunner.EOS] = Float.NEGATIVE_INFINITY;
        masked[17] = Float.NEGATIVE_INFINITY;
        assertEquals(argmax(masked), ids[0]);
        assertNotEquals(FakeModelRunner.EOS, ids[0]);
        assertEquals(FakeModelRunner.EOS, ids[1]);
        assertEquals(FakeModelRunner.EOS, ids[2]);
    }

    @Test
    void logprobsAreTheRawLogSoftmaxWithinTolerance() {
        float[][] logits = randomLogits(6, 3);
        SamplingParams withLp = new SamplingParams(1, 0.8f, 1f, -1, 0f, 1L, 0f, 0f, 1.2f, 100, 0, List.of(), false, 5);
        SamplingParams zeroTop = new SamplingParams(1, 0f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 0, List.of(), false, 0);
        RunnerOutput out = sampler.sample(tensor(logits), List.of(row(withLp, 0.3, new int[] {1, 2}, new int[] {3}),
                row(SamplingParams.greedy(3), 0.1), row(zeroTop, 0.9)));
        assertNull(out.logprobsAt(1));
        assertEquals(argmax(logits[1]), out.sampledTokenIds()[1]);
        for (int r : new int[] {0, 2}) {
            double max = Double.NEGATIVE_INFINITY;
            for (float v : logits[r]) max = Math.max(max, v);
            double sum = 0;
            for (float v : logits[r]) sum += Math.exp(v - max);
            double logZ = max + Math.log(sum);
            TokenLogprobs lp = out.logprobsAt(r);
            assertEquals(out.sampledTokenIds()[r], lp.tokenId());
            assertEquals(logits[r][lp.tokenId()] - logZ, lp.logprob(), 1e-4);
            Integer[] order = IntStream.range(0, VOCAB).boxed().toArray(Integer[]::new);
            int row = r;
            Arrays.sort(order, Comparator.comparingDouble(j -> -logits[row][j]));
            int wanted = r == 0 ? 5 : 0;
            assertEquals(wanted, lp.topTokenIds().length);
            for (int k = 0; k < wanted; k++) {
                assertEquals(order[k], lp.topTokenIds()[k]);
                assertEquals(logits[r][order[k]] - logZ, lp.topLogprobs()[k], 1e-4);
            }
        }
        assertArrayEquals(new int[] {argmax(logits[2])}, new int[] {out.sampledTokenIds()[2]});
    }

    @Test
    void greedyFastPathIsTakenOnlyWhenNothingButArgmaxIsNeededAndMatchesIt() {
        SamplingParams withLp = new SamplingParams(1, 0f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 0, List.of(), false, 0);
        SamplingParams penalised = new SamplingParams(1, 0f, 1f, -1, 0f, 1L, 0f, 0f, 1.2f, 100, 0, List.of(), false, null);
        SamplingParams minTokens = new SamplingParams(1, 0f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 2, List.of(), false, null);
        assertTrue(Sampler.isPlainGreedy(List.of(row(SamplingParams.greedy(5), 0), row(SamplingParams.greedy(5), 0.3))));
        assertTrue(!Sampler.isPlainGreedy(List.of(row(SamplingParams.greedy(5), 0), row(params(1f, -1, 1f, 0f), 0.3))));
        assertTrue(!Sampler.isPlainGreedy(List.of(row(withLp, 0))));
        assertTrue(!Sampler.isPlainGreedy(List.of(row(penalised, 0))));
        assertTrue(!Sampler.isPlainGreedy(List.of(row(minTokens, 0, new int[] {4}, new int[] {8}))));
        assertTrue(Sampler.isPlainGreedy(List.of(row(minTokens, 0, new int[] {4}, new int[] {8, 9}))));
        float[][] logits = randomLogits(7, 9);
        List<ScheduledSequence> rows = new ArrayList<>();
        for (int i = 0; i < 9; i++) rows.add(row(SamplingParams.greedy(5), i / 9.0));
        int[] ids = sampler.sample(tensor(logits), rows).sampledTokenIds();
        for (int i = 0; i < 9; i++) assertEquals(argmax(logits[i]), ids[i], "row " + i);
    }

    @Test
    void unfilteredSamplingFollowsTheSoftmaxAndIsTheSameAloneAndBesideFilteredRows() {
        float[][] mine = randomLogits(8, 1);
        SamplingParams plain = params(0.8f, -1, 1f, 0f);
        int draws = 4000;
        int[] counts = new int[VOCAB];
        SplittableRandom seeded = new SplittableRandom(11);
        int[] alone = new int[50];
        for (int d = 0; d < draws; d++) {
            int id = sampler.sample(tensor(mine), List.of(row(plain, seeded.nextDouble()))).sampledTokenIds()[0];
            counts[id]++;
            if (d < alone.length) alone[d] = id;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (float v : mine[0]) max = Math.max(max, v / 0.8);
        double[] probs = new double[VOCAB];
        double sum = 0;
        for (int j = 0; j < VOCAB; j++) sum += probs[j] = Math.exp(mine[0][j] / 0.8 - max);
        for (int j = 0; j < VOCAB; j++) {
            double expected = draws * probs[j] / sum;
            // Binomial: 5 standard deviations (+1 for the tiny expectations).
            assertEquals(expected, counts[j], 5 * Math.sqrt(expected) + 1, "token " + j);
        }
        seeded = new SplittableRandom(11);
        SplittableRandom other = new SplittableRandom(12);
        for (int step = 0; step < alone.length; step++) {
            float[][] batch = randomLogits(60 + step, 4);
            int pos = step % 4;
            batch[pos] = mine[0];
            List<ScheduledSequence> rows = new ArrayList<>();
            for (int i = 0; i < 4; i++)
                rows.add(i == pos ? row(plain, seeded.nextDouble())
                        : i % 2 == 0 ? row(params(1f, 3 + i, 0.7f, 0.01f), other.nextDouble())
                        : row(SamplingParams.greedy(5), other.nextDouble()));
            assertEquals(alone[step], sampler.sample(tensor(batch), rows).sampledTokenIds()[pos], "step " + step);
        }
    }
}

package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** logit_bias and {@link TokenConstraint} masks in the {@link Sampler}, and the constraint's life in a sequence. */
class ConstrainedSamplingTest {
    private static final int VOCAB = 64;
    private static NDManager manager;
    private final Sampler sampler = new Sampler();

    @BeforeAll
    static void setUp() { manager = NDManager.newBaseManager(); }

    @AfterAll
    static void tearDown() { manager.close(); }

    private static SamplingParams params(float temperature, Map<Integer, Float> bias, ConstraintFactory c) {
        return new SamplingParams(1, temperature, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 0, List.of(), false, null, bias, c);
    }

    private static ScheduledSequence row(SamplingParams p, double uniform, BitSet allowed) {
        return new ScheduledSequence(0, "r", 0, new int[] {1}, 0, new int[] {0}, true, new int[] {5}, new int[0],
                uniform, p, List.of(FakeModelRunner.EOS), List.of(), allowed);
    }

    @Test
    void logitBiasOfHundredWinsGreedyAndMinusHundredBans() {
        float[][] logits = SamplerTest.randomLogits(7, 2);
        int best = SamplerTest.argmax(logits[0]);
        int target = (best + 3) % VOCAB;
        List<ScheduledSequence> rows = List.of(
                row(params(0f, Map.of(target, 100f), null), Double.NaN, null),
                row(params(0f, Map.of(SamplerTest.argmax(logits[1]), -100f), null), Double.NaN, null));
        int[] ids = sampler.sample(tensor(logits), rows).sampledTokenIds();
        assertEquals(target, ids[0]);
        assertTrue(ids[1] != SamplerTest.argmax(logits[1]), "a -100 bias removes the greedy choice");
    }

    @Test
    void biasLeavesReportedLogprobsUnbiased() {
        float[][] logits = SamplerTest.randomLogits(8, 1);
        int target = (SamplerTest.argmax(logits[0]) + 1) % VOCAB;
        SamplingParams p = new SamplingParams(1, 0f, 1f, -1, 0f, 1L, 0f, 0f, 1f, 100, 0, List.of(), false, 0,
                Map.of(target, 100f), null);
        RunnerOutput out = sampler.sample(tensor(logits), List.of(row(p, Double.NaN, null)));
        assertEquals(target, out.sampledTokenIds()[0]);
        double logZ = 0;
        for (float v : logits[0]) logZ += Math.exp(v);
        assertEquals(logits[0][target] - Math.log(logZ), out.logprobsAt(0).logprob(), 1e-4);
    }

    @Test
    void maskedRowsSampleOnlyAllowedIdsWhileOthersAreUntouched() {
        BitSet allowed = new BitSet();
        allowed.set(3);
        allowed.set(40);
        for (int trial = 0; trial < 20; trial++) {
            float[][] logits = SamplerTest.randomLogits(100 + trial, 3);
            List<ScheduledSequence> rows = List.of(
                    row(params(1f, Map.of(), null), trial / 20.0, allowed),
                    row(params(0f, Map.of(), null), Double.NaN, null),
                    row(params(0f, Map.of(), null), Double.NaN, allowed));
            int[] ids = sampler.sample(tensor(logits), rows).sampledTokenIds();
            assertTrue(allowed.get(ids[0]), "row 0 sampled " + ids[0]);
            assertEquals(SamplerTest.argmax(logits[1]), ids[1]);
            assertEquals(logits[2][3] > logits[2][40] ? 3 : 40, ids[2]);
        }
    }

    @Test
    void sequenceAdvancesItsConstraintAndOffersEosOnlyWhenComplete() {
        List<Integer> advanced = new ArrayList<>();
        // A toy language: exactly the tokens 10, 11 in that order.
        ConstraintFactory twoTokens = () -> new TokenConstraint() {
            public BitSet allowedTokens() {
                BitSet b = new BitSet();
                if (advanced.size() < 2) b.set(10 + advanced.size());
                return b;
            }
            public void advance(int tokenId) { advanced.add(tokenId); }
            public boolean isComplete() { return advanced.size() == 2; }
        };
        Sequence seq = new Sequence(0, "r", 0, new int[] {1}, List.of(), params(1f, Map.of(), twoTokens),
                List.of(FakeModelRunner.EOS), 1L, 0L);
        assertEquals(BitSet.valueOf(new long[] {1L << 10}), seq.allowedTokenIds());
        seq.appendOutput(10);
        seq.appendOutput(11);
        assertEquals(List.of(10, 11), advanced);
        BitSet end = new BitSet();
        end.set(FakeModelRunner.EOS);
        assertEquals(end, seq.allowedTokenIds(), "complete and nothing else allowed: EOS alone");
    }

    @Test
    void logitBiasOutOfRangeIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> params(1f, Map.of(1, 101f), null));
        assertThrows(IllegalArgumentException.class, () -> params(1f, Map.of(-1, 1f), null));
    }

    private static NDArray tensor(float[][] rows) {
        float[] flat = new float[rows.length * VOCAB];
        for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, flat, i * VOCAB, VOCAB);
        return manager.create(flat, new ai.djl.ndarray.types.Shape(rows.length, VOCAB));
    }
}

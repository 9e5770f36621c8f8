package dev.retina.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Predicate;

/**
 * A model stand-in that keeps a fake paged KV cache (one token id per slot) written through the block tables, and
 * "samples" from what it reads back: so a wrong block table, a shared block overwritten, or a lost token after
 * preemption changes the output or fails the check. The next token is a hash of the cached context plus the
 * sequence's uniform draw (so seeds and n &gt; 1 matter), in {@code [firstTokenId, vocabSize)}; every
 * {@code eosEvery}-th context hash gives {@code eosTokenId} instead.
 */
final class FakeModelRunner implements ModelRunner {
    static final int EOS = 2;

    private final int blockSize;
    private final int[] kvCache;
    private final int vocabSize;
    private final int eosEvery;
    final List<SchedulerOutput> steps = new ArrayList<>();
    volatile Predicate<SchedulerOutput> failWhen = so -> false;
    /** An error the engine cannot contain (a VirtualMachineError): its thread dies. */
    volatile Predicate<SchedulerOutput> dieWhen = so -> false;
    volatile long delayMillis;
    /** Whether the engine may queue run-ahead steps ({@link ModelRunner#canRunAhead}); they resolve on the host. */
    volatile boolean runAhead;

    FakeModelRunner(int numBlocks, int blockSize, int vocabSize, int eosEvery) {
        this.blockSize = blockSize;
        this.kvCache = new int[numBlocks * blockSize];
        Arrays.fill(kvCache, -1);
        this.vocabSize = vocabSize;
        this.eosEvery = eosEvery;
    }

    FakeModelRunner(int numBlocks, int blockSize) {
        this(numBlocks, blockSize, 1000, 0);
    }

    @Override
    public boolean canRunAhead() {
        return runAhead;
    }

    @Override
    public RunnerOutput execute(SchedulerOutput so) {
        steps.add(so);
        if (failWhen.test(so)) throw new IllegalStateException("injected failure");
        if (dieWhen.test(so)) throw new InternalError("injected engine death");
        if (delayMillis > 0) {
            try {
                Thread.sleep(delayMillis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        List<Integer> sampled = new ArrayList<>();
        List<TokenLogprobs> logprobs = new ArrayList<>();
        for (ScheduledSequence s : so.sequences()) {
            for (int i = 0; i < s.numNewTokens(); i++) {
                int pos = s.startPosition() + i;
                kvCache[slot(s.blockTable(), pos)] = s.tokenIds()[i];
            }
            if (!s.sample()) continue;
            // Read the whole context back through the block table, as attention would, and check it.
            int[] expected = concat(s.promptTokenIds(), s.outputTokenIds());
            if (expected.length != s.seqLen())
                throw new AssertionError("sample step seqLen " + s.seqLen() + " but sequence has " + expected.length);
            long h = 1125899906842597L;
            for (int pos = 0; pos < s.seqLen(); pos++) {
                int cached = kvCache[slot(s.blockTable(), pos)];
                if (cached != expected[pos])
                    throw new AssertionError("seq " + s.seqId() + " pos " + pos + ": cache holds " + cached
                            + ", expected " + expected[pos]);
                h = 31 * h + cached;
            }
            int token;
            if (eosEvery > 0 && Math.floorMod(h, eosEvery) == 0) token = EOS;
            else token = 3 + Math.floorMod(h * 0x9E3779B97F4A7C15L + (long) (s.uniform() * 1e6), vocabSize - 3);
            sampled.add(token);
            logprobs.add(s.params().logprobs() == null ? null
                    : new TokenLogprobs(token, -1f, new int[] {token}, new float[] {-1f}));
        }
        return new RunnerOutput(sampled.stream().mapToInt(Integer::intValue).toArray(), logprobs);
    }

    private int slot(int[] blockTable, int pos) {
        if (pos / blockSize >= blockTable.length)
            throw new AssertionError("position " + pos + " beyond block table of " + blockTable.length + " blocks");
        return blockTable[pos / blockSize] * blockSize + pos % blockSize;
    }

    static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}

package dev.retina.engine.model;

import java.util.Arrays;

/**
 * One language-model step over a flattened batch: several sequences' new tokens laid end to end (prefill chunks and
 * decode tokens mixed). Plain arrays, built by the model runner on the host; validated on construction.
 *
 * @param positions      (T) position of each new token in its sequence; equals its index in the sequence's context
 * @param slotMapping    (T) KV cache slot each new token's K and V are written to: block * blockSize + offset
 * @param queryStartLoc  (numSeqs + 1) sequence s owns tokens [queryStartLoc[s], queryStartLoc[s + 1])
 * @param seqLens        (numSeqs) context length of each sequence including its new tokens
 * @param blockTables    (numSeqs)(>= ceil(seqLens[s] / blockSize)) each sequence's KV blocks in order
 * @param logitsIndices  (numSeqs) which flattened token's logits each sequence returns (usually its last one)
 */
public record ForwardBatch(int[] positions, int[] slotMapping, int[] queryStartLoc, int[] seqLens,
                           int[][] blockTables, int[] logitsIndices) {
    public ForwardBatch {
        int numTokens = positions.length;
        int numSeqs = seqLens.length;
        if (slotMapping.length != numTokens) throw new IllegalArgumentException("slotMapping length != numTokens");
        if (queryStartLoc.length != numSeqs + 1) throw new IllegalArgumentException("queryStartLoc length != numSeqs + 1");
        if (blockTables.length != numSeqs) throw new IllegalArgumentException("blockTables length != numSeqs");
        if (logitsIndices.length != numSeqs) throw new IllegalArgumentException("logitsIndices length != numSeqs");
        if (numSeqs == 0 || queryStartLoc[0] != 0 || queryStartLoc[numSeqs] != numTokens)
            throw new IllegalArgumentException("queryStartLoc must run from 0 to numTokens");
        for (int s = 0; s < numSeqs; s++) {
            int start = queryStartLoc[s];
            int end = queryStartLoc[s + 1];
            if (end <= start) throw new IllegalArgumentException("sequence " + s + " has no new tokens");
            if (end - start > seqLens[s]) throw new IllegalArgumentException("sequence " + s + ": more new tokens than context");
            if (logitsIndices[s] < start || logitsIndices[s] >= end)
                throw new IllegalArgumentException("sequence " + s + ": logits index outside its tokens");
            for (int t = start; t < end; t++) {
                if (positions[t] < 0 || positions[t] >= seqLens[s])
                    throw new IllegalArgumentException("sequence " + s + ": position " + positions[t] + " outside context");
            }
        }
    }

    public int numTokens() {
        return positions.length;
    }

    public int numSeqs() {
        return seqLens.length;
    }

    /**
     * One sequence whose context already holds {@code numCachedTokens} tokens, adding {@code numNewTokens}; logits at
     * its last new token.
     */
    public static ForwardBatch single(int numCachedTokens, int numNewTokens, int[] blockTable, int blockSize) {
        int[] positions = new int[numNewTokens];
        int[] slots = new int[numNewTokens];
        for (int i = 0; i < numNewTokens; i++) {
            int pos = numCachedTokens + i;
            positions[i] = pos;
            slots[i] = blockTable[pos / blockSize] * blockSize + pos % blockSize;
        }
        return new ForwardBatch(positions, slots, new int[] {0, numNewTokens}, new int[] {numCachedTokens + numNewTokens},
                new int[][] {blockTable}, new int[] {numNewTokens - 1});
    }

    /** The batches' sequences in one batch, in order (token offsets shifted). */
    public static ForwardBatch concat(ForwardBatch... batches) {
        int numTokens = 0;
        int numSeqs = 0;
        for (ForwardBatch b : batches) {
            numTokens += b.numTokens();
            numSeqs += b.numSeqs();
        }
        int[] positions = new int[numTokens];
        int[] slots = new int[numTokens];
        int[] starts = new int[numSeqs + 1];
        int[] seqLens = new int[numSeqs];
        int[][] tables = new int[numSeqs][];
        int[] logits = new int[numSeqs];
        int t = 0;
        int s = 0;
        for (ForwardBatch b : batches) {
            System.arraycopy(b.positions, 0, positions, t, b.numTokens());
            System.arraycopy(b.slotMapping, 0, slots, t, b.numTokens());
            for (int i = 0; i < b.numSeqs(); i++) {
                starts[s + i] = t + b.queryStartLoc[i];
                seqLens[s + i] = b.seqLens[i];
                tables[s + i] = b.blockTables[i];
                logits[s + i] = t + b.logitsIndices[i];
            }
            t += b.numTokens();
            s += b.numSeqs();
        }
        starts[numSeqs] = numTokens;
        return new ForwardBatch(positions, slots, starts, seqLens, tables, logits);
    }

    @Override
    public String toString() {
        return "ForwardBatch[numTokens=" + numTokens() + ", seqLens=" + Arrays.toString(seqLens)
                + ", queryStartLoc=" + Arrays.toString(queryStartLoc) + "]";
    }
}

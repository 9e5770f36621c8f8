package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;

/**
 * Per-step index tensors for attention over the paged cache, built once on the host from a {@link ForwardBatch} and
 * shared by every layer; which arrays it builds depends on the {@link Layout}. In the padded layout queries are padded
 * per sequence to {@code maxQueryLen} and contexts to {@code maxSeqLen} so one batched matmul serves all sequences;
 * the mask hides padding and future positions.
 */
final class AttentionMetadata {
    final int numSeqs;
    final int blockSize;
    final int maxQueryLen;
    final int maxSeqLen;
    final int maxPosition;
    final NDArray positions;      // (T) int64
    final NDArray slotMapping;    // (T) int64
    final NDArray queryPadIndex;  // (numSeqs * maxQueryLen) int64: flattened token of each padded query row
    final NDArray queryUnpadIndex; // (T) int64: padded row of each flattened token
    final NDArray contextSlots;   // (numSeqs * maxSeqLen) int64: cache slot of each context position (pad: slot 0)
    final NDArray mask;           // (numSeqs, 1, 1, maxQueryLen, maxSeqLen) float32: 0 visible, -inf hidden
    final NDArray logitsIndices;  // (numSeqs) int64
    // Packed layout (varlen flash attention); null in the padded layout, where the four padded arrays above are set
    // and these are null (each array built is one host-to-device copy per step).
    final NDArray cuSeqQ;         // (numSeqs + 1) int32: queryStartLoc
    final NDArray cuSeqK;         // (numSeqs + 1) int32: running sum of seqLens
    final NDArray packedContextSlots; // (sum seqLens) int64: cache slot of each context position, sequences end to end
    final int packedMaxQueryLen;  // longest query / context among the packed sequences (0 when none)
    final int packedMaxSeqLen;
    // Paged layout (Retina's decode kernel reads the cache through the block tables); null in the other layouts.
    final NDArray blockTables;    // (numSeqs, maxBlocksPerSeq) int32, short tables padded with block 0 (never read)
    final NDArray contextLens;    // (numSeqs) int32: seqLens
    // Mixed layout: the first numDecode sequences (one token each, rows 0..numDecode-1) are decodes read through
    // blockTables / contextLens above (numDecode rows); the rest are packed as in PACKED, their tokens counted from
    // row numDecode. PAGED: numDecode = numSeqs; PACKED and PADDED: 0.
    final int numDecode;

    /** Which per-step arrays attention needs. */
    enum Layout {
        /** queries and contexts padded to the longest, with a mask (DJL ops) */
        PADDED,
        /** contexts gathered end to end with cumulative lengths (varlen flash attention) */
        PACKED,
        /** block tables and context lengths only: decode attention straight over the paged cache, no gather */
        PAGED,
        /**
         * the leading decodes ({@link #decodePrefix}, possibly none) paged, the prefill chunks after them packed: only
         * the chunks' contexts are gathered
         */
        MIXED
    }

    /**
     * @param packed build the packed (varlen) layout instead of the padded one
     */
    AttentionMetadata(ForwardBatch batch, int blockSize, NDManager step, boolean packed) {
        this(batch, blockSize, step, packed ? Layout.PACKED : Layout.PADDED);
    }

    AttentionMetadata(ForwardBatch batch, int blockSize, NDManager step, Layout layout) {
        this(batch, blockSize, step, layout, null);
    }

    /**
     * @param uploads where the non-padded layouts' arrays go up without waiting for the device's queued work (see
     *                {@link DeviceUploads}); null: DJL's {@code create}
     */
    AttentionMetadata(ForwardBatch batch, int blockSize, NDManager step, Layout layout, DeviceUploads uploads) {
        this.blockSize = blockSize;
        numSeqs = batch.numSeqs();
        int numTokens = batch.numTokens();
        int[] starts = batch.queryStartLoc();
        int maxQ = 0;
        int maxS = 0;
        int maxPos = 0;
        for (int s = 0; s < numSeqs; s++) {
            maxQ = Math.max(maxQ, starts[s + 1] - starts[s]);
            maxS = Math.max(maxS, batch.seqLens()[s]);
        }
        for (int p : batch.positions()) maxPos = Math.max(maxPos, p);
        maxQueryLen = maxQ;
        maxSeqLen = maxS;
        maxPosition = maxPos;

        long[] positionValues = new long[numTokens];
        long[] slots = new long[numTokens];
        for (int t = 0; t < numTokens; t++) {
            positionValues[t] = batch.positions()[t];
            slots[t] = batch.slotMapping()[t];
        }
        long[] logits = new long[numSeqs];
        for (int s = 0; s < numSeqs; s++) logits[s] = batch.logitsIndices()[s];
        positions = longs(positionValues, step, uploads);
        slotMapping = longs(slots, step, uploads);
        logitsIndices = longs(logits, step, uploads);
        int paged = switch (layout) {
            case PAGED -> numSeqs;
            case MIXED -> decodePrefix(batch);
            default -> 0;
        };
        if (layout == Layout.MIXED && paged == numSeqs)
            throw new IllegalArgumentException("a mixed layout needs a prefill after its decodes (a pure decode step is "
                    + "paged), got " + paged + " decodes of " + numSeqs + " sequences");
        numDecode = paged;
        if (paged > 0) {
            int maxBlocks = 1;
            for (int s = 0; s < paged; s++) maxBlocks = Math.max(maxBlocks, batch.blockTables()[s].length);
            int[] tables = new int[paged * maxBlocks];
            for (int s = 0; s < paged; s++) {
                int[] table = batch.blockTables()[s];
                System.arraycopy(table, 0, tables, s * maxBlocks, table.length);
            }
            blockTables = ints(tables, new Shape(paged, maxBlocks), step, uploads);
            contextLens = ints(java.util.Arrays.copyOf(batch.seqLens(), paged), new Shape(paged), step, uploads);
        } else {
            blockTables = null;
            contextLens = null;
        }
        if (layout == Layout.PACKED || layout == Layout.MIXED) {
            int n = numSeqs - paged;
            int[] cuQ = new int[n + 1];
            int[] cuK = new int[n + 1];
            int packedMaxQ = 0;
            int packedMaxK = 0;
            for (int i = 0; i < n; i++) {
                int s = paged + i;
                cuQ[i + 1] = starts[s + 1] - starts[paged];
                cuK[i + 1] = cuK[i] + batch.seqLens()[s];
                packedMaxQ = Math.max(packedMaxQ, starts[s + 1] - starts[s]);
                packedMaxK = Math.max(packedMaxK, batch.seqLens()[s]);
            }
            long[] ctx = new long[cuK[n]];
            for (int i = 0; i < n; i++) {
                int[] table = batch.blockTables()[paged + i];
                for (int j = 0, len = batch.seqLens()[paged + i]; j < len; j++)
                    ctx[cuK[i] + j] = (long) table[j / blockSize] * blockSize + j % blockSize;
            }
            cuSeqQ = ints(cuQ, new Shape(cuQ.length), step, uploads);
            cuSeqK = ints(cuK, new Shape(cuK.length), step, uploads);
            packedContextSlots = longs(ctx, step, uploads);
            packedMaxQueryLen = packedMaxQ;
            packedMaxSeqLen = packedMaxK;
        } else {
            cuSeqQ = null;
            cuSeqK = null;
            packedContextSlots = null;
            packedMaxQueryLen = 0;
            packedMaxSeqLen = 0;
        }
        if (layout != Layout.PADDED) {
            queryPadIndex = null;
            queryUnpadIndex = null;
            contextSlots = null;
            mask = null;
            return;
        }
        long[] pad = new long[numSeqs * maxQ];
        long[] unpad = new long[numTokens];
        long[] ctx = new long[numSeqs * maxS];
        float[] maskValues = new float[numSeqs * maxQ * maxS];
        java.util.Arrays.fill(maskValues, Float.NEGATIVE_INFINITY);
        for (int s = 0; s < numSeqs; s++) {
            int start = starts[s];
            int numNew = starts[s + 1] - start;
            int seqLen = batch.seqLens()[s];
            int[] table = batch.blockTables()[s];
            for (int j = 0; j < seqLen; j++) ctx[s * maxS + j] = (long) table[j / blockSize] * blockSize + j % blockSize;
            for (int i = 0; i < maxQ; i++) {
                int row = (s * maxQ + i) * maxS;
                if (i < numNew) {
                    pad[s * maxQ + i] = start + i;
                    unpad[start + i] = s * maxQ + i;
                    int pos = batch.positions()[start + i];
                    for (int j = 0; j <= pos; j++) maskValues[row + j] = 0f; // causal: itself and earlier
                } else {
                    pad[s * maxQ + i] = start; // padding row: any real token, result discarded
                    maskValues[row] = 0f;      // one visible column keeps its softmax finite
                }
            }
        }
        queryPadIndex = step.create(pad);
        queryUnpadIndex = step.create(unpad);
        contextSlots = step.create(ctx);
        mask = step.create(maskValues, new Shape(numSeqs, 1, 1, maxQ, maxS));
    }

    private static NDArray longs(long[] values, NDManager step, DeviceUploads uploads) {
        return uploads != null ? uploads.longs(values, step) : step.create(values);
    }

    private static NDArray ints(int[] values, Shape shape, NDManager step, DeviceUploads uploads) {
        return uploads != null ? uploads.ints(values, shape, step) : step.create(values, shape);
    }

    /**
     * True when each sequence's new tokens are the last of its context (position = seqLen - numNew + i), the case the
     * packed layout's bottom-right causal mask describes. Always so for the engine's prefill chunks and decode steps.
     */
    static boolean newTokensTrail(ForwardBatch batch) {
        int[] starts = batch.queryStartLoc();
        for (int s = 0; s < batch.numSeqs(); s++) {
            int numNew = starts[s + 1] - starts[s];
            for (int i = 0; i < numNew; i++)
                if (batch.positions()[starts[s] + i] != batch.seqLens()[s] - numNew + i) return false;
        }
        return true;
    }

    /**
     * How many leading sequences add exactly one token, the last of their context (decodes, or a prompt's last
     * token): the rows a mixed step's paged decode kernel takes.
     */
    static int decodePrefix(ForwardBatch batch) {
        int[] starts = batch.queryStartLoc();
        int s = 0;
        while (s < batch.numSeqs() && starts[s + 1] - starts[s] == 1
                && batch.positions()[starts[s]] == batch.seqLens()[s] - 1) s++;
        return s;
    }

    /**
     * True when every sequence from {@code from} on has no cached context: its new tokens are its whole context
     * (positions 0 .. n - 1), so attention can run over the step's own K/V rows.
     */
    static boolean freshPrefills(ForwardBatch batch, int from) {
        int[] starts = batch.queryStartLoc();
        for (int s = from; s < batch.numSeqs(); s++) {
            int numNew = starts[s + 1] - starts[s];
            if (batch.seqLens()[s] != numNew) return false;
            for (int i = 0; i < numNew; i++) if (batch.positions()[starts[s] + i] != i) return false;
        }
        return true;
    }

    /** True when every sequence adds exactly one token, the last of its context: a pure decode step. */
    static boolean isPureDecode(ForwardBatch batch) {
        return batch.numTokens() == batch.numSeqs() && newTokensTrail(batch);
    }

    /** True when every sequence adds exactly as many tokens as the padded width (no padded query rows). */
    boolean noQueryPadding(int numTokens) {
        return numTokens == numSeqs * maxQueryLen;
    }
}

package dev.retina.engine.model;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The packed (varlen flash attention) layout: which batches may use it and what it tells the kernel. */
class AttentionMetadataTest {
    private static final int BLOCK = 4;

    @Test
    void decodeAndChunkedPrefillTrailTheirContexts() {
        ForwardBatch decode = ForwardBatch.concat(ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK),
                ForwardBatch.single(2, 1, new int[] {1}, BLOCK));
        ForwardBatch chunk = ForwardBatch.single(4, 3, new int[] {0, 2}, BLOCK); // positions 4..6 of 7
        assertTrue(AttentionMetadata.newTokensTrail(decode));
        assertTrue(AttentionMetadata.newTokensTrail(chunk));
    }

    @Test
    void newTokensBeforeTheContextEndDoNotTrail() {
        // One new token at position 1 of a 3-token context: the bottom-right causal mask would let it see position 2.
        ForwardBatch b = new ForwardBatch(new int[] {1}, new int[] {1}, new int[] {0, 1}, new int[] {3},
                new int[][] {{0}}, new int[] {0});
        assertFalse(AttentionMetadata.newTokensTrail(b));
    }

    @Test
    void packedLayoutListsEachContextsSlotsEndToEnd() {
        ForwardBatch batch = ForwardBatch.concat(ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK),
                ForwardBatch.single(0, 2, new int[] {1}, BLOCK));
        try (NDManager m = NDManager.newBaseManager(Device.cpu())) {
            AttentionMetadata meta = new AttentionMetadata(batch, BLOCK, m, true);
            assertArrayEquals(new int[] {0, 1, 3}, meta.cuSeqQ.toIntArray());
            assertArrayEquals(new int[] {0, 6, 8}, meta.cuSeqK.toIntArray());
            // seq 0: positions 0..5 in blocks 3 (slots 12..15) and 7 (28, 29); seq 1: block 1 (slots 4, 5)
            assertArrayEquals(new long[] {12, 13, 14, 15, 28, 29, 4, 5}, meta.packedContextSlots.toLongArray());
            assertArrayEquals(new long[] {29, 4, 5}, meta.slotMapping.toLongArray());
            assertNull(meta.mask);
        }
    }

    @Test
    void pagedLayoutPadsBlockTablesAndKeepsContextLengths() {
        ForwardBatch batch = ForwardBatch.concat(ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK),
                ForwardBatch.single(2, 1, new int[] {1}, BLOCK));
        assertTrue(AttentionMetadata.isPureDecode(batch));
        try (NDManager m = NDManager.newBaseManager(Device.cpu())) {
            AttentionMetadata meta = new AttentionMetadata(batch, BLOCK, m, AttentionMetadata.Layout.PAGED);
            // (numSeqs, maxBlocksPerSeq) int32, the short table padded with block 0 (beyond its context: never read)
            assertArrayEquals(new int[] {3, 7, 1, 0}, meta.blockTables.toIntArray());
            assertArrayEquals(new long[] {2, 2}, meta.blockTables.getShape().getShape());
            assertArrayEquals(new int[] {6, 3}, meta.contextLens.toIntArray());
            assertArrayEquals(new long[] {29, 6}, meta.slotMapping.toLongArray());
            assertNull(meta.packedContextSlots);
            assertNull(meta.mask);
        }
    }

    @Test
    void mixedLayoutPagesTheLeadingDecodesAndPacksOnlyThePrefillContexts() {
        // two decodes (contexts 6 and 3), then a chunk of 2 tokens after 3 cached ones, then a fresh prompt of 2
        ForwardBatch batch = ForwardBatch.concat(ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK),
                ForwardBatch.single(2, 1, new int[] {1}, BLOCK), ForwardBatch.single(3, 2, new int[] {2, 5}, BLOCK),
                ForwardBatch.single(0, 2, new int[] {6}, BLOCK));
        assertEquals(2, AttentionMetadata.decodePrefix(batch));
        try (NDManager m = NDManager.newBaseManager(Device.cpu())) {
            AttentionMetadata meta = new AttentionMetadata(batch, BLOCK, m, AttentionMetadata.Layout.MIXED);
            assertEquals(2, meta.numDecode);
            assertArrayEquals(new int[] {3, 7, 1, 0}, meta.blockTables.toIntArray());
            assertArrayEquals(new int[] {6, 3}, meta.contextLens.toIntArray());
            // the packed part counts its query rows from the first prefill token (batch row 2)
            assertArrayEquals(new int[] {0, 2, 4}, meta.cuSeqQ.toIntArray());
            assertArrayEquals(new int[] {0, 5, 7}, meta.cuSeqK.toIntArray());
            // chunk: positions 0..4 in blocks 2 (slots 8..11) and 5 (20); prompt: block 6 (24, 25). No decode slots.
            assertArrayEquals(new long[] {8, 9, 10, 11, 20, 24, 25}, meta.packedContextSlots.toLongArray());
            assertEquals(2, meta.packedMaxQueryLen);
            assertEquals(5, meta.packedMaxSeqLen);
            // every token's slot, decodes included (the fused rotary kernel writes them all)
            assertArrayEquals(new long[] {29, 6, 11, 20, 24, 25}, meta.slotMapping.toLongArray());
            assertNull(meta.mask);
        }
    }

    @Test
    void aMixedLayoutPacksWhatDoesNotLeadAndNeedsAPrefill() {
        ForwardBatch prefillFirst = ForwardBatch.concat(ForwardBatch.single(0, 2, new int[] {1}, BLOCK),
                ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK));
        assertEquals(0, AttentionMetadata.decodePrefix(prefillFirst));
        ForwardBatch decodesOnly = ForwardBatch.concat(ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK),
                ForwardBatch.single(2, 1, new int[] {1}, BLOCK));
        try (NDManager m = NDManager.newBaseManager(Device.cpu())) {
            // a decode after the prefill is packed with it (flash attention serves one-token queries too)
            AttentionMetadata meta = new AttentionMetadata(prefillFirst, BLOCK, m, AttentionMetadata.Layout.MIXED);
            assertEquals(0, meta.numDecode);
            assertNull(meta.blockTables);
            assertArrayEquals(new int[] {0, 2, 3}, meta.cuSeqQ.toIntArray());
            assertArrayEquals(new int[] {0, 2, 8}, meta.cuSeqK.toIntArray());
            assertThrows(IllegalArgumentException.class,
                    () -> new AttentionMetadata(decodesOnly, BLOCK, m, AttentionMetadata.Layout.MIXED));
        }
    }

    @Test
    void prefillChunksAreNotPureDecode() {
        ForwardBatch chunk = ForwardBatch.concat(ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK),
                ForwardBatch.single(0, 2, new int[] {1}, BLOCK));
        assertFalse(AttentionMetadata.isPureDecode(chunk));
    }

    @Test
    void freshPrefillsAreThoseWithNoCachedContextAfterTheDecodes() {
        ForwardBatch decode = ForwardBatch.single(5, 1, new int[] {3, 7}, BLOCK);
        ForwardBatch fresh = ForwardBatch.single(0, 5, new int[] {1, 2}, BLOCK);
        ForwardBatch freshToo = ForwardBatch.single(0, 2, new int[] {6}, BLOCK);
        ForwardBatch secondChunk = ForwardBatch.single(4, 3, new int[] {0, 2}, BLOCK); // positions 4..6: cached 0..3
        ForwardBatch mixed = ForwardBatch.concat(decode, fresh, freshToo);
        int decodes = AttentionMetadata.decodePrefix(mixed);
        assertEquals(1, decodes);
        assertTrue(AttentionMetadata.freshPrefills(mixed, decodes));
        assertFalse(AttentionMetadata.freshPrefills(mixed, 0), "the decode has 5 cached tokens");
        ForwardBatch withChunk = ForwardBatch.concat(decode, fresh, secondChunk);
        assertFalse(AttentionMetadata.freshPrefills(withChunk, AttentionMetadata.decodePrefix(withChunk)));
        assertTrue(AttentionMetadata.freshPrefills(fresh, 0));
        assertFalse(AttentionMetadata.freshPrefills(secondChunk, 0));
    }
}

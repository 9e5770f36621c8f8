package dev.retina.engine.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The batch buckets decode-step graphs are captured for (the graphs themselves need a GPU: CudaKernelsCheck). */
class DecodeGraphsTest {
    @Test
    void bucketsAreOneTwoFourThenMultiplesOfEight() {
        int[][] cases = {{1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {8, 8}, {9, 16}, {16, 16}, {17, 24}, {255, 256},
                {256, 256}};
        for (int[] c : cases) assertEquals(c[1], DecodeGraphs.bucket(c[0]), "bucket of " + c[0]);
    }

    @Test
    void everyBatchFitsItsBucketAndBucketsAreFew() {
        java.util.Set<Integer> buckets = new java.util.TreeSet<>();
        for (int rows = 1; rows <= DecodeGraphs.MAX_BATCH; rows++) {
            int b = DecodeGraphs.bucket(rows);
            assertTrue(b >= rows && b - rows < 8, rows + " rows padded to " + b);
            buckets.add(b);
        }
        assertEquals(3 + DecodeGraphs.MAX_BATCH / 8, buckets.size(), "buckets " + buckets);
    }

    @Test
    void largerBatchesLaunchEagerly() {
        assertTrue(DecodeGraphs.fits(1));
        assertTrue(DecodeGraphs.fits(DecodeGraphs.MAX_BATCH));
        assertFalse(DecodeGraphs.fits(DecodeGraphs.MAX_BATCH + 1));
        assertFalse(DecodeGraphs.fits(0));
    }
}

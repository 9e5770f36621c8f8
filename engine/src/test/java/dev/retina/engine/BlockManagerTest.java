package dev.retina.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class BlockManagerTest {
    private static Sequence seq(long id, int promptLen) {
        return new Sequence(id, "r" + id, 0, new int[promptLen], List.of(), SamplingParams.greedy(10), List.of(), 0, 0);
    }

    @Test
    void allocatesOnlyWhatTheNewTokensNeedAndFreesEverything() {
        BlockManager bm = new BlockManager(10, 4);
        Sequence s = seq(1, 9);
        s.setStatus(Sequence.Status.RUNNING);
        assertEquals(3, bm.numNewBlocksNeeded(s, 9));
        bm.allocate(s, 5);
        assertEquals(2, s.numBlocks());
        s.advanceComputed(5);
        bm.allocate(s, 3); // positions 5..7 fit block 1
        assertEquals(2, s.numBlocks());
        s.advanceComputed(3);
        bm.allocate(s, 1);
        assertEquals(3, s.numBlocks());
        assertEquals(7, bm.numFreeBlocks());
        bm.checkInvariants(List.of(s));
        bm.free(s);
        assertEquals(10, bm.numFreeBlocks());
        bm.checkInvariants(List.of());
    }

    @Test
    void sharedBlocksReturnOnlyWhenTheLastReferenceGoes() {
        BlockManager bm = new BlockManager(8, 4);
        Sequence parent = seq(1, 12);
        Sequence child = seq(2, 12);
        parent.setStatus(Sequence.Status.RUNNING);
        child.setStatus(Sequence.Status.RUNNING);
        bm.allocate(parent, 12);
        parent.advanceComputed(12);
        bm.share(parent, child, 2);
        child.setCachedPrefix(8);
        assertEquals(5, bm.numFreeBlocks());
        bm.checkInvariants(List.of(parent, child));
        bm.free(parent);
        assertEquals(6, bm.numFreeBlocks()); // parent's private third block only
        bm.checkInvariants(List.of(child));
        bm.free(child);
        assertEquals(8, bm.numFreeBlocks());
        bm.checkInvariants(List.of());
    }

    @Test
    void refusesToOverAllocateAndDetectsLeaks() {
        BlockManager bm = new BlockManager(2, 4);
        Sequence s = seq(1, 12);
        s.setStatus(Sequence.Status.RUNNING);
        assertThrows(IllegalStateException.class, () -> bm.allocate(s, 12));
        bm.allocate(s, 8);
        // A sequence that disappears without free() is a leak the invariant check reports.
        assertThrows(IllegalStateException.class, () -> bm.checkInvariants(List.of()));
    }
}

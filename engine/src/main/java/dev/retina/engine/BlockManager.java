package dev.retina.engine;

import java.util.ArrayDeque;
import java.util.Collection;

/**
 * Owns the KV cache's block ids: a free list plus a reference count per block. Called only from the engine thread.
 *
 * <p>Sharing for n &gt; 1: when choice 0 has computed its prompt, each sibling takes a reference to the prompt's
 * <em>full</em> blocks that end before the last prompt token ({@code (numPromptTokens - 1) / blockSize} blocks) and
 * recomputes the remaining tail into blocks of its own. Shared blocks are therefore never written again (every
 * later write lands at a position past them), so no copy-on-write is needed, and the tail recompute also yields the
 * sibling's own last-position logits to sample its first token from. A block returns to the free list when its
 * count drops to zero.
 */
public final class BlockManager {
    private final int numBlocks;
    private final int blockSize;
    private final int[] refCounts;
    private final ArrayDeque<Integer> freeBlockIds = new ArrayDeque<>();

    public BlockManager(int numBlocks, int blockSize) {
        if (numBlocks < 1) throw new IllegalArgumentException("numBlocks must be >= 1, got " + numBlocks);
        if (blockSize < 1) throw new IllegalArgumentException("blockSize must be >= 1, got " + blockSize);
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.refCounts = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) freeBlockIds.add(i);
    }

    public int numBlocks() { return numBlocks; }
    public int blockSize() { return blockSize; }
    public int numFreeBlocks() { return freeBlockIds.size(); }

    /** Blocks needed to hold {@code numTokens} tokens. */
    public int blocksFor(int numTokens) {
        return (numTokens + blockSize - 1) / blockSize;
    }

    /** How many new blocks {@code seq} needs so that its table covers {@code numComputed + numNewTokens} tokens. */
    public int numNewBlocksNeeded(Sequence seq, int numNewTokens) {
        return Math.max(0, blocksFor(seq.numComputedTokens() + numNewTokens) - seq.numBlocks());
    }

    public boolean canAllocate(Sequence seq, int numNewTokens) {
        return numNewBlocksNeeded(seq, numNewTokens) <= freeBlockIds.size();
    }

    /** Grows {@code seq}'s block table to cover {@code numComputed + numNewTokens} tokens. */
    public void allocate(Sequence seq, int numNewTokens) {
        int needed = numNewBlocksNeeded(seq, numNewTokens);
        if (needed > freeBlockIds.size())
            throw new IllegalStateException("need " + needed + " blocks, " + freeBlockIds.size() + " free: " + seq);
        for (int i = 0; i < needed; i++) {
            int id = freeBlockIds.poll();
            if (refCounts[id] != 0) throw new IllegalStateException("free block " + id + " has refs " + refCounts[id]);
            refCounts[id] = 1;
            seq.blockTable().add(id);
        }
    }

    /**
     * Gives {@code child} references to {@code parent}'s first {@code numSharedBlocks} blocks (which must be full
     * and never written again). The child must hold no blocks.
     */
    public void share(Sequence parent, Sequence child, int numSharedBlocks) {
        if (child.numBlocks() != 0) throw new IllegalStateException("child already holds blocks: " + child);
        if (numSharedBlocks > parent.numBlocks())
            throw new IllegalArgumentException("sharing " + numSharedBlocks + " of " + parent.numBlocks() + " blocks");
        for (int i = 0; i < numSharedBlocks; i++) {
            int id = parent.blockTable().get(i);
            refCounts[id]++;
            child.blockTable().add(id);
        }
    }

    /** Drops all of {@code seq}'s block references (finish, abort or preemption). */
    public void free(Sequence seq) {
        IntList table = seq.blockTable();
        // Free in reverse so the most recently used blocks are reused last (keeps the list's order stable-ish).
        for (int i = table.size() - 1; i >= 0; i--) {
            int id = table.get(i);
            if (refCounts[id] <= 0) throw new IllegalStateException("double free of block " + id + " by " + seq);
            if (--refCounts[id] == 0) freeBlockIds.add(id);
        }
        table.clear();
    }

    /**
     * Checks that the reference counts equal the block tables of {@code liveSequences} (every sequence that may hold
     * blocks) and that the free list holds exactly the unreferenced blocks, once each. Throws on violation.
     */
    public void checkInvariants(Collection<Sequence> liveSequences) {
        int[] expected = new int[numBlocks];
        for (Sequence seq : liveSequences) {
            IntList table = seq.blockTable();
            if (seq.status() != Sequence.Status.RUNNING && table.size() != 0)
                throw new IllegalStateException("non-running sequence holds blocks: " + seq);
            if (seq.status() == Sequence.Status.RUNNING && blocksFor(seq.numComputedTokens()) > table.size())
                throw new IllegalStateException("computed tokens not covered by blocks: " + seq);
            for (int i = 0; i < table.size(); i++) expected[table.get(i)]++;
        }
        boolean[] inFreeList = new boolean[numBlocks];
        for (int id : freeBlockIds) {
            if (inFreeList[id]) throw new IllegalStateException("block " + id + " twice in the free list");
            inFreeList[id] = true;
        }
        for (int id = 0; id < numBlocks; id++) {
            if (expected[id] != refCounts[id])
                throw new IllegalStateException("block " + id + ": refCount " + refCounts[id] + ", tables hold " + expected[id]);
            if ((refCounts[id] == 0) != inFreeList[id])
                throw new IllegalStateException("block " + id + ": refCount " + refCounts[id] + ", free=" + inFreeList[id]);
        }
    }
}

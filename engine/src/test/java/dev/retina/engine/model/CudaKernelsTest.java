package dev.retina.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The launchers' host-side arithmetic (the kernels themselves run only on a GPU: CudaKernelsCheck). */
class CudaKernelsTest {
    @Test
    void warpThreadsRoundUpToWholeWarpsWithinBounds() {
        assertEquals(512, CudaKernels.warpThreads(4096 / 8, 1024)); // rms_norm_vec at hidden 4096
        assertEquals(1024, CudaKernels.warpThreads(4096 / 4, 1024)); // rms_norm at hidden 4096
        assertEquals(1024, CudaKernels.warpThreads(8192 / 4, 1024)); // capped
        assertEquals(32, CudaKernels.warpThreads(5, 1024));           // at least one warp
        assertEquals(32, CudaKernels.warpThreads(0, 256));
        assertEquals(64, CudaKernels.warpThreads(33, 256));
        assertEquals(128, CudaKernels.warpThreads(128, 256));          // paged_attention_reduce at head_dim 128
        assertEquals(256, CudaKernels.warpThreads(512, 256));          // embed_rows at hidden 4096
    }
}

package dev.retina.engine.model;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;

/**
 * GPU time of spans of the legacy stream's queue (the vision encoder's calls, say), measured with pairs of CUDA
 * events and read back only once the GPU has passed them: timing a span never makes the host wait for the device, so
 * the host can queue the next work (the merge, the prefill) while the span runs. Pairs are pooled. Engine thread
 * only; {@link LlavaModel#newGpuSpans()} gives one where the model runs Retina's CUDA kernels.
 */
public final class GpuSpans {
    private final CudaKernels kernels;
    private final ArrayDeque<MemorySegment[]> free = new ArrayDeque<>();
    private final ArrayDeque<MemorySegment[]> pending = new ArrayDeque<>();
    private MemorySegment[] open;

    GpuSpans(CudaKernels kernels) {
        this.kernels = kernels;
    }

    /** Starts a span at this point of the legacy stream's queue. */
    public void begin() {
        begin(MemorySegment.NULL);
    }

    /** Starts a span at this point of {@code stream}'s queue (a CUstream; NULL: the legacy stream). */
    void begin(MemorySegment stream) {
        if (open != null) throw new IllegalStateException("a span is already open");
        open = free.isEmpty() ? new MemorySegment[] {kernels.newEvent(), kernels.newEvent()} : free.pop();
        kernels.record(open[0], stream);
    }

    /** Ends the open span at this point of the legacy stream's queue. */
    public void end() {
        end(MemorySegment.NULL);
    }

    /** Ends the open span at this point of {@code stream}'s queue. */
    void end(MemorySegment stream) {
        if (open == null) throw new IllegalStateException("no span is open");
        kernels.record(open[1], stream);
        pending.add(open);
        open = null;
    }

    /** Nanoseconds of the finished spans the GPU has passed, oldest first, each counted once; never waits. */
    public long settledNanos() {
        long nanos = 0;
        while (!pending.isEmpty() && kernels.passed(pending.peek()[1])) nanos += take();
        return nanos;
    }

    /** Nanoseconds of every finished span, waiting for the GPU to pass them (profiling, where the step has synced). */
    public long awaitNanos() {
        long nanos = 0;
        while (!pending.isEmpty()) nanos += take();
        return nanos;
    }

    private long take() {
        MemorySegment[] pair = pending.pop();
        long nanos = Math.round(kernels.elapsedMs(pair[0], pair[1]) * 1e6);
        free.push(pair);
        return nanos;
    }
}

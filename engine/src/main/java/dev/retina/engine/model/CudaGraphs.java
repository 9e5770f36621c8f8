package dev.retina.engine.model;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * CUDA graphs through the driver API and Java's FFM: one non-blocking stream that Retina owns, stream capture into a
 * graph, instantiation and replay, and the stream-ordered copies and events a replayed step needs around it. The
 * stream does not synchronise implicitly with the legacy default stream (DJL's ops), so a capture cannot be broken by
 * another thread's work there; {@link #waitForLegacy} and {@link #legacyWaits} order the two explicitly.
 *
 * <p>Not thread-safe: the engine thread only. The caller makes the primary context current ({@link
 * CudaKernels#ensureContext}) before each use.
 */
final class CudaGraphs implements AutoCloseable {
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG;
    private static final AddressLayout PTR = ValueLayout.ADDRESS;
    private static final int STREAM_NON_BLOCKING = 1;     // CU_STREAM_NON_BLOCKING
    private static final int CAPTURE_THREAD_LOCAL = 1;    // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
    private static final int CAPTURE_RELAXED = 2;         // CU_STREAM_CAPTURE_MODE_RELAXED
    private static final int EVENT_DISABLE_TIMING = 2;    // CU_EVENT_DISABLE_TIMING
    private static final int MEMORY_DEVICE = 2;           // CU_MEMORYTYPE_DEVICE

    private final MethodHandle cuStreamBeginCapture;
    private final MethodHandle cuStreamEndCapture;
    private final MethodHandle cuGraphInstantiate;
    private final MethodHandle cuGraphLaunch;
    private final MethodHandle cuGraphExecDestroy;
    private final MethodHandle cuGraphDestroy;
    private final MethodHandle cuMemcpyDtoDAsync;
    private final MethodHandle cuMemcpy2DAsync;
    private final MethodHandle cuMemsetD32Async;
    private final MethodHandle cuEventRecord;
    private final MethodHandle cuStreamWaitEvent;
    private final MethodHandle cuStreamDestroy;
    private final MethodHandle cuMemHostAlloc;
    private final MethodHandle cuMemFreeHost;
    private final MethodHandle cuMemcpyHtoDAsync;
    private final MethodHandle cuEventSynchronize;
    private final MethodHandle cuGetErrorString;
    private final MemorySegment stream;
    private final MemorySegment inputsReady;  // recorded on the legacy stream, waited for by ours
    private final MemorySegment stepDone;     // recorded on ours, waited for by the legacy stream
    private final MemorySegment out;
    private final MemorySegment copy2d;       // CUDA_MEMCPY2D (128 bytes)
    private final MemorySegment stagingCopied; // recorded after each host-to-device copy of the staging buffer
    private boolean stagingInFlight;

    /** A captured and instantiated graph; {@link #close} destroys both. */
    final class Graph implements AutoCloseable {
        private final MemorySegment graph;
        private final MemorySegment exec;

        private Graph(MemorySegment graph, MemorySegment exec) {
            this.graph = graph;
            this.exec = exec;
        }

        /** Replays the graph on the stream. */
        void launch() {
            call(() -> (int) cuGraphLaunch.invokeExact(exec, stream), "cuGraphLaunch");
        }

        @Override
        public void close() {
            call(() -> (int) cuGraphExecDestroy.invokeExact(exec), "cuGraphExecDestroy");
            call(() -> (int) cuGraphDestroy.invokeExact(graph), "cuGraphDestroy");
        }
    }

    CudaGraphs() {
        Linker linker = Linker.nativeLinker();
        SymbolLookup cuda = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
        java.util.function.BiFunction<String, FunctionDescriptor, MethodHandle> driver =
                (name, fd) -> CudaKernels.handle(linker, cuda, name, fd);
        Arena arena = Arena.global();
        out = arena.allocate(64, 8);
        copy2d = arena.allocate(128, 8);
        cuGetErrorString = driver.apply("cuGetErrorString", FunctionDescriptor.of(I32, I32, PTR));
        MethodHandle streamCreate = driver.apply("cuStreamCreate", FunctionDescriptor.of(I32, PTR, I32));
        MethodHandle eventCreate = driver.apply("cuEventCreate", FunctionDescriptor.of(I32, PTR, I32));
        cuStreamBeginCapture = driver.apply("cuStreamBeginCapture_v2", FunctionDescriptor.of(I32, PTR, I32));
        cuStreamEndCapture = driver.apply("cuStreamEndCapture", FunctionDescriptor.of(I32, PTR, PTR));
        cuGraphInstantiate = driver.apply("cuGraphInstantiateWithFlags",
                FunctionDescriptor.of(I32, PTR, PTR, I64));
        cuGraphLaunch = driver.apply("cuGraphLaunch", FunctionDescriptor.of(I32, PTR, PTR));
        cuGraphExecDestroy = driver.apply("cuGraphExecDestroy", FunctionDescriptor.of(I32, PTR));
        cuGraphDestroy = driver.apply("cuGraphDestroy", FunctionDescriptor.of(I32, PTR));
        cuMemcpyDtoDAsync = driver.apply("cuMemcpyDtoDAsync_v2", FunctionDescriptor.of(I32, I64, I64, I64, PTR));
        cuMemcpy2DAsync = driver.apply("cuMemcpy2DAsync_v2", FunctionDescriptor.of(I32, PTR, PTR));
        cuMemsetD32Async = driver.apply("cuMemsetD32Async", FunctionDescriptor.of(I32, I64, I32, I64, PTR));
        cuEventRecord = driver.apply("cuEventRecord", FunctionDescriptor.of(I32, PTR, PTR));
        cuStreamWaitEvent = driver.apply("cuStreamWaitEvent", FunctionDescriptor.of(I32, PTR, PTR, I32));
        cuStreamDestroy = driver.apply("cuStreamDestroy_v2", FunctionDescriptor.of(I32, PTR));
        cuMemHostAlloc = driver.apply("cuMemHostAlloc", FunctionDescriptor.of(I32, PTR, I64, I32));
        cuMemFreeHost = driver.apply("cuMemFreeHost", FunctionDescriptor.of(I32, PTR));
        cuMemcpyHtoDAsync = driver.apply("cuMemcpyHtoDAsync_v2", FunctionDescriptor.of(I32, I64, PTR, I64, PTR));
        cuEventSynchronize = driver.apply("cuEventSynchronize", FunctionDescriptor.of(I32, PTR));
        call(() -> (int) streamCreate.invokeExact(out, STREAM_NON_BLOCKING), "cuStreamCreate");
        stream = out.get(PTR, 0);
        call(() -> (int) eventCreate.invokeExact(out, EVENT_DISABLE_TIMING), "cuEventCreate");
        inputsReady = out.get(PTR, 0);
        call(() -> (int) eventCreate.invokeExact(out, EVENT_DISABLE_TIMING), "cuEventCreate");
        stepDone = out.get(PTR, 0);
        call(() -> (int) eventCreate.invokeExact(out, EVENT_DISABLE_TIMING), "cuEventCreate");
        stagingCopied = out.get(PTR, 0);
    }

    /** Page-locked host memory of {@code bytes} (asynchronous copies from it); {@link #freeHost} releases it. */
    MemorySegment allocHost(long bytes) {
        call(() -> (int) cuMemHostAlloc.invokeExact(out, bytes, 0), "cuMemHostAlloc");
        return out.get(PTR, 0).reinterpret(bytes);
    }

    void freeHost(MemorySegment host) {
        awaitStaging();
        call(() -> (int) cuMemFreeHost.invokeExact(host), "cuMemFreeHost");
    }

    /** Waits until the last {@link #copyFromStaging} has read its host memory (before the host writes it again). */
    void awaitStaging() {
        if (!stagingInFlight) return;
        call(() -> (int) cuEventSynchronize.invokeExact(stagingCopied), "cuEventSynchronize");
        stagingInFlight = false;
    }

    /** Copies {@code bytes} of page-locked {@code host} memory to device address dst on our stream. */
    void copyFromStaging(long dst, MemorySegment host, long bytes) {
        call(() -> (int) cuMemcpyHtoDAsync.invokeExact(dst, host, bytes, stream), "cuMemcpyHtoDAsync");
        call(() -> (int) cuEventRecord.invokeExact(stagingCopied, stream), "cuEventRecord");
        stagingInFlight = true;
    }

    /** The stream captures and replays run on (CUstream). */
    MemorySegment stream() {
        return stream;
    }

    /** Our stream waits for everything queued so far on the legacy default stream (the step's DJL inputs). */
    void waitForLegacy() {
        call(() -> (int) cuEventRecord.invokeExact(inputsReady, MemorySegment.NULL), "cuEventRecord");
        call(() -> (int) cuStreamWaitEvent.invokeExact(stream, inputsReady, 0), "cuStreamWaitEvent");
    }

    /** The legacy default stream waits for everything queued so far on ours (DJL reads the step's outputs after). */
    void legacyWaits() {
        call(() -> (int) cuEventRecord.invokeExact(stepDone, stream), "cuEventRecord");
        call(() -> (int) cuStreamWaitEvent.invokeExact(MemorySegment.NULL, stepDone, 0), "cuStreamWaitEvent");
    }

    /** Device-to-device copy of {@code bytes} on our stream. */
    void copy(long dst, long src, long bytes) {
        if (bytes == 0) return;
        call(() -> (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream), "cuMemcpyDtoDAsync");
    }

    /** {@code height} rows of {@code widthBytes}, from rows {@code srcPitch} bytes apart to rows {@code dstPitch} apart. */
    void copy2d(long dst, long dstPitch, long src, long srcPitch, long widthBytes, long height) {
        if (widthBytes == 0 || height == 0) return;
        copy2d.fill((byte) 0);
        copy2d.set(I32, 16, MEMORY_DEVICE);   // srcMemoryType
        copy2d.set(I64, 32, src);             // srcDevice
        copy2d.set(I64, 48, srcPitch);
        copy2d.set(I32, 72, MEMORY_DEVICE);   // dstMemoryType
        copy2d.set(I64, 88, dst);             // dstDevice
        copy2d.set(I64, 104, dstPitch);
        copy2d.set(I64, 112, widthBytes);
        copy2d.set(I64, 120, height);
        call(() -> (int) cuMemcpy2DAsync.invokeExact(copy2d, stream), "cuMemcpy2DAsync");
    }

    /** Sets {@code count} 32-bit words at dst to {@code value} on our stream. */
    void fill32(long dst, int value, long count) {
        if (count == 0) return;
        call(() -> (int) cuMemsetD32Async.invokeExact(dst, value, count, stream), "cuMemsetD32Async");
    }

    /** Starts capturing our stream (this thread's unsafe calls would fail the capture, other threads' not). */
    void beginCapture() {
        call(() -> (int) cuStreamBeginCapture.invokeExact(stream, CAPTURE_THREAD_LOCAL), "cuStreamBeginCapture");
    }

    /**
     * Starts capturing our stream in relaxed mode: this thread may still call cudaMalloc, as libtorch's caching
     * allocator does where a captured libtorch kernel needs a new output block.
     */
    void beginRelaxedCapture() {
        call(() -> (int) cuStreamBeginCapture.invokeExact(stream, CAPTURE_RELAXED), "cuStreamBeginCapture");
    }

    /** Ends the capture and instantiates it; throws (the capture ended either way) where it was invalidated. */
    Graph endCapture() {
        call(() -> (int) cuStreamEndCapture.invokeExact(stream, out), "cuStreamEndCapture");
        MemorySegment graph = out.get(PTR, 0);
        try {
            call(() -> (int) cuGraphInstantiate.invokeExact(out, graph, 0L), "cuGraphInstantiateWithFlags");
        } catch (RuntimeException e) {
            call(() -> (int) cuGraphDestroy.invokeExact(graph), "cuGraphDestroy");
            throw e;
        }
        return new Graph(graph, out.get(PTR, 0));
    }

    @Override
    public void close() {
        call(() -> (int) cuStreamDestroy.invokeExact(stream), "cuStreamDestroy");
    }

    private void call(CudaKernels.DriverCall c, String name) {
        CudaKernels.driverCall(cuGetErrorString, c, name);
    }
}

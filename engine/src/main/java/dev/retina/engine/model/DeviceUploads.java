package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.List;

/**
 * Host-to-device uploads that never make the host wait: each is a fresh (uninitialized) DJL array on the GPU filled by
 * {@code cuMemcpyHtoDAsync} from page-locked staging, on the legacy default stream, so it is ordered before the DJL ops
 * and kernels queued after it. DJL's {@code create} from a Java array instead copies from pageable memory, which waits
 * for everything the device has queued: a step that uploads its metadata after queueing its image encode would wait
 * for the vision tower, and each such copy costs the host ~20–30 µs with the GPU idle.
 *
 * <p>Staging is two page-locked buffers used in turn. Uploads go into the current one until it is full; the host then
 * records an event after its copies and switches to the other, waiting first for that one's event (recorded a whole
 * buffer's worth of uploads earlier, so the device has normally passed it). A buffer grows when one upload does not
 * fit. Engine thread only; the caller makes the primary context current ({@link CudaKernels#ensureContext}).
 */
public final class DeviceUploads {
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG;
    private static final AddressLayout PTR = ValueLayout.ADDRESS;
    private static final int EVENT_DISABLE_TIMING = 2;
    private static final long ALIGN = 256;
    private static final long INITIAL_BYTES = 4L << 20;

    private final CudaKernels kernels;
    private final MethodHandle cuMemHostAlloc;
    private final MethodHandle cuMemFreeHost;
    private final MethodHandle cuMemcpyHtoDAsync;
    private final MethodHandle cuEventRecord;
    private final MethodHandle cuEventSynchronize;
    private final MethodHandle cuGetErrorString;
    private final MemorySegment out = Arena.global().allocate(16, 8);
    private final MemorySegment[] buffers = new MemorySegment[2];
    private final MemorySegment[] copied = new MemorySegment[2]; // recorded after a buffer's last copy
    private final boolean[] inFlight = new boolean[2];
    private int current;
    private long offset;
    private static final int DOWNLOAD_SLOTS = 4;
    private final MethodHandle cuMemcpyDtoHAsync;
    private final MemorySegment[] downloadBuffers = new MemorySegment[DOWNLOAD_SLOTS];
    private final MemorySegment[] downloaded = new MemorySegment[DOWNLOAD_SLOTS]; // recorded after a slot's copy
    private final Download[] downloadOwners = new Download[DOWNLOAD_SLOTS];       // unread downloads, by slot
    private int nextDownload;

    DeviceUploads(CudaKernels kernels) {
        this.kernels = kernels;
        Linker linker = Linker.nativeLinker();
        SymbolLookup cuda = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
        cuGetErrorString = CudaKernels.handle(linker, cuda, "cuGetErrorString", FunctionDescriptor.of(I32, I32, PTR));
        cuMemHostAlloc = CudaKernels.handle(linker, cuda, "cuMemHostAlloc", FunctionDescriptor.of(I32, PTR, I64, I32));
        cuMemFreeHost = CudaKernels.handle(linker, cuda, "cuMemFreeHost", FunctionDescriptor.of(I32, PTR));
        cuMemcpyHtoDAsync = CudaKernels.handle(linker, cuda, "cuMemcpyHtoDAsync_v2",
                FunctionDescriptor.of(I32, I64, PTR, I64, PTR));
        cuMemcpyDtoHAsync = CudaKernels.handle(linker, cuda, "cuMemcpyDtoHAsync_v2",
                FunctionDescriptor.of(I32, PTR, I64, I64, PTR));
        cuEventRecord = CudaKernels.handle(linker, cuda, "cuEventRecord", FunctionDescriptor.of(I32, PTR, PTR));
        cuEventSynchronize = CudaKernels.handle(linker, cuda, "cuEventSynchronize", FunctionDescriptor.of(I32, PTR));
        MethodHandle eventCreate = CudaKernels.handle(linker, cuda, "cuEventCreate", FunctionDescriptor.of(I32, PTR, I32));
        kernels.ensureContext();
        for (int i = 0; i < 2; i++) {
            call(() -> (int) eventCreate.invokeExact(out, EVENT_DISABLE_TIMING), "cuEventCreate");
            copied[i] = out.get(PTR, 0);
        }
        for (int i = 0; i < DOWNLOAD_SLOTS; i++) {
            call(() -> (int) eventCreate.invokeExact(out, EVENT_DISABLE_TIMING), "cuEventCreate");
            downloaded[i] = out.get(PTR, 0);
        }
    }

    /**
     * A device-to-host copy of int64 values into page-locked memory, queued on the legacy stream behind the work that
     * computes them; {@link #longs} waits for this copy alone, not for work queued after it (the next decode step).
     */
    public final class Download {
        private final int slot;
        private final int count;
        private long[] values;

        private Download(int slot, int count) {
            this.slot = slot;
            this.count = count;
        }

        /** The values, once the copy has landed (waits for it the first time). */
        public long[] longs() {
            if (values == null) {
                kernels.ensureContext();
                call(() -> (int) cuEventSynchronize.invokeExact(downloaded[slot]), "cuEventSynchronize");
                values = new long[count];
                MemorySegment.copy(downloadBuffers[slot], I64, 0, values, 0, count);
                downloadOwners[slot] = null;
            }
            return values;
        }
    }

    /**
     * Queues a copy of {@code src} (int64, contiguous, on the GPU) to the host. Four copies can be in flight; a fifth
     * reads the oldest unread one first.
     */
    public Download longsToHost(NDArray src) {
        if (src.getDataType() != DataType.INT64) throw new IllegalArgumentException("int64 expected, got " + src.getDataType());
        kernels.ensureContext();
        int count = Math.toIntExact(src.size());
        int slot = nextDownload;
        nextDownload = (nextDownload + 1) % DOWNLOAD_SLOTS;
        if (downloadOwners[slot] != null) downloadOwners[slot].longs();
        long bytes = 8L * count;
        if (downloadBuffers[slot] == null || downloadBuffers[slot].byteSize() < bytes) {
            if (downloadBuffers[slot] != null) free(downloadBuffers[slot]);
            downloadBuffers[slot] = alloc(Math.max(bytes, 4096));
        }
        MemorySegment dst = downloadBuffers[slot];
        long address = kernels.address(src);
        if (bytes > 0)
            call(() -> (int) cuMemcpyDtoHAsync.invokeExact(dst, address, bytes, MemorySegment.NULL), "cuMemcpyDtoHAsync");
        MemorySegment event = downloaded[slot];
        call(() -> (int) cuEventRecord.invokeExact(event, MemorySegment.NULL), "cuEventRecord");
        Download d = new Download(slot, count);
        downloadOwners[slot] = d;
        return d;
    }

    /** {@code values} as a (values.length) int64 array on the device, in {@code step}. */
    public NDArray longs(long[] values, NDManager step) {
        MemorySegment src = staging(8L * values.length);
        MemorySegment.copy(values, 0, src, I64, 0, values.length);
        return upload(src, new Shape(values.length), DataType.INT64, step);
    }

    /** {@code values} as an int32 array of {@code shape} (values.length elements) on the device, in {@code step}. */
    public NDArray ints(int[] values, Shape shape, NDManager step) {
        if (shape.size() != values.length) throw new IllegalArgumentException(values.length + " values for " + shape);
        MemorySegment src = staging(4L * values.length);
        MemorySegment.copy(values, 0, src, I32, 0, values.length);
        return upload(src, shape, DataType.INT32, step);
    }

    /** {@code values} as a float32 array of {@code shape} on the device, in {@code step}. */
    public NDArray floats(float[] values, Shape shape, NDManager step) {
        return floats(List.of(values), shape, step);
    }

    /** {@code values} as a boolean array of {@code shape} on the device, in {@code step}. */
    public NDArray bools(boolean[] values, Shape shape, NDManager step) {
        if (shape.size() != values.length) throw new IllegalArgumentException(values.length + " values for " + shape);
        MemorySegment src = staging(values.length);
        for (int i = 0; i < values.length; i++) src.set(ValueLayout.JAVA_BYTE, i, (byte) (values[i] ? 1 : 0));
        return upload(src, shape, DataType.BOOLEAN, step);
    }

    /** {@code parts} back to back as a float32 array of {@code shape} on the device (image pixels), in {@code step}. */
    public NDArray floats(List<float[]> parts, Shape shape, NDManager step) {
        long n = 0;
        for (float[] p : parts) n += p.length;
        if (shape.size() != n) throw new IllegalArgumentException(n + " values for " + shape);
        MemorySegment src = staging(4L * n);
        long at = 0;
        for (float[] p : parts) {
            MemorySegment.copy(p, 0, src, ValueLayout.JAVA_FLOAT, at, p.length);
            at += 4L * p.length;
        }
        return upload(src, shape, DataType.FLOAT32, step);
    }

    private NDArray upload(MemorySegment src, Shape shape, DataType dtype, NDManager step) {
        NDArray dst = step.create(shape, dtype); // uninitialized: no copy, no wait
        if (src.byteSize() == 0) return dst;
        long address = kernels.address(dst);
        long bytes = src.byteSize();
        call(() -> (int) cuMemcpyHtoDAsync.invokeExact(address, src, bytes, MemorySegment.NULL), "cuMemcpyHtoDAsync");
        inFlight[current] = true;
        return dst;
    }

    /** {@code bytes} of page-locked staging that no queued copy still reads. */
    private MemorySegment staging(long bytes) {
        kernels.ensureContext();
        if (buffers[current] == null || offset + bytes > buffers[current].byteSize()) {
            if (buffers[current] != null) {
                if (inFlight[current]) record(current);
                current ^= 1;
                offset = 0;
            }
            await(current);
            if (buffers[current] == null || bytes > buffers[current].byteSize()) {
                long size = Math.max(INITIAL_BYTES, buffers[current] == null ? bytes : Math.max(bytes,
                        2 * buffers[current].byteSize()));
                if (buffers[current] != null) free(buffers[current]);
                buffers[current] = alloc(size);
            }
        }
        MemorySegment s = buffers[current].asSlice(offset, bytes);
        offset += (bytes + ALIGN - 1) / ALIGN * ALIGN;
        return s;
    }

    private void record(int buffer) {
        call(() -> (int) cuEventRecord.invokeExact(copied[buffer], MemorySegment.NULL), "cuEventRecord");
    }

    private void await(int buffer) {
        if (!inFlight[buffer]) return;
        call(() -> (int) cuEventSynchronize.invokeExact(copied[buffer]), "cuEventSynchronize");
        inFlight[buffer] = false;
    }

    private MemorySegment alloc(long bytes) {
        call(() -> (int) cuMemHostAlloc.invokeExact(out, bytes, 0), "cuMemHostAlloc");
        return out.get(PTR, 0).reinterpret(bytes);
    }

    private void free(MemorySegment host) {
        call(() -> (int) cuMemFreeHost.invokeExact(host), "cuMemFreeHost");
    }

    private void call(CudaKernels.DriverCall c, String name) {
        CudaKernels.driverCall(cuGetErrorString, c, name);
    }
}

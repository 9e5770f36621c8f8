package dev.retina.engine.model;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * cuBLAS through Java's FFM: the float16 GEMMs of the direct decode path and the direct vision tower, called on raw
 * device addresses with no DJL array per call. Uses the libcublas that libtorch itself loaded (looked up by soname
 * after DJL's engine has started) and its own handle on the legacy default stream, so GEMMs order with DJL's ops and
 * Retina's kernels.
 * fp16 inputs and output, fp32 accumulation (CUBLAS_COMPUTE_32F), as torch's fp16 matmul.
 *
 * <p>Not thread-safe (one scalar buffer); used from the engine thread only.
 */
final class Cublas {
    private static final Logger log = LoggerFactory.getLogger(Cublas.class);
    private static final String[] LIBRARIES = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    private static final int OP_N = 0;
    private static final int OP_T = 1;
    private static final int CUDA_R_16F = 2;
    private static final int COMPUTE_32F = 68;
    private static final int GEMM_DEFAULT = -1;

    private final MethodHandle gemmEx;
    private final MethodHandle setWorkspace; // cublasSetWorkspace_v2, or null (older libcublas)
    private final MethodHandle setStream;    // cublasSetStream_v2
    private final MemorySegment handle;
    private final MemorySegment one;   // float 1
    private final MemorySegment zero;  // float 0

    private Cublas(Linker linker, SymbolLookup lib) throws Throwable {
        Arena arena = Arena.global();
        MethodHandle create = linker.downcallHandle(lib.find("cublasCreate_v2").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
        ValueLayout.OfInt i32 = ValueLayout.JAVA_INT;
        ValueLayout addr = ValueLayout.ADDRESS;
        gemmEx = linker.downcallHandle(lib.find("cublasGemmEx").orElseThrow(), FunctionDescriptor.of(i32,
                addr, i32, i32, i32, i32, i32, addr, addr, i32, i32, addr, i32, i32, addr, addr, i32, i32, i32, i32));
        setWorkspace = lib.find("cublasSetWorkspace_v2").map(f -> linker.downcallHandle(f,
                FunctionDescriptor.of(i32, addr, addr, ValueLayout.JAVA_LONG))).orElse(null);
        setStream = linker.downcallHandle(lib.find("cublasSetStream_v2").orElseThrow(),
                FunctionDescriptor.of(i32, addr, addr));
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        int err = (int) create.invokeExact(out);
        if (err != 0) throw new IllegalStateException("cublasCreate_v2 returned " + err);
        handle = out.get(ValueLayout.ADDRESS, 0);
        one = arena.allocate(ValueLayout.JAVA_FLOAT);
        one.set(ValueLayout.JAVA_FLOAT, 0, 1f);
        zero = arena.allocate(ValueLayout.JAVA_FLOAT);
        zero.set(ValueLayout.JAVA_FLOAT, 0, 0f);
    }

    /**
     * cuBLAS with a handle on the current device, or empty where no libcublas is loaded or it fails. The caller makes
     * the CUDA context current on this thread first (libtorch has then loaded libcublas too).
     */
    static Optional<Cublas> load() {
        Linker linker = Linker.nativeLinker();
        for (String name : LIBRARIES) {
            try {
                SymbolLookup lib = SymbolLookup.libraryLookup(name, Arena.global());
                Cublas c = new Cublas(linker, lib);
                log.info("cuBLAS {} loaded for the direct paths (decode steps, vision tower)", name);
                return Optional.of(c);
            } catch (IllegalArgumentException e) {
                // not found under this name; try the next
            } catch (Throwable t) {
                log.info("cuBLAS {} unusable ({}); the direct paths stay off", name, t.toString());
                return Optional.empty();
            }
        }
        log.info("no libcublas found; the direct paths stay off");
        return Optional.empty();
    }

    /**
     * A new handle whose GEMMs go to {@code stream} (a CUstream Retina owns, for captures) with a workspace of
     * {@code bytes} at device address {@code ptr}, kept alive by the caller: a captured GEMM must not allocate.
     */
    static Cublas onStream(MemorySegment stream, long ptr, long bytes) {
        Cublas c = load().orElseThrow(() -> new IllegalStateException("no libcublas for a stream's own handle"));
        c.setStream(stream); // before the workspace: a stream change drops it
        if (!c.setWorkspace(ptr, bytes))
            throw new IllegalStateException("cublasSetWorkspace failed for a stream's handle");
        return c;
    }

    /**
     * Gives the handle a workspace of {@code bytes} at device address {@code ptr} (kept alive by the caller), which
     * cuBLAS's split-K and stream-K kernels use; NVIDIA recommends 32 MiB on Hopper. Returns false where this
     * libcublas has no cublasSetWorkspace_v2 or it fails (the handle keeps cuBLAS's own workspace pool).
     */
    boolean setWorkspace(long ptr, long bytes) {
        if (setWorkspace == null) return false;
        try {
            int err = (int) setWorkspace.invokeExact(handle, MemorySegment.ofAddress(ptr), bytes);
            if (err != 0) log.info("cublasSetWorkspace_v2 returned {}; keeping cuBLAS's own workspace", err);
            return err == 0;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasSetWorkspace_v2 failed", t);
        }
    }

    /**
     * Puts the handle's GEMMs on {@code stream} (a CUstream; NULL: the legacy default stream). cuBLAS resets a
     * workspace set with {@link #setWorkspace} when the stream changes, so set the stream first.
     */
    void setStream(MemorySegment stream) {
        try {
            int err = (int) setStream.invokeExact(handle, stream);
            if (err != 0) throw new IllegalStateException("cublasSetStream_v2 returned " + err);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasSetStream_v2 failed", t);
        }
    }

    /**
     * Row-major {@code y (m, n) = x (m, k) @ w (n, k)^T + (accumulate ? y : 0)}: a Linear layer without bias, fp16,
     * accumulated in fp32 and rounded once (with {@code accumulate}, the residual add fused into the GEMM).
     * Leading dimensions are the row lengths (contiguous rows).
     */
    void linear(long y, long x, long w, int m, int n, int k, boolean accumulate) {
        // Column-major view: y^T (n, m) = w (n, k) . x^T (k, m), i.e. op(A) = W^T of the (k, n) column-major W.
        MemorySegment beta = accumulate ? one : zero; // a typed local: invokeExact sees MemorySegment, not Object
        try {
            int err = (int) gemmEx.invokeExact(handle, OP_T, OP_N, n, m, k, one, MemorySegment.ofAddress(w), CUDA_R_16F,
                    k, MemorySegment.ofAddress(x), CUDA_R_16F, k, beta, MemorySegment.ofAddress(y),
                    CUDA_R_16F, n, COMPUTE_32F, GEMM_DEFAULT);
            if (err != 0) throw new IllegalStateException("cublasGemmEx returned " + err + " (m=" + m + " n=" + n
                    + " k=" + k + ")");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasGemmEx failed", t);
        }
    }
}

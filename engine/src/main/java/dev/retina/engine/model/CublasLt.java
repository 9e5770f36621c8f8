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
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * cuBLASLt through Java's FFM, autotuned per GEMM shape: the decode step's skinny GEMMs (a few rows against a whole
 * weight matrix) where cublasGemmEx's heuristic pick streams the weights well below the card's bandwidth. For each
 * shape, {@link #tune} times cublasGemmEx and cuBLASLt's heuristic candidates on the real weights of every layer in
 * turn (so the weights come from HBM, not L2, as in a step) and keeps the fastest; {@link #linear} then runs that
 * algorithm, or reports that cublasGemmEx won. Same math as {@link Cublas#linear}: fp16 in and out, fp32 accumulation,
 * {@code beta = 1} for the fused residual add. The workspace is the caller's; the stream is per call, so captured
 * steps (CUDA graphs) and eager ones share the plans.
 *
 * <p>Not thread-safe: the engine thread only.
 */
final class CublasLt {
    private static final Logger log = LoggerFactory.getLogger(CublasLt.class);
    private static final String[] LIBRARIES = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG;
    private static final java.lang.foreign.AddressLayout PTR = ValueLayout.ADDRESS;
    private static final int CUDA_R_16F = 2;
    private static final int CUDA_R_32F = 0;
    private static final int COMPUTE_32F = 68;
    private static final int DESC_TRANSA = 3;              // CUBLASLT_MATMUL_DESC_TRANSA
    private static final int PREF_MAX_WORKSPACE_BYTES = 1; // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
    private static final int RESULT_BYTES = 96;            // cublasLtMatmulHeuristicResult_t
    private static final int ALGO_BYTES = 64;              // cublasLtMatmulAlgo_t
    private static final int CANDIDATES = 16;
    private static final int TIMED_PASSES = 2;

    private final MethodHandle layoutCreate;
    private final MethodHandle heuristic;
    private final MethodHandle matmul;
    private final MemorySegment lt;
    private final MemorySegment desc;
    private final MemorySegment pref;
    private final MemorySegment one;
    private final MemorySegment zero;
    private final MemorySegment out;
    private final MemorySegment results;
    private final long workspace;
    private final long workspaceBytes;
    private final Arena arena = Arena.global();
    private final Map<Key, Plan> plans = new HashMap<>();

    private record Key(int m, int n, int k, boolean accumulate) {}

    /** A tuned shape: cuBLASLt's algorithm and layouts, or {@code algo == null}: cublasGemmEx was fastest. */
    private record Plan(MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment algo) {}

    private CublasLt(Linker linker, SymbolLookup lib, long workspace, long workspaceBytes) throws Throwable {
        this.workspace = workspace;
        this.workspaceBytes = workspaceBytes;
        MethodHandle create = linker.downcallHandle(lib.find("cublasLtCreate").orElseThrow(),
                FunctionDescriptor.of(I32, PTR));
        MethodHandle descCreate = linker.downcallHandle(lib.find("cublasLtMatmulDescCreate").orElseThrow(),
                FunctionDescriptor.of(I32, PTR, I32, I32));
        MethodHandle descSet = linker.downcallHandle(lib.find("cublasLtMatmulDescSetAttribute").orElseThrow(),
                FunctionDescriptor.of(I32, PTR, I32, PTR, I64));
        MethodHandle prefCreate = linker.downcallHandle(lib.find("cublasLtMatmulPreferenceCreate").orElseThrow(),
                FunctionDescriptor.of(I32, PTR));
        MethodHandle prefSet = linker.downcallHandle(lib.find("cublasLtMatmulPreferenceSetAttribute").orElseThrow(),
                FunctionDescriptor.of(I32, PTR, I32, PTR, I64));
        layoutCreate = linker.downcallHandle(lib.find("cublasLtMatrixLayoutCreate").orElseThrow(),
                FunctionDescriptor.of(I32, PTR, I32, I64, I64, I64));
        heuristic = linker.downcallHandle(lib.find("cublasLtMatmulAlgoGetHeuristic").orElseThrow(),
                FunctionDescriptor.of(I32, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, PTR, PTR));
        matmul = linker.downcallHandle(lib.find("cublasLtMatmul").orElseThrow(), FunctionDescriptor.of(I32,
                PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, PTR));
        out = arena.allocate(16, 8);
        results = arena.allocate((long) RESULT_BYTES * CANDIDATES, 8);
        one = arena.allocate(ValueLayout.JAVA_FLOAT);
        one.set(ValueLayout.JAVA_FLOAT, 0, 1f);
        zero = arena.allocate(ValueLayout.JAVA_FLOAT);
        zero.set(ValueLayout.JAVA_FLOAT, 0, 0f);
        check((int) create.invokeExact(out), "cublasLtCreate");
        lt = out.get(PTR, 0);
        check((int) descCreate.invokeExact(out, COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
        desc = out.get(PTR, 0);
        MemorySegment transA = arena.allocate(I32);
        transA.set(I32, 0, 1); // CUBLAS_OP_T: W (k, n) column-major is the row-major (n, k) weight
        check((int) descSet.invokeExact(desc, DESC_TRANSA, transA, 4L), "cublasLtMatmulDescSetAttribute");
        check((int) prefCreate.invokeExact(out), "cublasLtMatmulPreferenceCreate");
        pref = out.get(PTR, 0);
        MemorySegment ws = arena.allocate(I64);
        ws.set(I64, 0, workspaceBytes);
        check((int) prefSet.invokeExact(pref, PREF_MAX_WORKSPACE_BYTES, ws, 8L), "cublasLtMatmulPreferenceSetAttribute");
    }

    /**
     * cuBLASLt with a workspace of {@code workspaceBytes} at device address {@code workspace} (kept alive by the
     * caller), or empty where no libcublasLt is loaded. The CUDA context must be current (libtorch has then loaded
     * libcublasLt with libcublas).
     */
    static Optional<CublasLt> load(long workspace, long workspaceBytes) {
        Linker linker = Linker.nativeLinker();
        for (String name : LIBRARIES) {
            try {
                SymbolLookup lib = SymbolLookup.libraryLookup(name, Arena.global());
                CublasLt c = new CublasLt(linker, lib, workspace, workspaceBytes);
                log.info("cuBLASLt {} loaded for the decode step's GEMMs (autotuned per shape)", name);
                return Optional.of(c);
            } catch (IllegalArgumentException e) {
                // not found under this name; try the next
            } catch (Throwable t) {
                log.info("cuBLASLt {} unusable ({}); decode GEMMs stay on cublasGemmEx", name, t.toString());
                return Optional.empty();
            }
        }
        return Optional.empty();
    }

    /** Whether {@link #tune} has run for this shape. */
    boolean tuned(int m, int n, int k, boolean accumulate) {
        return plans.containsKey(new Key(m, n, k, accumulate));
    }

    /**
     * Row-major {@code y (m, n) = x (m, k) @ w (n, k)^T (+ y)} on {@code stream} with the tuned algorithm; false
     * (nothing launched) where the shape is untuned or cublasGemmEx was faster.
     */
    boolean linear(MemorySegment stream, long y, long x, long w, int m, int n, int k, boolean accumulate) {
        Plan p = plans.get(new Key(m, n, k, accumulate));
        if (p == null || p.algo == null) return false;
        run(p, stream, y, x, w, accumulate);
        return true;
    }

    /**
     * Times cublasGemmEx and up to 16 heuristic candidates for this shape, each as one GEMM per weight in
     * {@code weights} (every layer's, so each call streams its weight from HBM), on the legacy stream with events,
     * and keeps the fastest. {@code y} is scratch (m * n values, written); x is read. Returns a one-line summary.
     */
    String tune(Cublas blas, CudaKernels kernels, int m, int n, int k, boolean accumulate, long[] weights, long x,
                long y) {
        Key key = new Key(m, n, k, accumulate);
        MemorySegment a = layout(k, n, k);
        MemorySegment b = layout(k, m, k);
        MemorySegment c = layout(n, m, n);
        MemorySegment returned = out.asSlice(8, 4);
        int count;
        try {
            check((int) heuristic.invokeExact(lt, desc, a, b, c, c, pref, CANDIDATES, results, returned),
                    "cublasLtMatmulAlgoGetHeuristic");
            count = returned.get(I32, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtMatmulAlgoGetHeuristic failed", t);
        }
        double gemmEx = time(kernels, weights.length, () -> {
            for (long w : weights) blas.linear(y, x, w, m, n, k, accumulate);
        });
        double best = gemmEx;
        int bestIndex = -1;
        double first = Double.NaN;
        for (int i = 0; i < count; i++) {
            MemorySegment r = results.asSlice((long) i * RESULT_BYTES, RESULT_BYTES);
            long need = r.get(I64, ALGO_BYTES); // the candidate's workspace
            int state = r.get(I32, ALGO_BYTES + 8);
            if (state != 0 || need > workspaceBytes) continue;
            Plan trial = new Plan(a, b, c, r.asSlice(0, ALGO_BYTES));
            double us;
            try {
                us = time(kernels, weights.length, () -> {
                    for (long w : weights) run(trial, MemorySegment.NULL, y, x, w, accumulate);
                });
            } catch (IllegalStateException e) {
                continue; // a candidate that does not run here
            }
            if (i == 0) first = us;
            if (us < best) {
                best = us;
                bestIndex = i;
            }
        }
        MemorySegment algo = null;
        if (bestIndex >= 0) {
            algo = arena.allocate(ALGO_BYTES, 8);
            algo.copyFrom(results.asSlice((long) bestIndex * RESULT_BYTES, ALGO_BYTES));
        }
        plans.put(key, new Plan(a, b, c, algo));
        String s = String.format(Locale.ROOT, "m %d n %d k %d%s: cublasGemmEx %.1f us, cuBLASLt heuristic #0 %.1f us, "
                        + "best %s %.1f us (%d candidates)", m, n, k, accumulate ? " (+y)" : "", gemmEx, first,
                bestIndex < 0 ? "cublasGemmEx" : "cuBLASLt #" + bestIndex, best, count);
        log.info("GEMM autotune {}", s);
        return s;
    }

    /** Microseconds per GEMM of {@code body} (one GEMM per weight): one warm pass, then timed passes, CUDA events. */
    private static double time(CudaKernels kernels, int gemms, Runnable body) {
        body.run();
        kernels.recordEvent(0);
        for (int i = 0; i < TIMED_PASSES; i++) body.run();
        kernels.recordEvent(1);
        return kernels.elapsedMs(0, 1) * 1000.0 / (TIMED_PASSES * gemms);
    }

    private void run(Plan p, MemorySegment stream, long y, long x, long w, boolean accumulate) {
        MemorySegment beta = accumulate ? one : zero;
        MemorySegment yy = MemorySegment.ofAddress(y);
        try {
            int err = (int) matmul.invokeExact(lt, desc, one, MemorySegment.ofAddress(w), p.a, MemorySegment.ofAddress(x),
                    p.b, beta, yy, p.c, yy, p.c, p.algo, MemorySegment.ofAddress(workspace), workspaceBytes, stream);
            check(err, "cublasLtMatmul");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtMatmul failed", t);
        }
    }

    private MemorySegment layout(long rows, long cols, long ld) {
        try {
            check((int) layoutCreate.invokeExact(out, CUDA_R_16F, rows, cols, ld), "cublasLtMatrixLayoutCreate");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtMatrixLayoutCreate failed", t);
        }
        return out.get(PTR, 0);
    }

    private static void check(int err, String call) {
        if (err != 0) throw new IllegalStateException(call + " returned cuBLAS status " + err);
    }
}

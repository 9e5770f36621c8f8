package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
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
 * CUDA kernels DJL has no op for, called through libtorch's stable C shim (AOTInductor {@code aoti_torch_*}) with
 * Java's FFM. Tensor handles are {@code at::Tensor*}, the same pointers DJL's {@link PtNDArray} holds, so arguments
 * go in without copies and results come back as DJL arrays. Signatures are those of torch 2.11's
 * {@code torch/csrc/inductor/aoti_torch/generated/c_shim_cuda.h}; a function missing from the loaded libtorch (older
 * torch, CPU-only build) simply leaves the matching capability off, and callers use their DJL path.
 *
 * <p>Not thread-safe: one scratch buffer for out-parameters; the model calls it only from the engine thread.
 */
final class TorchShim {
    private static final Logger log = LoggerFactory.getLogger(TorchShim.class);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE;
    private static final java.lang.foreign.AddressLayout PTR = ValueLayout.ADDRESS;

    private final MethodHandle deleteTensor;   // (AtenTensorHandle) -> err
    private final MethodHandle flashForward;   // aoti_torch_cuda__flash_attention_forward, or null
    private final MethodHandle fusedRmsNorm;   // aoti_torch_cuda__fused_rms_norm, or null
    private final MethodHandle createStreamGuard; // aoti_torch_create_cuda_stream_guard, or null
    private final MethodHandle deleteStreamGuard; // aoti_torch_delete_cuda_stream_guard, or null
    private final MemorySegment scratch;       // out-parameters and boxed optionals, reused call to call

    // Offsets (bytes) into scratch.
    private static final long RET = 0;         // 5 handles
    private static final long CUM_Q = 40;
    private static final long CUM_K = 48;
    private static final long SCALE = 56;
    private static final long WEIGHT = 64;
    private static final long EPS = 72;
    private static final long SHAPE = 80;

    private TorchShim(MethodHandle deleteTensor, MethodHandle flashForward, MethodHandle fusedRmsNorm,
                      MethodHandle createStreamGuard, MethodHandle deleteStreamGuard) {
        this.deleteTensor = deleteTensor;
        this.flashForward = flashForward;
        this.fusedRmsNorm = fusedRmsNorm;
        this.createStreamGuard = deleteStreamGuard == null ? null : createStreamGuard;
        this.deleteStreamGuard = createStreamGuard == null ? null : deleteStreamGuard;
        this.scratch = Arena.global().allocate(128, 8);
    }

    private static volatile Optional<TorchShim> cuda;

    /** The CUDA shim of the libtorch DJL loaded, if that libtorch has one; looked up once. */
    static Optional<TorchShim> cuda() {
        Optional<TorchShim> c = cuda;
        if (c == null) {
            synchronized (TorchShim.class) {
                if (cuda == null) cuda = loadCuda();
                c = cuda;
            }
        }
        return c;
    }

    private static Optional<TorchShim> loadCuda() {
        try {
            Linker linker = Linker.nativeLinker();
            // Already loaded by DJL's JNI; dlopen by name finds the same copies (LD_LIBRARY_PATH / rpath).
            SymbolLookup cpu = SymbolLookup.libraryLookup("libtorch_cpu.so", Arena.global());
            SymbolLookup gpu = SymbolLookup.libraryLookup("libtorch_cuda.so", Arena.global());
            MethodHandle delete = linker.downcallHandle(cpu.find("aoti_torch_delete_tensor_object").orElseThrow(),
                    FunctionDescriptor.of(I32, PTR));
            MethodHandle flash = gpu.find("aoti_torch_cuda__flash_attention_forward").map(s -> linker.downcallHandle(s,
                    FunctionDescriptor.of(I32, PTR, PTR, PTR, PTR, PTR, I64, I64, F64, I32, I32, PTR, PTR, PTR, PTR,
                            PTR, PTR, PTR, PTR, PTR, PTR))).orElse(null);
            MethodHandle rms = gpu.find("aoti_torch_cuda__fused_rms_norm").map(s -> linker.downcallHandle(s,
                    FunctionDescriptor.of(I32, PTR, PTR, I64, PTR, PTR, PTR, PTR))).orElse(null);
            MethodHandle guard = gpu.find("aoti_torch_create_cuda_stream_guard").map(s -> linker.downcallHandle(s,
                    FunctionDescriptor.of(I32, PTR, I32, PTR))).orElse(null);
            MethodHandle unguard = gpu.find("aoti_torch_delete_cuda_stream_guard").map(s -> linker.downcallHandle(s,
                    FunctionDescriptor.of(I32, PTR))).orElse(null);
            log.info("libtorch CUDA shim: flash attention {}, fused RMSNorm {}, stream guard {}", flash != null,
                    rms != null, guard != null && unguard != null);
            return Optional.of(new TorchShim(delete, flash, rms, guard, unguard));
        } catch (RuntimeException | LinkageError e) {
            log.info("libtorch CUDA shim unavailable ({}); using DJL ops only", e.toString());
            return Optional.empty();
        }
    }

    boolean hasFlashAttention() {
        return flashForward != null;
    }

    boolean hasFusedRmsNorm() {
        return fusedRmsNorm != null;
    }

    boolean hasStreamGuard() {
        return createStreamGuard != null;
    }

    /**
     * Makes {@code stream} (a CUstream) libtorch's current stream on {@code device} until the guard is closed (the
     * shim's {@code CUDAStreamGuard}): the shim's kernels, and its caching allocator's blocks, then go to that stream.
     */
    AutoCloseable streamGuard(MemorySegment stream, int device) {
        scratch.set(PTR, RET, MemorySegment.NULL);
        int err;
        try {
            err = (int) createStreamGuard.invokeExact(stream, device, scratch.asSlice(RET));
        } catch (Throwable t) {
            throw new IllegalStateException("stream guard call failed", t);
        }
        check(err, "aoti_torch_create_cuda_stream_guard");
        MemorySegment guard = scratch.get(PTR, RET);
        return () -> {
            int e;
            try {
                e = (int) deleteStreamGuard.invokeExact(guard);
            } catch (Throwable t) {
                throw new IllegalStateException("stream guard delete failed", t);
            }
            check(e, "aoti_torch_delete_cuda_stream_guard");
        };
    }

    /**
     * Varlen flash attention (torch {@code _flash_attention_forward} with {@code cum_seq_q/k}): sequences packed end
     * to end, grouped-query attention native (heads a multiple of kvHeads). With {@code causal}, flash-attn aligns the
     * causal mask bottom-right: query i of a sequence with n new tokens over k keys sees keys up to k - n + i, which is
     * exactly the new tokens' positions when they are the context's last ones.
     *
     * @param query (totalQ, heads, headDim) float16/bfloat16, last dim contiguous
     * @param key   (totalK, kvHeads, headDim)
     * @param value (totalK, kvHeads, headDim)
     * @param cuSeqQ (numSeqs + 1) int32 on the device
     * @param cuSeqK (numSeqs + 1) int32 on the device
     * @return (totalQ, heads, headDim), in query's manager
     */
    NDArray flashAttentionVarlen(NDArray query, NDArray key, NDArray value, NDArray cuSeqQ, NDArray cuSeqK, int maxQ,
                                 int maxK, boolean causal, double scale) {
        return flashAttentionVarlen(query, key, value, cuSeqQ, cuSeqK, maxQ, maxK, causal, scale, null);
    }

    /**
     * As {@link #flashAttentionVarlen(NDArray, NDArray, NDArray, NDArray, NDArray, int, int, boolean, double)}; with
     * {@code keep} non-null, the call's other outputs (logsumexp, rng state) live on in {@code keep} instead of being
     * freed at once, so that a CUDA graph captured around the call owns every block it writes.
     */
    NDArray flashAttentionVarlen(NDArray query, NDArray key, NDArray value, NDArray cuSeqQ, NDArray cuSeqK, int maxQ,
                                 int maxK, boolean causal, double scale, NDManager keep) {
        scratch.set(PTR, CUM_Q, handle(cuSeqQ));
        scratch.set(PTR, CUM_K, handle(cuSeqK));
        scratch.set(F64, SCALE, scale);
        for (int i = 0; i < 5; i++) scratch.set(PTR, RET + 8L * i, MemorySegment.NULL);
        int err;
        try {
            err = (int) flashForward.invokeExact(handle(query), handle(key), handle(value),
                    scratch.asSlice(CUM_Q), scratch.asSlice(CUM_K), (long) maxQ, (long) maxK, 0.0, causal ? 1 : 0, 0,
                    scratch.asSlice(SCALE), MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL,
                    MemorySegment.NULL, scratch.asSlice(RET), scratch.asSlice(RET + 8), scratch.asSlice(RET + 16),
                    scratch.asSlice(RET + 24), scratch.asSlice(RET + 32));
        } catch (Throwable t) {
            throw new IllegalStateException("flash attention call failed", t);
        }
        check(err, "aoti_torch_cuda__flash_attention_forward");
        for (int i = 1; i < 5; i++) { // logsumexp, rng state, unused, debug mask
            MemorySegment extra = scratch.get(PTR, RET + 8L * i);
            if (keep != null && extra.address() != 0) wrap(keep, extra);
            else delete(extra);
        }
        return wrap(query.getManager(), scratch.get(PTR, RET));
    }

    /**
     * torch {@code _fused_rms_norm} over the last dimension: x * rsqrt(mean(x^2) + eps) * weight, accumulated in float32
     * inside one kernel (HF's LlamaRMSNorm upcasts too; it rounds to the input dtype before the weight multiply, this
     * kernel after: a half-precision rounding apart).
     *
     * @param x      (..., hidden)
     * @param weight (hidden), x's dtype
     * @return (..., hidden) x's dtype, in x's manager
     */
    NDArray fusedRmsNorm(NDArray x, NDArray weight, long hidden, double eps) {
        scratch.set(I64, SHAPE, hidden);
        scratch.set(PTR, WEIGHT, handle(weight));
        scratch.set(F64, EPS, eps);
        scratch.set(PTR, RET, MemorySegment.NULL);
        scratch.set(PTR, RET + 8, MemorySegment.NULL);
        int err;
        try {
            err = (int) fusedRmsNorm.invokeExact(handle(x), scratch.asSlice(SHAPE), 1L, scratch.asSlice(WEIGHT),
                    scratch.asSlice(EPS), scratch.asSlice(RET), scratch.asSlice(RET + 8));
        } catch (Throwable t) {
            throw new IllegalStateException("fused RMSNorm call failed", t);
        }
        check(err, "aoti_torch_cuda__fused_rms_norm");
        delete(scratch.get(PTR, RET + 8)); // rstd
        return wrap(x.getManager(), scratch.get(PTR, RET));
    }

    private static MemorySegment handle(NDArray array) {
        return MemorySegment.ofAddress(((PtNDArray) array).getHandle());
    }

    private static NDArray wrap(NDManager manager, MemorySegment handle) {
        return new PtNDArray((PtNDManager) manager, handle.address());
    }

    private void delete(MemorySegment handle) {
        if (handle.address() == 0) return;
        try {
            int err = (int) deleteTensor.invokeExact(handle);
            check(err, "aoti_torch_delete_tensor_object");
        } catch (Throwable t) {
            throw new IllegalStateException("tensor delete failed", t);
        }
    }

    private static void check(int err, String function) {
        // The shim prints the C++ exception's message to stderr before returning the error code.
        if (err != 0) throw new IllegalStateException(function + " returned error " + err + " (see stderr)");
    }
}

package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.DataType;
import ai.djl.pytorch.engine.PtNDArray;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.AddressLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * Retina's own CUDA kernels ({@code kernels/paged_attention.cu}, shipped as PTX built by {@code tools/build_kernels.sh}),
 * loaded and launched with the CUDA driver API through Java's FFM: decode attention straight over the paged KV cache
 * (no gather), rotary embedding fused with the K/V cache write, and SiLU(gate) * up. Launches go to stream 0, the
 * legacy default stream DJL's libtorch ops run on, so they order with those ops without synchronisation. Device
 * pointers come from the DJL tensors through libtorch's C shim ({@code aoti_torch_get_data_ptr}); every argument's
 * dtype, shape and row-major layout is checked before a launch, and every CUDA call's status.
 *
 * <p>Not thread-safe: one parameter buffer reused launch to launch; the model calls it only from the engine thread.
 */
final class CudaKernels {
    private static final Logger log = LoggerFactory.getLogger(CudaKernels.class);
    private static final String PTX = "kernels/paged_attention.ptx";
    private static final int[] HEAD_DIMS = {8, 16, 32, 64, 80, 96, 128, 256}; // paged_attention_decode_d<D> in the PTX
    private static final int ATTENTION_THREADS = 256; // kWarps * 32 in the .cu
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT;
    private static final AddressLayout PTR = ValueLayout.ADDRESS;
    private static final int MAX_PARAMS = 16;
    private static final int CUDA_ERROR_NOT_READY = 600;
    /** Rows (sequences) the GEMV kernels take: gemv_m1, gemv_m2, gemv_m4. */
    static final int GEMV_MAX_ROWS = 4;
    private static final int GEMV_THREADS = 256;
    /** Plain GEMVs with outputs up to this wide (o, down) are "narrow": see {@link #gemvEntry}. */
    private static final int GEMV_NARROW = 8192;
    /**
     * One-row GEMVs: 4 (the default) takes the variants tuned by the GEMV sweep of calls 47 and 48, fewer loads in
     * flight per thread in more blocks per SM; 8 ({@code -Dretina.gemvLoads=8}) the 8-load ones, as at 2 and 4 rows.
     */
    static final int GEMV_LOADS = Integer.getInteger("retina.gemvLoads", 4);
    /**
     * Programmatic dependent launch for the kernels that start with pdl_entry, while {@link #setProgrammatic} is on
     * ({@code -Dretina.programmaticLaunch=false} never).
     */
    static final boolean PROGRAMMATIC_ON = !"false".equals(System.getProperty("retina.programmaticLaunch"));
    /**
     * Name prefixes of the kernels {@link #setProgrammatic} launches programmatically; each of them starts with
     * pdl_entry in the .cu (CudaKernelsTest reads the PTX to check that).
     */
    static final java.util.List<String> PROGRAMMATIC_KERNELS =
            java.util.List.of("gemv_", "rope_kv_write", "paged_attention_", "silu_mul", "rms_norm");
    private static final int LAUNCH_CONFIG_BYTES = 56;    // CUlaunchConfig: 7 uints, stream, attrs, numAttrs
    private static final int LAUNCH_ATTRIBUTE_BYTES = 72; // CUlaunchAttribute: id, pad, 64-byte value union
    private static final int PROGRAMMATIC_STREAM_SERIALIZATION = 6; // CU_LAUNCH_ATTRIBUTE_...

    private final MethodHandle cuCtxSetCurrent; // (CUcontext) -> CUresult
    private final MethodHandle cuLaunchKernel;  // (f, gx, gy, gz, bx, by, bz, smem, stream, params, extra) -> CUresult
    private final MethodHandle cuCtxSynchronize; // () -> CUresult
    private final MethodHandle cuGetErrorString; // (CUresult, const char**) -> CUresult
    private final MethodHandle getDataPtr;      // aoti_torch_get_data_ptr(AtenTensorHandle, void**) -> err
    private final MethodHandle getSizes;        // aoti_torch_get_sizes(AtenTensorHandle, int64_t**) -> err
    private final MethodHandle getStrides;      // aoti_torch_get_strides(AtenTensorHandle, int64_t**) -> err
    private final MethodHandle getDim;          // aoti_torch_get_dim(AtenTensorHandle, int64_t*) -> err
    private final MemorySegment context;
    private final MemorySegment[] attentionByHeadDim = new MemorySegment[HEAD_DIMS.length];
    private final MemorySegment ropeKvWrite;
    private final MemorySegment ropeKvWriteKBack; // null in a PTX built before the direct prefill
    private final MemorySegment siluMul;
    private final MemorySegment rmsNorm;  // null in a PTX built before rms_norm existed
    private final MemorySegment embedRows; // null in a PTX built before the captured token path
    // 16-byte-wide silu_mul / rms_norm; null where the PTX lacks them or with -Dretina.vecKernels=false (to compare)
    private final MemorySegment siluMulVec;
    private final MemorySegment rmsNormVec;
    private final MemorySegment ropeKvWriteVec;      // null where the PTX lacks it or the vec kernels are off
    private final MemorySegment ropeKvWriteKBackVec;
    private final MemorySegment[] splitByHeadDim = new MemorySegment[HEAD_DIMS.length]; // null entries: no split-K
    private final MemorySegment attentionReduce;
    private final MemorySegment addLayerNorm; // null in a PTX built before the direct vision tower
    private final MemorySegment actFill;      // likewise
    private final MemorySegment patchRows;    // null in a PTX built before the vision graph took pixels
    private final java.util.Map<String, MemorySegment> gemv = new java.util.HashMap<>(); // the PTX's gemv_* entries
    private final int multiprocessors;
    private final MethodHandle cuEventCreate;      // (CUevent*, flags) -> CUresult
    private final MethodHandle cuEventRecord;      // (CUevent, CUstream) -> CUresult
    private final MethodHandle cuEventSynchronize; // (CUevent) -> CUresult
    private final MethodHandle cuEventElapsedTime; // (float*, CUevent, CUevent) -> CUresult
    private final MethodHandle cuEventQuery;       // (CUevent) -> CUresult: 0 done, 600 not ready
    private MemorySegment[] events = new MemorySegment[0];
    private final MethodHandle cuLaunchKernelEx; // (const CUlaunchConfig*, f, params, extra) -> CUresult; null: none
    private final MemorySegment launchConfig;  // CUlaunchConfig with one attribute: programmatic stream serialization
    /** Kernels whose PTX entry starts with pdl_entry (see the .cu): the ones a programmatic launch may take. */
    private final java.util.Set<Long> programmaticAware = new java.util.HashSet<>();
    private boolean programmatic;         // launches of programmaticAware kernels go through cuLaunchKernelEx
    private final MemorySegment values;   // kernel argument values, 8 bytes each
    private final MemorySegment params;   // void*[]: pointers into values
    private final MemorySegment out;      // out-parameters of the shim and driver calls
    private Thread currentThread;         // the thread the context was last made current on
    private MemorySegment stream = MemorySegment.NULL; // launches go here: the legacy stream unless a capture set it

    private CudaKernels(Linker linker, SymbolLookup cuda, SymbolLookup torch, int deviceOrdinal, byte[] ptx) {
        Arena arena = Arena.global();
        out = arena.allocate(64, 8);
        values = arena.allocate(8L * MAX_PARAMS, 8);
        params = arena.allocate(8L * MAX_PARAMS, 8);
        for (int i = 0; i < MAX_PARAMS; i++) params.setAtIndex(PTR, i, values.asSlice(8L * i, 8));
        cuGetErrorString = handle(linker, cuda, "cuGetErrorString", FunctionDescriptor.of(I32, I32, PTR));
        MethodHandle cuInit = handle(linker, cuda, "cuInit", FunctionDescriptor.of(I32, I32));
        MethodHandle cuDeviceGet = handle(linker, cuda, "cuDeviceGet", FunctionDescriptor.of(I32, PTR, I32));
        MethodHandle retain = handle(linker, cuda, "cuDevicePrimaryCtxRetain", FunctionDescriptor.of(I32, PTR, I32));
        cuCtxSetCurrent = handle(linker, cuda, "cuCtxSetCurrent", FunctionDescriptor.of(I32, PTR));
        cuCtxSynchronize = handle(linker, cuda, "cuCtxSynchronize", FunctionDescriptor.of(I32));
        MethodHandle loadData = handle(linker, cuda, "cuModuleLoadData", FunctionDescriptor.of(I32, PTR, PTR));
        MethodHandle getFunction = handle(linker, cuda, "cuModuleGetFunction", FunctionDescriptor.of(I32, PTR, PTR, PTR));
        cuLaunchKernel = handle(linker, cuda, "cuLaunchKernel", FunctionDescriptor.of(I32, PTR, I32, I32, I32, I32, I32,
                I32, I32, PTR, PTR, PTR));
        cuEventCreate = handle(linker, cuda, "cuEventCreate", FunctionDescriptor.of(I32, PTR, I32));
        cuLaunchKernelEx = PROGRAMMATIC_ON && cuda.find("cuLaunchKernelEx").isPresent()
                ? handle(linker, cuda, "cuLaunchKernelEx", FunctionDescriptor.of(I32, PTR, PTR, PTR, PTR)) : null;
        launchConfig = arena.allocate(LAUNCH_CONFIG_BYTES + LAUNCH_ATTRIBUTE_BYTES, 8);
        cuEventRecord = handle(linker, cuda, "cuEventRecord", FunctionDescriptor.of(I32, PTR, PTR));
        cuEventSynchronize = handle(linker, cuda, "cuEventSynchronize", FunctionDescriptor.of(I32, PTR));
        cuEventElapsedTime = handle(linker, cuda, "cuEventElapsedTime", FunctionDescriptor.of(I32, PTR, PTR, PTR));
        cuEventQuery = handle(linker, cuda, "cuEventQuery", FunctionDescriptor.of(I32, PTR));
        getDataPtr = handle(linker, torch, "aoti_torch_get_data_ptr", FunctionDescriptor.of(I32, PTR, PTR));
        getSizes = handle(linker, torch, "aoti_torch_get_sizes", FunctionDescriptor.of(I32, PTR, PTR));
        getStrides = handle(linker, torch, "aoti_torch_get_strides", FunctionDescriptor.of(I32, PTR, PTR));
        getDim = handle(linker, torch, "aoti_torch_get_dim", FunctionDescriptor.of(I32, PTR, PTR));
        try {
            check((int) cuInit.invokeExact(0), "cuInit");
            check((int) cuDeviceGet.invokeExact(out, deviceOrdinal), "cuDeviceGet");
            int device = out.get(I32, 0);
            // The primary context is the one libtorch's runtime API uses: same allocations, same stream 0.
            check((int) retain.invokeExact(out, device), "cuDevicePrimaryCtxRetain");
            context = out.get(PTR, 0);
            makeCurrent();
            MemorySegment image = arena.allocate(ptx.length + 1L);
            image.copyFrom(MemorySegment.ofArray(ptx));
            image.set(ValueLayout.JAVA_BYTE, ptx.length, (byte) 0); // PTX is loaded as a NUL-terminated string
            check((int) loadData.invokeExact(out, image), "cuModuleLoadData");
            MemorySegment module = out.get(PTR, 0);
            for (int i = 0; i < HEAD_DIMS.length; i++)
                attentionByHeadDim[i] = function(getFunction, module, "paged_attention_decode_d" + HEAD_DIMS[i]);
            // Decode attention: the lane-group kernels (paged_attention_*_g_d<D>) where the PTX has them for that head
            // size (D a power of two, 8..256), else the one-token-per-warp kernels; -Dretina.attnKernel=v1 keeps
            // those everywhere (for comparisons), =g8 picks the 8-slot lane-group entry (head_dim 128 only).
            String variant = System.getProperty("retina.attnKernel", "g");
            ropeKvWrite = function(getFunction, module, "rope_kv_write");
            ropeKvWriteKBack = optionalFunction(getFunction, module, "rope_kv_write_kback");
            siluMul = function(getFunction, module, "silu_mul");
            rmsNorm = optionalFunction(getFunction, module, "rms_norm");
            embedRows = optionalFunction(getFunction, module, "embed_rows");
            boolean vec = !"false".equals(System.getProperty("retina.vecKernels"));
            siluMulVec = vec ? optionalFunction(getFunction, module, "silu_mul_vec") : null;
            rmsNormVec = vec ? optionalFunction(getFunction, module, "rms_norm_vec") : null;
            ropeKvWriteVec = vec ? optionalFunction(getFunction, module, "rope_kv_write_vec") : null;
            ropeKvWriteKBackVec = vec ? optionalFunction(getFunction, module, "rope_kv_write_kback_vec") : null;
            for (int i = 0; i < HEAD_DIMS.length; i++)
                splitByHeadDim[i] = optionalFunction(getFunction, module, "paged_attention_split_d" + HEAD_DIMS[i]);
            if (!variant.isEmpty() && !variant.equals("v1")) {
                for (int i = 0; i < HEAD_DIMS.length; i++) {
                    MemorySegment d = optionalFunction(getFunction, module,
                            "paged_attention_decode_" + variant + "_d" + HEAD_DIMS[i]);
                    MemorySegment sp = optionalFunction(getFunction, module,
                            "paged_attention_split_" + variant + "_d" + HEAD_DIMS[i]);
                    if (d != null && sp != null) {
                        attentionByHeadDim[i] = d;
                        splitByHeadDim[i] = sp;
                    }
                }
            }
            attentionReduce = optionalFunction(getFunction, module, "paged_attention_reduce");
            addLayerNorm = optionalFunction(getFunction, module, "add_layer_norm");
            actFill = optionalFunction(getFunction, module, "act_fill");
            patchRows = optionalFunction(getFunction, module, "patch_rows");
            for (int m = 1; m <= GEMV_MAX_ROWS; m++)
                for (String v : new String[] {"plain", "plain_r8", "glu", "plain_l2", "plain_l4", "glu_l4"}) {
                    MemorySegment f = optionalFunction(getFunction, module, "gemv_m" + m + "_" + v);
                    if (f != null) gemv.put("gemv_m" + m + "_" + v, f);
                }
            // The PTX's entries named in PROGRAMMATIC_KERNELS (all start with pdl_entry), in a PTX that has the
            // instruction at all; the driver hands out the same handle for a name each time
            String text = new String(ptx, java.nio.charset.StandardCharsets.US_ASCII);
            if (text.contains("griddepcontrol.wait")) {
                java.util.regex.Matcher entry = java.util.regex.Pattern.compile("\\.entry\\s+(\\w+)\\(").matcher(text);
                while (entry.find()) {
                    String name = entry.group(1);
                    if (PROGRAMMATIC_KERNELS.stream().anyMatch(name::startsWith))
                        programmaticAware.add(function(getFunction, module, name).address());
                }
            }
            MethodHandle attribute = handle(linker, cuda, "cuDeviceGetAttribute", FunctionDescriptor.of(I32, PTR, I32, I32));
            check((int) attribute.invokeExact(out, 16, device), "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)");
            multiprocessors = out.get(I32, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("CUDA driver call failed", t);
        }
    }

    /**
     * The kernels on the CUDA device of {@code manager}, or empty where the driver, the shim or the PTX is missing.
     * Taking a manager means DJL's engine has already loaded libtorch before libtorch is looked up here by name, and
     * one tiny allocation makes libtorch's CUDA runtime set the device up before the driver API touches it. In both
     * runs of {@link CudaKernelsCheck} where libtorch was looked up by name before DJL's engine had started, the first
     * libtorch CUDA op then failed with "invalid resource handle" (H200, torch 2.11); the model path, which loads
     * after the engine, never did.
     */
    static Optional<CudaKernels> load(NDManager manager) {
        String override = System.getProperty("retina.kernelsPtx");
        try (InputStream in = override != null ? java.nio.file.Files.newInputStream(java.nio.file.Path.of(override))
                : CudaKernels.class.getResourceAsStream(PTX)) {
            if (in == null) throw new IOException(PTX + " not on the class path");
            byte[] ptx = in.readAllBytes();
            if (override != null) log.warn("Retina CUDA kernels from {} (-Dretina.kernelsPtx), not the bundled PTX", override);
            try (NDArray init = manager.zeros(new Shape(1), DataType.FLOAT32)) {
                init.getShape(); // only its allocation matters
            }
            Linker linker = Linker.nativeLinker();
            SymbolLookup cuda = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
            SymbolLookup torch = SymbolLookup.libraryLookup("libtorch_cpu.so", Arena.global());
            int deviceOrdinal = manager.getDevice().getDeviceId();
            CudaKernels k = new CudaKernels(linker, cuda, torch, deviceOrdinal, ptx);
            log.info("Retina CUDA kernels loaded on device {}", deviceOrdinal);
            return Optional.of(k);
        } catch (IOException | RuntimeException | LinkageError e) {
            log.info("Retina CUDA kernels unavailable ({}); using libtorch/DJL ops", e.toString());
            return Optional.empty();
        }
    }

    static boolean supportsHeadDim(int headDim) {
        return headDimIndex(headDim) >= 0;
    }

    private static int headDimIndex(int headDim) {
        for (int i = 0; i < HEAD_DIMS.length; i++) if (HEAD_DIMS[i] == headDim) return i;
        return -1;
    }

    /**
     * Decode attention (one query token per sequence) over the paged KV cache; softmax(q k^T * scale) v per head with
     * query head h reading KV head h / (numHeads / numKvHeads).
     *
     * @param out         (numSeqs, numHeads * headDim) float16, written
     * @param query       (numSeqs, rowLen >= numHeads * headDim) float16 row-major; heads are the first numHeads * headDim
     *                    values of each row (e.g. the fused qkv projection's rows)
     * @param keyCache    (numSlots, numKvHeads * headDim) float16
     * @param valueCache  (numSlots, numKvHeads * headDim) float16
     * @param blockTables (numSeqs, maxBlocksPerSeq) int32
     * @param contextLens (numSeqs) int32: keys each sequence attends to (its first contextLens[s] positions)
     */
    void pagedAttentionDecode(NDArray out, NDArray query, NDArray keyCache, NDArray valueCache, NDArray blockTables,
                              NDArray contextLens, int blockSize, int numHeads, int numKvHeads, int headDim,
                              float scale) {
        int index = headDimIndex(headDim);
        if (index < 0) throw new IllegalArgumentException("no decode attention kernel for head_dim " + headDim);
        if (numHeads % numKvHeads != 0) throw new IllegalArgumentException("numHeads not a multiple of numKvHeads");
        long numSeqs = requireRowMajor(out, DataType.FLOAT16, -1, (long) numHeads * headDim);
        requireRowMajor(query, DataType.FLOAT16, numSeqs, -1);
        long queryRow = sizes(query)[1];
        if (queryRow < (long) numHeads * headDim) throw new IllegalArgumentException("query rows too short");
        long kvDim = (long) numKvHeads * headDim;
        long numSlots = requireRowMajor(keyCache, DataType.FLOAT16, -1, kvDim);
        requireRowMajor(valueCache, DataType.FLOAT16, numSlots, kvDim);
        requireRowMajor(blockTables, DataType.INT32, numSeqs, -1);
        long maxBlocks = sizes(blockTables)[1];
        requireRowMajor(contextLens, DataType.INT32, numSeqs, Long.MIN_VALUE);
        pagedAttentionDecode(address(out), (long) numHeads * headDim, address(query), queryRow, address(keyCache),
                address(valueCache), address(blockTables), address(contextLens), (int) numSeqs, (int) maxBlocks,
                blockSize, numHeads, numKvHeads, headDim, scale);
    }

    /** {@link #pagedAttentionDecode(NDArray, NDArray, NDArray, NDArray, NDArray, NDArray, int, int, int, int, float)}
     *  on device addresses the caller has checked (row strides in elements). */
    void pagedAttentionDecode(long out, long outStride, long query, long queryStride, long keyCache, long valueCache,
                              long blockTables, long contextLens, int numSeqs, int maxBlocks, int blockSize,
                              int numHeads, int numKvHeads, int headDim, float scale) {
        int index = headDimIndex(headDim);
        if (index < 0) throw new IllegalArgumentException("no decode attention kernel for head_dim " + headDim);
        values.set(I64, 0, out);
        values.set(I64, 8, outStride);
        attentionArgs(2, query, queryStride, keyCache, valueCache, blockTables, contextLens, maxBlocks, blockSize,
                numHeads, numKvHeads, scale);
        launch(attentionByHeadDim[index], numHeads, numSeqs, ATTENTION_THREADS, "paged_attention_decode_d" + headDim);
    }

    /**
     * Rotary embedding of q (in place) and k (into the cache), and v into the cache, at each token's slot.
     *
     * @param qkv        (T, (numHeads + 2 * numKvHeads) * headDim) float16 contiguous: q, k, v heads; q rotated in place
     * @param positions  (T) int64
     * @param slots      (T) int64 cache slot of each token
     * @param cos        (numPositions, headDim) float16; sin likewise
     * @param keyCache   (numSlots, numKvHeads * headDim) float16; valueCache likewise
     */
    void ropeKvWrite(NDArray qkv, NDArray positions, NDArray slots, NDArray cos, NDArray sin, NDArray keyCache,
                     NDArray valueCache, int numHeads, int numKvHeads, int headDim) {
        if (headDim % 2 != 0) throw new IllegalArgumentException("odd head_dim");
        long numTokens = requireRowMajor(qkv, DataType.FLOAT16, -1, (long) (numHeads + 2 * numKvHeads) * headDim);
        requireRowMajor(positions, DataType.INT64, numTokens, Long.MIN_VALUE);
        requireRowMajor(slots, DataType.INT64, numTokens, Long.MIN_VALUE);
        long numPositions = requireRowMajor(cos, DataType.FLOAT16, -1, headDim);
        requireRowMajor(sin, DataType.FLOAT16, numPositions, headDim);
        long kvDim = (long) numKvHeads * headDim;
        long numSlots = requireRowMajor(keyCache, DataType.FLOAT16, -1, kvDim);
        requireRowMajor(valueCache, DataType.FLOAT16, numSlots, kvDim);
        if (numTokens == 0) return;
        ropeKvWrite(address(qkv), address(positions), address(slots), address(cos), address(sin), address(keyCache),
                address(valueCache), (int) numTokens, numHeads, numKvHeads, headDim);
    }

    /** {@link #ropeKvWrite(NDArray, NDArray, NDArray, NDArray, NDArray, NDArray, NDArray, int, int, int)} on device
     *  addresses the caller has checked. */
    void ropeKvWrite(long qkv, long positions, long slots, long cos, long sin, long keyCache, long valueCache,
                     int numTokens, int numHeads, int numKvHeads, int headDim) {
        ropeKvWrite(qkv, positions, slots, cos, sin, keyCache, valueCache, numTokens, numHeads, numKvHeads, headDim,
                false);
    }

    /**
     * As {@link #ropeKvWrite(long, long, long, long, long, long, long, int, int, int, int)}; with {@code kBack} the
     * rotated k heads are also written back into qkv (flash attention over the qkv rows of prefills that have no
     * cached context).
     */
    void ropeKvWrite(long qkv, long positions, long slots, long cos, long sin, long keyCache, long valueCache,
                     int numTokens, int numHeads, int numKvHeads, int headDim, boolean kBack) {
        int i = 0;
        values.set(I64, 8L * i++, qkv);
        values.set(I64, 8L * i++, positions);
        values.set(I64, 8L * i++, slots);
        values.set(I64, 8L * i++, cos);
        values.set(I64, 8L * i++, sin);
        values.set(I64, 8L * i++, keyCache);
        values.set(I64, 8L * i++, valueCache);
        values.set(I32, 8L * i++, numHeads);
        values.set(I32, 8L * i++, numKvHeads);
        values.set(I32, 8L * i++, headDim);
        int heads = numHeads + 2 * numKvHeads;
        MemorySegment vec = kBack ? ropeKvWriteKBackVec : ropeKvWriteVec;
        if (vec != null && numTokens >= 16 && headDim % 16 == 0
                && ((qkv | cos | sin | keyCache | valueCache) & 15) == 0) {
            // 16-byte variant for steps of 16 tokens or more (a 606-token prefill: 0.78 -> 0.42 ms over 32 layers on
            // the H200): a lane per 8 rotated pairs (D / 16 lanes a head), 256 threads' worth of heads per block.
            // Small decode steps keep the scalar launch they were measured with.
            int lanes = headDim / 16;
            int headsPerBlock = Math.max(1, Math.min(heads, 256 / lanes));
            launch(vec, numTokens, (heads + headsPerBlock - 1) / headsPerBlock, 1, lanes, headsPerBlock, 0,
                    kBack ? "rope_kv_write_kback_vec" : "rope_kv_write_vec");
            return;
        }
        // a block per (token, group of q/k/v heads); a thread per rotated pair (two elements of a v head); from 16
        // tokens on, ~256 threads' worth of heads per block instead of one (a 606-token prefill: 58,000 blocks of 64)
        int threads = warpThreads(headDim / 2, 1024);
        int headsPerBlock = numTokens >= 16 ? Math.max(1, Math.min(heads, 256 / threads)) : 1;
        if (kBack && ropeKvWriteKBack == null) throw new IllegalStateException("this PTX has no rope_kv_write_kback");
        launch(kBack ? ropeKvWriteKBack : ropeKvWrite, numTokens, (heads + headsPerBlock - 1) / headsPerBlock, 1,
                threads, headsPerBlock, 0, kBack ? "rope_kv_write_kback" : "rope_kv_write");
    }

    /**
     * SwiGLU's silu(gate) * up.
     *
     * @param out    (T, inter) float16 contiguous, written
     * @param gateUp (T, 2 * inter) float16 contiguous: gate, up
     */
    void siluMul(NDArray out, NDArray gateUp, int inter) {
        long numTokens = requireRowMajor(out, DataType.FLOAT16, -1, inter);
        requireRowMajor(gateUp, DataType.FLOAT16, numTokens, 2L * inter);
        if (numTokens * inter == 0) return;
        siluMul(address(out), address(gateUp), numTokens, inter);
    }

    /** {@link #siluMul(NDArray, NDArray, int)} on device addresses the caller has checked. */
    void siluMul(long out, long gateUp, long numTokens, int inter) {
        int i = 0;
        values.set(I64, 8L * i++, out);
        values.set(I64, 8L * i++, gateUp);
        values.set(I64, 8L * i++, numTokens);
        values.set(I32, 8L * i++, inter);
        int threads = 256;
        // x over the row (one value per thread; one 8-value vector in silu_mul_vec), y over tokens (grid-strided
        // beyond the 65,535 limit)
        boolean vec = siluMulVec != null && inter % 8 == 0 && ((out | gateUp) & 15) == 0;
        int columns = vec ? inter / 8 : inter;
        launch(vec ? siluMulVec : siluMul, (columns + threads - 1) / threads, (int) Math.min(numTokens, 65535L),
                threads, vec ? "silu_mul_vec" : "silu_mul");
    }

    /** Streaming multiprocessors of the device (to size split-K grids). */
    int multiprocessors() {
        return multiprocessors;
    }

    /** Whether this PTX has the split-K decode attention for this head size and its reduce kernel. */
    boolean hasSplitAttention(int headDim) {
        int index = headDimIndex(headDim);
        return index >= 0 && splitByHeadDim[index] != null && attentionReduce != null;
    }

    /**
     * Split-K decode attention: {@code numParts} partitions of {@code partitionSize} context tokens per (head,
     * sequence) each write a partial softmax state to the float32 buffers (numSeqs * numHeads * numParts entries,
     * part_acc times headDim), then one reduce launch merges them into {@code out}. Same arguments otherwise as
     * {@link #pagedAttentionDecode(long, long, long, long, long, long, long, long, int, int, int, int, int, int, float)}.
     */
    void pagedAttentionDecodeSplit(long out, long outStride, long query, long queryStride, long keyCache,
                                   long valueCache, long blockTables, long contextLens, int numSeqs, int maxBlocks,
                                   int blockSize, int numHeads, int numKvHeads, int headDim, float scale,
                                   int partitionSize, int numParts, long partM, long partL, long partAcc) {
        int index = headDimIndex(headDim);
        int i = attentionArgs(0, query, queryStride, keyCache, valueCache, blockTables, contextLens, maxBlocks,
                blockSize, numHeads, numKvHeads, scale);
        values.set(I32, 8L * i++, partitionSize);
        values.set(I64, 8L * i++, partM);
        values.set(I64, 8L * i++, partL);
        values.set(I64, 8L * i++, partAcc);
        launch(splitByHeadDim[index], numHeads, numSeqs, numParts, ATTENTION_THREADS, "paged_attention_split_d" + headDim);
        i = 0;
        values.set(I64, 8L * i++, out);
        values.set(I64, 8L * i++, outStride);
        values.set(I64, 8L * i++, partM);
        values.set(I64, 8L * i++, partL);
        values.set(I64, 8L * i++, partAcc);
        values.set(I32, 8L * i++, numHeads);
        values.set(I32, 8L * i++, numParts);
        values.set(I32, 8L * i++, headDim);
        launch(attentionReduce, numHeads, numSeqs, 1, warpThreads(headDim, 256), "paged_attention_reduce");
    }

    /** The arguments both decode attention kernels share, from argument {@code i} on; returns the next index. */
    private int attentionArgs(int i, long query, long queryStride, long keyCache, long valueCache, long blockTables,
                              long contextLens, int maxBlocks, int blockSize, int numHeads, int numKvHeads, float scale) {
        values.set(I64, 8L * i++, query);
        values.set(I64, 8L * i++, queryStride);
        values.set(I64, 8L * i++, keyCache);
        values.set(I64, 8L * i++, valueCache);
        values.set(I64, 8L * i++, blockTables);
        values.set(I64, 8L * i++, contextLens);
        values.set(I32, 8L * i++, maxBlocks);
        values.set(I32, 8L * i++, blockSize);
        values.set(I32, 8L * i++, numHeads);
        values.set(I32, 8L * i++, numKvHeads);
        values.set(F32, 8L * i++, scale);
        return i;
    }

    /** Whether this PTX has the small-batch GEMV kernels (every row count {@link #gemvFits} takes, every shape). */
    boolean hasGemv() {
        for (int rows = 1; rows <= GEMV_MAX_ROWS; rows++) {
            if (!gemvFits(rows, 8)) continue;
            for (String name : new String[] {gemvEntry(rows, true, 4096, 8), gemvEntry(rows, false, 4096, 8),
                    gemvEntry(rows, false, 12288, 8)})
                if (!gemv.containsKey(name)) return false;
        }
        return true;
    }

    /** Whether {@link #gemv} takes {@code rows} input rows of length {@code k}. */
    static boolean gemvFits(int rows, int k) {
        // 1, 2 or 4 rows: the decode graphs' small buckets (a 3-row eager step takes cuBLAS); 16-byte chunks
        return (rows == 1 || rows == 2 || rows == 4) && k > 0 && k % 8 == 0;
    }

    /**
     * The GEMV entry for {@code rows} input rows and {@code n} outputs. With 8 loads in flight per thread: 8 W rows
     * per block for plain outputs up to {@code GEMV_NARROW} wide (o, down: {@code gemv_m*_plain_r8}), else 4. With 4
     * (one row only): {@code gemv_m1_plain_l4} / {@code glu_l4} (4 loads, 6 blocks per SM) for wide outputs and gate |
     * up, {@code gemv_m1_plain_l2} (2 loads, 8 blocks per SM, 4 rows) for narrow ones: the fastest of the sweep.
     */
    static String gemvEntry(int rows, boolean glu, int n, int loads) {
        boolean narrow = !glu && n <= GEMV_NARROW;
        if (rows == 1 && loads == 4) return "gemv_m1_" + (glu ? "glu_l4" : narrow ? "plain_l2" : "plain_l4");
        return "gemv_m" + rows + "_" + (narrow ? "plain_r8" : glu ? "glu" : "plain");
    }

    /** W rows one block of {@code entry} takes: 8 for the _r8 entries, else 4 (a glu block: 2 gate + 2 up rows). */
    static int gemvBlockRows(String entry) {
        return entry.endsWith("_r8") ? 8 : 4;
    }

    /**
     * Small-batch GEMV {@code y (rows, n) = x (rows, k) @ w (n, k)^T (+ y)}, fp32 accumulation, one rounding (see the
     * .cu). With {@code glu}, w is gate | up ({@code n = 2 * inter} rows) and y (rows, inter) = silu(gate) * up (no
     * accumulate). Device addresses the caller has checked: fp16 contiguous rows, 16-byte aligned, {@link #gemvFits};
     * y does not alias x. A PTX without the tuned one-row entries takes the 8-load ones.
     */
    void gemv(boolean glu, long y, long x, long w, int rows, int n, int k, boolean accumulate) {
        if (!gemvFits(rows, k)) throw new IllegalArgumentException("gemv: " + rows + " rows of " + k);
        String name = gemvEntry(rows, glu, n, GEMV_LOADS);
        if (!gemv.containsKey(name)) name = gemvEntry(rows, glu, n, 8);
        int blockRows = gemvBlockRows(name);
        // GLU: a block takes blockRows / 2 gate rows and the same up rows, so each half divides into whole blocks
        if (glu && (n % blockRows != 0 || accumulate))
            throw new IllegalArgumentException("gemv glu: " + n + " rows of gate | up" + (accumulate ? ", accumulate" : ""));
        MemorySegment f = gemv.get(name);
        if (f == null) throw new IllegalStateException("this PTX has no " + name);
        int i = 0;
        values.set(I64, 8L * i++, y);
        values.set(I64, 8L * i++, x);
        values.set(I64, 8L * i++, w);
        values.set(I32, 8L * i++, n);
        values.set(I32, 8L * i++, k);
        values.set(I32, 8L * i++, accumulate ? 1 : 0);
        launch(f, (n + blockRows - 1) / blockRows, 1, 1, GEMV_THREADS, 0, name);
    }

    /** Records event {@code index} (created on first use) on stream 0: the GPU's clock at that point of its queue. */
    void recordEvent(int index) {
        try {
            makeCurrent();
            if (index >= events.length) {
                MemorySegment[] grown = java.util.Arrays.copyOf(events, Math.max(index + 1, 2 * events.length));
                for (int e = events.length; e < grown.length; e++) {
                    check((int) cuEventCreate.invokeExact(out, 0), "cuEventCreate");
                    grown[e] = out.get(PTR, 0);
                }
                events = grown;
            }
            check((int) cuEventRecord.invokeExact(events[index], MemorySegment.NULL), "cuEventRecord");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuEventRecord failed", t);
        }
    }

    /** Milliseconds of GPU time between two recorded events, waiting for the later one. */
    float elapsedMs(int from, int to) {
        return elapsedMs(events[from], events[to]);
    }

    /** A new CUDA event with timing (for {@link GpuSpans}); never destroyed, so callers pool them. */
    MemorySegment newEvent() {
        try {
            makeCurrent();
            check((int) cuEventCreate.invokeExact(out, 0), "cuEventCreate");
            return out.get(PTR, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuEventCreate failed", t);
        }
    }

    /** Records {@code event} on the legacy stream: the GPU's clock when it gets there in its queue. */
    void record(MemorySegment event) {
        record(event, MemorySegment.NULL);
    }

    /** Records {@code event} on {@code stream} (a CUstream; NULL: the legacy stream). */
    void record(MemorySegment event, MemorySegment stream) {
        try {
            makeCurrent();
            check((int) cuEventRecord.invokeExact(event, stream), "cuEventRecord");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuEventRecord failed", t);
        }
    }

    /** Whether the GPU has passed {@code event} (never waits). */
    boolean passed(MemorySegment event) {
        try {
            makeCurrent();
            int err = (int) cuEventQuery.invokeExact(event);
            if (err == CUDA_ERROR_NOT_READY) return false;
            check(err, "cuEventQuery");
            return true;
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuEventQuery failed", t);
        }
    }

    /** Milliseconds of GPU time from {@code from} to {@code to}, waiting for {@code to} if the GPU has not passed it. */
    float elapsedMs(MemorySegment from, MemorySegment to) {
        try {
            makeCurrent();
            check((int) cuEventSynchronize.invokeExact(to), "cuEventSynchronize");
            check((int) cuEventElapsedTime.invokeExact(out, from, to), "cuEventElapsedTime");
            return out.get(F32, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuEventElapsedTime failed", t);
        }
    }

    /** Whether this PTX has {@code rms_norm} (the direct decode path needs it). */
    boolean hasRmsNorm() {
        return rmsNorm != null;
    }

    /**
     * HF LlamaRMSNorm of each row into {@code out} (fp32 inside; see the .cu).
     *
     * @param out (rows, hidden) fp16 contiguous, not aliasing x; x likewise; weight (hidden) fp16
     */
    void rmsNorm(long out, long x, long weight, int rows, int hidden, float eps) {
        if (rmsNorm == null) throw new IllegalStateException("this PTX has no rms_norm");
        if (rows == 0) return;
        int i = 0;
        values.set(I64, 8L * i++, out);
        values.set(I64, 8L * i++, x);
        values.set(I64, 8L * i++, weight);
        values.set(I32, 8L * i++, hidden);
        values.set(F32, 8L * i++, eps);
        // one 16-byte vector per thread in rms_norm_vec, else about four values per thread
        boolean vec = rmsNormVec != null && hidden % 8 == 0 && ((out | x | weight) & 15) == 0;
        launch(vec ? rmsNormVec : rmsNorm, rows, 1, warpThreads(hidden / (vec ? 8 : 4), 1024),
                vec ? "rms_norm_vec" : "rms_norm");
    }

    /** Threads for {@code units} units of work: rounded up to whole warps, at least one warp, at most {@code max}. */
    static int warpThreads(int units, int max) {
        return Math.min(max, Math.max(32, (units + 31) / 32 * 32));
    }

    /** Whether silu_mul, rms_norm and rope_kv_write take their 16-byte variants where shapes allow (not with
     *  -Dretina.vecKernels=false). */
    boolean vectorized() {
        return siluMulVec != null && rmsNormVec != null && ropeKvWriteVec != null;
    }

    /** Whether this PTX has {@code embed_rows} (decode steps from token ids inside a CUDA graph). */
    boolean hasEmbedRows() {
        return embedRows != null;
    }

    /**
     * Rows of the embedding table by token id: {@code out[r] = table[ids[r]]}. Device addresses the caller has
     * checked: out (rows, hidden) and table (vocab, hidden) fp16 contiguous, hidden a multiple of 8, ids (rows) int64
     * in range.
     */
    void embedRows(long out, long table, long ids, int rows, int hidden) {
        if (embedRows == null) throw new IllegalStateException("this PTX has no embed_rows");
        if (hidden % 8 != 0) throw new IllegalArgumentException("embed_rows: hidden " + hidden + " not a multiple of 8");
        if (rows == 0) return;
        int i = 0;
        values.set(I64, 8L * i++, out);
        values.set(I64, 8L * i++, table);
        values.set(I64, 8L * i++, ids);
        values.set(I32, 8L * i++, hidden);
        launch(embedRows, rows, 1, warpThreads(hidden / 8, 256), "embed_rows");
    }

    /** Whether this PTX has the direct vision tower's kernels ({@code add_layer_norm}, {@code act_fill}). */
    boolean hasVisionKernels() {
        return addLayerNorm != null && actFill != null;
    }

    /**
     * Per row: {@code resid = x (+ y)} (fp16, as torch's add; resid may alias x, y may be 0), then with
     * {@code normOut != 0} CLIP's LayerNorm of it into normOut; {@code fillA}/{@code fillB} (non-0) get the row's copy
     * of {@code biasA} ({@code nA} values) / {@code biasB}. Device addresses the caller has checked: fp16, contiguous
     * rows.
     */
    void addLayerNorm(long resid, long x, long y, long normOut, long weight, long bias, long fillA, long biasA, int nA,
                      long fillB, long biasB, int nB, int rows, int hidden, float eps) {
        if (addLayerNorm == null) throw new IllegalStateException("this PTX has no add_layer_norm");
        if (rows == 0) return;
        int i = 0;
        values.set(I64, 8L * i++, resid);
        values.set(I64, 8L * i++, x);
        values.set(I64, 8L * i++, y);
        values.set(I64, 8L * i++, normOut);
        values.set(I64, 8L * i++, weight);
        values.set(I64, 8L * i++, bias);
        values.set(I64, 8L * i++, fillA);
        values.set(I64, 8L * i++, biasA);
        values.set(I32, 8L * i++, nA);
        values.set(I64, 8L * i++, fillB);
        values.set(I64, 8L * i++, biasB);
        values.set(I32, 8L * i++, nB);
        values.set(I32, 8L * i++, hidden);
        values.set(F32, 8L * i++, eps);
        launch(addLayerNorm, rows, 1, warpThreads(hidden / 4, 1024), "add_layer_norm");
    }

    /** {@link #actFill}'s activations: HF quick_gelu and exact GELU. */
    static final int ACT_QUICK_GELU = 0;
    static final int ACT_GELU = 1;

    /**
     * The MLP activation ({@link #ACT_QUICK_GELU} or {@link #ACT_GELU}) in place over {@code total} fp16 values at x,
     * then {@code fillTotal} values at fill set to bias (nFill values, repeated). Addresses the caller has checked.
     */
    void actFill(long x, long total, int activation, long fill, long bias, int nFill, long fillTotal) {
        if (actFill == null) throw new IllegalStateException("this PTX has no act_fill");
        int i = 0;
        values.set(I64, 8L * i++, x);
        values.set(I64, 8L * i++, total);
        values.set(I32, 8L * i++, activation);
        values.set(I64, 8L * i++, fill);
        values.set(I64, 8L * i++, bias);
        values.set(I32, 8L * i++, nFill);
        values.set(I64, 8L * i++, fillTotal);
        int threads = 256;
        long most = Math.max(total, fillTotal);
        int blocks = (int) Math.max(1, Math.min((most + threads - 1) / threads, (long) multiprocessors * 16));
        launch(actFill, blocks, 1, threads, "act_fill");
    }

    /** Whether this PTX has {@code patch_rows} (the vision graph's patch embedding). */
    boolean hasPatchRows() {
        return patchRows != null;
    }

    /**
     * The patch-embedding convolution's input as {@code rows * kPad} fp16 GEMM rows at out (row (image, gy, gx),
     * column (c, ky, kx), zero past C * patch * patch), from (images, C, grid * patch, grid * patch) pixels at
     * {@code pixels}, fp32 ({@code f32}) or fp16, each rounded to fp16 once. Addresses the caller has checked.
     */
    void patchRows(long out, long pixels, boolean f32, int channels, int patch, int grid, int kPad, long rows) {
        if (patchRows == null) throw new IllegalStateException("this PTX has no patch_rows");
        int i = 0;
        values.set(I64, 8L * i++, out);
        values.set(I64, 8L * i++, pixels);
        values.set(I32, 8L * i++, f32 ? 1 : 0);
        values.set(I32, 8L * i++, channels);
        values.set(I32, 8L * i++, patch);
        values.set(I32, 8L * i++, grid);
        values.set(I32, 8L * i++, kPad);
        long total = rows * kPad;
        values.set(I64, 8L * i++, total);
        int threads = 256;
        int blocks = (int) Math.max(1, Math.min((total + threads - 1) / threads, (long) multiprocessors * 16));
        launch(patchRows, blocks, 1, threads, "patch_rows");
    }

    /** Whether a GPU array is contiguous row-major (every stride the product of the sizes after it). */
    boolean isContiguous(NDArray array) {
        long[] sizes = sizes(array);
        long[] strides = strides(array, sizes.length);
        long expected = 1;
        for (int d = sizes.length - 1; d >= 0; d--) {
            if (sizes[d] != 1 && strides[d] != expected) return false;
            expected *= sizes[d];
        }
        return true;
    }

    /** Makes the primary context current on the calling thread (before a cuBLAS call on a new thread). */
    void ensureContext() {
        try {
            makeCurrent();
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuCtxSetCurrent failed", t);
        }
    }

    /**
     * While on, the decode step's kernels (those that start with pdl_entry) launch with programmatic stream
     * serialization: each may start while the kernel before it finishes, and waits inside for its results. No effect
     * where the driver lacks cuLaunchKernelEx, the PTX lacks the instruction, or with
     * {@code -Dretina.programmaticLaunch=false}.
     */
    void setProgrammatic(boolean on) {
        programmatic = on;
    }

    /**
     * The stream later launches go to: a CUDA graph's capture stream ({@link CudaGraphs#stream}), or
     * {@code MemorySegment.NULL} for the legacy default stream (in order with DJL's ops), the default.
     */
    void setStream(MemorySegment stream) {
        this.stream = stream == null ? MemorySegment.NULL : stream;
    }

    /** The stream launches go to now ({@link #setStream}). */
    MemorySegment stream() {
        return stream;
    }

    /** Waits for all work queued on the device (profiling only). */
    void synchronize() {
        try {
            makeCurrent();
            check((int) cuCtxSynchronize.invokeExact(), "cuCtxSynchronize");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuCtxSynchronize failed", t);
        }
    }

    /** The device address of a GPU array's data (libtorch's C shim). */
    long address(NDArray array) {
        return dataPtr(array).address();
    }

    private void launch(MemorySegment function, int gridX, int gridY, int blockX, String name) {
        launch(function, gridX, gridY, 1, blockX, name);
    }

    private void launch(MemorySegment function, int gridX, int gridY, int gridZ, int blockX, String name) {
        launch(function, gridX, gridY, gridZ, blockX, 0, name);
    }

    private void launch(MemorySegment function, int gridX, int gridY, int gridZ, int blockX, int sharedBytes,
                        String name) {
        launch(function, gridX, gridY, gridZ, blockX, 1, sharedBytes, name);
    }

    private void launch(MemorySegment function, int gridX, int gridY, int gridZ, int blockX, int blockY,
                        int sharedBytes, String name) {
        try {
            makeCurrent();
            if (programmatic && cuLaunchKernelEx != null && programmaticAware.contains(function.address())) {
                launchConfig.set(I32, 0, gridX);
                launchConfig.set(I32, 4, gridY);
                launchConfig.set(I32, 8, gridZ);
                launchConfig.set(I32, 12, blockX);
                launchConfig.set(I32, 16, blockY);
                launchConfig.set(I32, 20, 1);
                launchConfig.set(I32, 24, sharedBytes);
                launchConfig.set(PTR, 32, stream);
                launchConfig.set(PTR, 40, launchConfig.asSlice(LAUNCH_CONFIG_BYTES));
                launchConfig.set(I32, 48, 1);
                launchConfig.set(I32, LAUNCH_CONFIG_BYTES, PROGRAMMATIC_STREAM_SERIALIZATION);
                launchConfig.set(I32, LAUNCH_CONFIG_BYTES + 8, 1);
                check((int) cuLaunchKernelEx.invokeExact(launchConfig, function, params, MemorySegment.NULL),
                        "cuLaunchKernelEx(" + name + ")");
                return;
            }
            int err = (int) cuLaunchKernel.invokeExact(function, gridX, gridY, gridZ, blockX, blockY, 1, sharedBytes,
                    stream, params, MemorySegment.NULL);
            check(err, "cuLaunchKernel(" + name + ")");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuLaunchKernel(" + name + ") failed", t);
        }
    }

    /** cuCtxSetCurrent is per thread; the engine thread is normally always the same, so this runs once. */
    private void makeCurrent() throws Throwable {
        Thread t = Thread.currentThread();
        if (t == currentThread) return;
        check((int) cuCtxSetCurrent.invokeExact(context), "cuCtxSetCurrent");
        currentThread = t;
    }

    private MemorySegment dataPtr(NDArray array) {
        try {
            shimCheck((int) getDataPtr.invokeExact(tensor(array), out), "aoti_torch_get_data_ptr");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("aoti_torch_get_data_ptr failed", t);
        }
        return out.get(PTR, 0);
    }

    /**
     * Checks a 1-D or 2-D row-major GPU array of the given dtype and sizes (-1: any; Long.MIN_VALUE as cols: 1-D) and
     * returns its first size.
     */
    private long requireRowMajor(NDArray array, DataType dtype, long rows, long cols) {
        if (array.getDataType() != dtype)
            throw new IllegalArgumentException("expected " + dtype + ", got " + array.getDataType());
        if (!array.getDevice().isGpu()) throw new IllegalArgumentException("array not on a GPU: " + array.getDevice());
        long[] sizes = sizes(array);
        long[] strides = strides(array, sizes.length);
        boolean oneD = cols == Long.MIN_VALUE;
        if (sizes.length != (oneD ? 1 : 2))
            throw new IllegalArgumentException("expected " + (oneD ? 1 : 2) + "-D, got " + sizes.length + "-D");
        if (rows >= 0 && sizes[0] != rows) throw new IllegalArgumentException("expected " + rows + " rows, got " + sizes[0]);
        if (!oneD && cols >= 0 && sizes[1] != cols)
            throw new IllegalArgumentException("expected " + cols + " columns, got " + sizes[1]);
        boolean contiguous = oneD ? sizes[0] <= 1 || strides[0] == 1
                : (sizes[1] <= 1 || strides[1] == 1) && (sizes[0] <= 1 || strides[0] == sizes[1]);
        if (!contiguous) throw new IllegalArgumentException("array not contiguous row-major");
        return sizes[0];
    }

    private long[] sizes(NDArray array) {
        try {
            MemorySegment h = tensor(array);
            shimCheck((int) getDim.invokeExact(h, out), "aoti_torch_get_dim");
            int dim = (int) out.get(I64, 0);
            shimCheck((int) getSizes.invokeExact(h, out), "aoti_torch_get_sizes");
            return out.get(PTR, 0).reinterpret(8L * dim).toArray(I64);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("aoti_torch_get_sizes failed", t);
        }
    }

    private long[] strides(NDArray array, int dim) {
        try {
            shimCheck((int) getStrides.invokeExact(tensor(array), out), "aoti_torch_get_strides");
            return out.get(PTR, 0).reinterpret(8L * dim).toArray(I64);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("aoti_torch_get_strides failed", t);
        }
    }

    private static MemorySegment tensor(NDArray array) {
        return MemorySegment.ofAddress(((PtNDArray) array).getHandle());
    }

    private static MemorySegment function(MethodHandle getFunction, MemorySegment module, String name) throws Throwable {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment fn = a.allocate(8, 8);
            int err = (int) getFunction.invokeExact(fn, module, a.allocateFrom(name));
            if (err != 0) throw new IllegalStateException("cuModuleGetFunction(" + name + ") returned " + err);
            return fn.get(PTR, 0);
        }
    }

    private static MemorySegment optionalFunction(MethodHandle getFunction, MemorySegment module, String name)
            throws Throwable {
        try {
            return function(getFunction, module, name);
        } catch (IllegalStateException e) {
            return null;
        }
    }

    /** A CUDA driver call through FFM, returning its CUresult. */
    interface DriverCall {
        int run() throws Throwable;
    }

    /** Runs a driver call; a non-zero CUresult throws with the driver's message ({@code cuGetErrorString}). */
    static void driverCall(MethodHandle cuGetErrorString, DriverCall c, String name) {
        int err;
        try {
            err = c.run();
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(name + " failed", t);
        }
        if (err != 0) throw cudaError(cuGetErrorString, err, name);
    }

    /** A downcall handle for a driver (or shim) symbol; fails naming the symbol where it is missing. */
    static MethodHandle handle(Linker linker, SymbolLookup lookup, String name, FunctionDescriptor fd) {
        return linker.downcallHandle(lookup.find(name).orElseThrow(() -> new IllegalStateException(name + " not found")),
                fd);
    }

    private void check(int err, String call) {
        if (err != 0) throw cudaError(cuGetErrorString, err, call);
    }

    /** The exception for a failed driver call: its code and the driver's own description of it (cuGetErrorString). */
    static IllegalStateException cudaError(MethodHandle cuGetErrorString, int err, String call) {
        String message = "?";
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(8, 8);
            if ((int) cuGetErrorString.invokeExact(err, s) == 0 && s.get(PTR, 0).address() != 0)
                message = s.get(PTR, 0).reinterpret(256).getString(0);
        } catch (Throwable ignored) {
            // the code alone still says what failed
        }
        return new IllegalStateException(call + " returned CUDA error " + err + " (" + message + ")");
    }

    private static void shimCheck(int err, String call) {
        if (err != 0) throw new IllegalStateException(call + " returned error " + err + " (see stderr)");
    }
}

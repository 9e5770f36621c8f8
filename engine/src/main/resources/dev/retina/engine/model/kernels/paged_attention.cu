// Retina's own CUDA kernels for the float16 decode path (see CudaKernels.java, which loads the PTX built from this
// file by tools/build_kernels.sh and launches it through the CUDA driver API on the legacy default stream).
//
// KV cache layout (KvCache.java): per layer one K and one V tensor (numBlocks * blockSize, numKvHeads * headDim)
// fp16, row = slot = block * blockSize + offset; a sequence's block table maps position j to block table[j / blockSize].
//
// All kernels: fp16 in/out, fp32 arithmetic inside. Names are extern "C" so the driver API finds them unmangled.

#include <cuda_fp16.h>
#include <math_constants.h>

namespace {

constexpr int kWarps = 8;   // warps per (sequence, head) block in decode attention
constexpr int kUnroll = 8;  // context tokens a warp has in flight per iteration (independent loads: latency hiding)
// 1: decode attention issues each token's V loads together with its K loads (one memory round trip per kUnroll
// tokens instead of two); 0: V after the scores (the first version; kept to compare, -DRETINA_ATTN_COLOAD=0).
#ifndef RETINA_ATTN_COLOAD
#define RETINA_ATTN_COLOAD 1
#endif
// Co-loading needs more registers (90 at head_dim 128: 2 blocks per SM); capped so that 3 blocks fit (no spills).
#if RETINA_ATTN_COLOAD
#define RETINA_ATTN_BOUNDS __launch_bounds__(kWarps * 32, 3)
#else
#define RETINA_ATTN_BOUNDS __launch_bounds__(kWarps * 32)
#endif

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Programmatic dependent launch (Hopper): a kernel that CudaKernels launches with the programmatic-serialization
// attribute may start while the kernel before it in the stream is still running. Every kernel CudaKernels may launch
// that way (names starting with CudaKernels.PROGRAMMATIC_KERNELS) starts with pdl_entry: it lets the next kernel
// launch, then waits until the previous kernel has finished and its writes are visible, before it reads or writes
// anything. The GEMV issues its first weight loads before that wait (weights are never written during a step).
// Launched without the attribute, both instructions return at once.
__device__ __forceinline__ void pdl_release() { asm volatile("griddepcontrol.launch_dependents;" :::); }
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_entry() {
    pdl_release();
    pdl_wait();
}

namespace {

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total. `partial` is 32
// floats of shared memory; the call ends with a barrier, so the same buffer serves the next reduction.
__device__ __forceinline__ float block_sum(float v, float* partial) {
    v = warp_sum(v);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    float t = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

}  // namespace

// Lane `lane` owns elements [lane * PER, lane * PER + PER) of a head_dim-D row (PER = ceil(D / 32)); elements >= D are 0.
template <int D>
__device__ __forceinline__ void load_row(const __half* __restrict__ p, int lane, float (&out)[(D + 31) / 32]) {
    constexpr int PER = (D + 31) / 32;
    const int base = lane * PER;
    if constexpr (D % 32 == 0 && PER % 4 == 0) {
        // 8-byte loads (row starts are 8-byte aligned: D % 4 == 0 and cache tensors are allocation-aligned)
#pragma unroll
        for (int i = 0; i < PER; i += 4) {
            uint2 raw = *reinterpret_cast<const uint2*>(p + base + i);
            __half2 a = *reinterpret_cast<__half2*>(&raw.x);
            __half2 b = *reinterpret_cast<__half2*>(&raw.y);
            float2 fa = __half22float2(a), fb = __half22float2(b);
            out[i] = fa.x; out[i + 1] = fa.y; out[i + 2] = fb.x; out[i + 3] = fb.y;
        }
    } else if constexpr (D % 32 == 0 && PER % 2 == 0) {
#pragma unroll
        for (int i = 0; i < PER; i += 2) {
            float2 f = __half22float2(*reinterpret_cast<const __half2*>(p + base + i));
            out[i] = f.x; out[i + 1] = f.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < PER; i++) out[i] = (base + i < D) ? __half2float(p[base + i]) : 0.f;
    }
}

// The same values as load_row, left as fp16 pairs: loads issued before the values are needed (RETINA_ATTN_COLOAD).
template <int D>
struct RawRow {
    __half2 v[((D + 31) / 32 + 1) / 2];
};

template <int D>
__device__ __forceinline__ void load_raw(const __half* __restrict__ p, int lane, RawRow<D>& r) {
    constexpr int PER = (D + 31) / 32;
    const int base = lane * PER;
    if constexpr (D % 32 == 0 && PER % 4 == 0) {
#pragma unroll
        for (int i = 0; i < PER; i += 4) {
            const uint2 raw = *reinterpret_cast<const uint2*>(p + base + i);
            r.v[i / 2] = *reinterpret_cast<const __half2*>(&raw.x);
            r.v[i / 2 + 1] = *reinterpret_cast<const __half2*>(&raw.y);
        }
    } else if constexpr (D % 32 == 0 && PER % 2 == 0) {
#pragma unroll
        for (int i = 0; i < PER; i += 2) r.v[i / 2] = *reinterpret_cast<const __half2*>(p + base + i);
    } else {
#pragma unroll
        for (int i = 0; i < PER; i++) {
            const __half h = (base + i < D) ? p[base + i] : __float2half_rn(0.f);
            if (i % 2 == 0) r.v[i / 2].x = h; else r.v[i / 2].y = h;
        }
    }
}

template <int D>
__device__ __forceinline__ float raw_at(const RawRow<D>& r, int i) {
    return i % 2 == 0 ? __low2float(r.v[i / 2]) : __high2float(r.v[i / 2]);
}

// The context tokens this block attends to: all of sequence seq's, or split-K partition blockIdx.z's share.
struct DecodeSpan {
    int split;         // 1: split-K (gridDim.z > 1 partitions)
    int t_begin;       // first token
    int ctx;           // one past the last token
    const int* table;  // the sequence's block table
};

__device__ __forceinline__ DecodeSpan decode_span(const int* __restrict__ context_lens,
                                                  const int* __restrict__ block_tables, int max_blocks_per_seq,
                                                  int partition_size, int seq) {
    DecodeSpan span;
    span.split = gridDim.z > 1;
    span.t_begin = span.split ? blockIdx.z * partition_size : 0;
    span.ctx = span.split ? min(context_lens[seq], span.t_begin + partition_size) : context_lens[seq];
    span.table = block_tables + (long long)seq * max_blocks_per_seq;
    return span;
}

// The end of both decode attention layouts, after the barrier: merge the kWarps warps' softmax states (sm_m, sm_l,
// sm_acc rows of acc_stride floats) into the block's output row, or, split-K, into its partial state.
template <int D>
__device__ __forceinline__ void attention_epilogue(const float* sm_m, const float* sm_l, const float* sm_acc,
                                                   int acc_stride, __half* __restrict__ out, long long out_stride,
                                                   int seq, int head, int num_heads, int split,
                                                   float* __restrict__ part_m, float* __restrict__ part_l,
                                                   float* __restrict__ part_acc) {
    float gm = -CUDART_INF_F;
#pragma unroll
    for (int w = 0; w < kWarps; w++) gm = fmaxf(gm, sm_m[w]);
    float weights[kWarps];
    float gl = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; w++) {
        weights[w] = sm_m[w] == -CUDART_INF_F ? 0.f : __expf(sm_m[w] - gm); // warps that saw no token weigh 0
        gl += sm_l[w] * weights[w];
    }
    if (split) {
        const long long idx = ((long long)seq * num_heads + head) * gridDim.z + blockIdx.z;
        if (threadIdx.x == 0) { part_m[idx] = gm; part_l[idx] = gl; }
        for (int e = threadIdx.x; e < D; e += blockDim.x) {
            float v = 0.f;
#pragma unroll
            for (int w = 0; w < kWarps; w++) v = fmaf(sm_acc[w * acc_stride + e], weights[w], v);
            part_acc[idx * D + e] = v;
        }
        return;
    }
    const float inv = gl > 0.f ? 1.f / gl : 0.f; // empty context: zeros rather than NaN
    __half* o = out + seq * out_stride + (long long)head * D;
    for (int e = threadIdx.x; e < D; e += blockDim.x) {
        float v = 0.f;
#pragma unroll
        for (int w = 0; w < kWarps; w++) v = fmaf(sm_acc[w * acc_stride + e], weights[w], v);
        o[e] = __float2half_rn(v * inv);
    }
}

// Decode attention over the paged cache: one query token per sequence. One block per (query head, sequence); its
// warps take interleaved context tokens, each keeping an online softmax (running max m, sum l, weighted V sum acc),
// merged across warps at the end. GQA: query head h reads KV head h / (numHeads / numKvHeads).
//
// out:  row seq at out + seq * out_stride, head h at + h * D      (numSeqs, numHeads * D) fp16
// q:    row seq at q + seq * q_stride,     head h at + h * D      (numSeqs, >= numHeads * D) fp16, may alias out
//       (each block reads its own q vector before any write, and writes only that same vector)
// block_tables: (numSeqs, max_blocks_per_seq) int32;  context_lens: (numSeqs) int32, each >= 0
//
// Split-K (gridDim.z > 1 partitions of partition_size tokens each): the block of partition p attends to tokens
// [p * partition_size, min(ctx, (p + 1) * partition_size)) and, instead of out, writes its partial softmax state
// for paged_attention_reduce: max m, sum l (relative to m) and the unnormalised V sum, at index
// (seq * num_heads + head) * gridDim.z + p of part_m / part_l (and * D of part_acc). A partition past the context
// writes m = -inf, l = 0.
template <int D>
__device__ void paged_attention_decode(__half* __restrict__ out, long long out_stride, const __half* q, long long q_stride,
                                       const __half* __restrict__ k_cache, const __half* __restrict__ v_cache,
                                       const int* __restrict__ block_tables, const int* __restrict__ context_lens,
                                       int max_blocks_per_seq, int block_size, int num_heads, int num_kv_heads,
                                       float scale, int partition_size, float* __restrict__ part_m,
                                       float* __restrict__ part_l, float* __restrict__ part_acc) {
    constexpr int PER = (D + 31) / 32;
    __shared__ float sm_m[kWarps];
    __shared__ float sm_l[kWarps];
    __shared__ float sm_acc[kWarps][PER * 32];

    const int head = blockIdx.x;
    const int seq = blockIdx.y;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int kv_head = head / (num_heads / num_kv_heads);
    const DecodeSpan span = decode_span(context_lens, block_tables, max_blocks_per_seq, partition_size, seq);
    const long long row_stride = (long long)num_kv_heads * D;
    const __half* kbase = k_cache + (long long)kv_head * D;
    const __half* vbase = v_cache + (long long)kv_head * D;

    float qv[PER];
    load_row<D>(q + seq * q_stride + (long long)head * D, lane, qv);
#pragma unroll
    for (int i = 0; i < PER; i++) qv[i] *= scale;

    float m = -CUDART_INF_F;
    float l = 0.f;
    float acc[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) acc[i] = 0.f;

    for (int t0 = span.t_begin + warp; t0 < span.ctx; t0 += kWarps * kUnroll) {
        int rows[kUnroll]; // cache slot of each token in flight, -1 past the context (slots < 2^31)
        float s[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            int t = t0 + u * kWarps;
            rows[u] = t < span.ctx ? span.table[t / block_size] * block_size + t % block_size : -1;
        }
#if RETINA_ATTN_COLOAD
        RawRow<D> kr[kUnroll];
        RawRow<D> vr[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            if (rows[u] >= 0) {
                load_raw<D>(kbase + rows[u] * row_stride, lane, kr[u]);
                load_raw<D>(vbase + rows[u] * row_stride, lane, vr[u]);
            }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            float partial = 0.f;
            if (rows[u] >= 0) {
#pragma unroll
                for (int i = 0; i < PER; i++) partial = fmaf(qv[i], raw_at<D>(kr[u], i), partial);
            }
            s[u] = partial;
        }
#else
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            float partial = 0.f;
            if (rows[u] >= 0) {
                float kv[PER];
                load_row<D>(kbase + rows[u] * row_stride, lane, kv);
#pragma unroll
                for (int i = 0; i < PER; i++) partial = fmaf(qv[i], kv[i], partial);
            }
            s[u] = partial;
        }
#endif
        float m_new = m;
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            s[u] = warp_sum(s[u]);
            if (rows[u] >= 0) m_new = fmaxf(m_new, s[u]);
        }
        // t0 < span.ctx, so u = 0 is valid and m_new is finite; on the first pass m = -inf gives corr = 0.
        const float corr = __expf(m - m_new);
        l *= corr;
#pragma unroll
        for (int i = 0; i < PER; i++) acc[i] *= corr;
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            if (rows[u] < 0) continue;
            const float p = __expf(s[u] - m_new);
            l += p;
#if RETINA_ATTN_COLOAD
#pragma unroll
            for (int i = 0; i < PER; i++) acc[i] = fmaf(p, raw_at<D>(vr[u], i), acc[i]);
#else
            float vv[PER];
            load_row<D>(vbase + rows[u] * row_stride, lane, vv);
#pragma unroll
            for (int i = 0; i < PER; i++) acc[i] = fmaf(p, vv[i], acc[i]);
#endif
        }
        m = m_new;
    }

    if (lane == 0) { sm_m[warp] = m; sm_l[warp] = l; }
#pragma unroll
    for (int i = 0; i < PER; i++) sm_acc[warp][lane * PER + i] = acc[i];
    __syncthreads();

    attention_epilogue<D>(sm_m, sm_l, &sm_acc[0][0], sizeof(sm_acc[0]) / sizeof(float), out, out_stride, seq, head,
                          num_heads, span.split, part_m, part_l, part_acc);
}

}  // namespace

#define RETINA_PAGED_DECODE(D)                                                                                        \
    extern "C" __global__ void RETINA_ATTN_BOUNDS paged_attention_decode_d##D(                                              \
        __half* out, long long out_stride, const __half* q, long long q_stride, const __half* k_cache,               \
        const __half* v_cache, const int* block_tables, const int* context_lens, int max_blocks_per_seq,             \
        int block_size, int num_heads, int num_kv_heads, float scale) {                                               \
        pdl_entry();                                                                                                  \
        paged_attention_decode<D>(out, out_stride, q, q_stride, k_cache, v_cache, block_tables, context_lens,        \
                                  max_blocks_per_seq, block_size, num_heads, num_kv_heads, scale, 0, nullptr,       \
                                  nullptr, nullptr);                                                                 \
    }                                                                                                                 \
    extern "C" __global__ void RETINA_ATTN_BOUNDS paged_attention_split_d##D(                                               \
        const __half* q, long long q_stride, const __half* k_cache, const __half* v_cache, const int* block_tables,  \
        const int* context_lens, int max_blocks_per_seq, int block_size, int num_heads, int num_kv_heads,            \
        float scale, int partition_size, float* part_m, float* part_l, float* part_acc) {                            \
        pdl_entry();                                                                                                  \
        paged_attention_decode<D>(nullptr, 0, q, q_stride, k_cache, v_cache, block_tables, context_lens,             \
                                  max_blocks_per_seq, block_size, num_heads, num_kv_heads, scale, partition_size,   \
                                  part_m, part_l, part_acc);                                                         \
    }

RETINA_PAGED_DECODE(8)
RETINA_PAGED_DECODE(16)
RETINA_PAGED_DECODE(32)
RETINA_PAGED_DECODE(64)
RETINA_PAGED_DECODE(80)
RETINA_PAGED_DECODE(96)
RETINA_PAGED_DECODE(128)
RETINA_PAGED_DECODE(256)

// The same decode attention with lane groups (entries paged_attention_{decode,split}_g_d<D>, D a power of two >= 8;
// selected by -Dretina.attnKernel=g): a token's row is read by G = D / 8 lanes with one 16-byte load each for K and
// for V, so a warp has 32 / G tokens per load slot and U slots in flight. Against the one-token-per-warp kernel:
// half the load instructions (16- not 8-byte), scores reduced over G lanes (log2 G shuffles, for 32 / G tokens at
// once) instead of 32, and the softmax's exp per token on G lanes instead of 32. Each lane group keeps its own
// online-softmax state; groups merge through shuffles, warps through shared memory as above. Same arguments,
// outputs and split-K partial states as paged_attention_decode.
template <int D, int U>
__device__ void paged_attention_grouped(__half* __restrict__ out, long long out_stride, const __half* q,
                                        long long q_stride, const __half* __restrict__ k_cache,
                                        const __half* __restrict__ v_cache, const int* __restrict__ block_tables,
                                        const int* __restrict__ context_lens, int max_blocks_per_seq, int block_size,
                                        int num_heads, int num_kv_heads, float scale, int partition_size,
                                        float* __restrict__ part_m, float* __restrict__ part_l,
                                        float* __restrict__ part_acc) {
    static_assert(D >= 8 && D <= 256 && (D & (D - 1)) == 0, "D: a power of two in [8, 256]");
    constexpr int G = D / 8;          // lanes per token
    constexpr int NG = 32 / G;        // tokens per warp per load slot
    constexpr int STEP = kWarps * NG; // tokens per load slot per block
    __shared__ float sm_m[kWarps];
    __shared__ float sm_l[kWarps];
    __shared__ float sm_acc[kWarps][D];

    const int head = blockIdx.x;
    const int seq = blockIdx.y;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int group = lane / G;       // token slot of this lane within the warp
    const int part = lane % G;        // elements [part * 8, part * 8 + 8) of the row
    const int kv_head = head / (num_heads / num_kv_heads);
    const DecodeSpan span = decode_span(context_lens, block_tables, max_blocks_per_seq, partition_size, seq);
    const long long row_stride = (long long)num_kv_heads * D;
    const __half* kbase = k_cache + (long long)kv_head * D + part * 8;
    const __half* vbase = v_cache + (long long)kv_head * D + part * 8;

    float qv[8];
    {
        const uint4 raw = *reinterpret_cast<const uint4*>(q + seq * q_stride + (long long)head * D + part * 8);
        const __half2* h2 = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float2 f = __half22float2(h2[j]);
            qv[2 * j] = f.x * scale;
            qv[2 * j + 1] = f.y * scale;
        }
    }
    float m = -CUDART_INF_F;
    float l = 0.f;
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.f;

    // The loop bound is warp-uniform (the shuffles need every lane); a group's tokens past span.ctx are masked.
    for (int t0 = span.t_begin + warp * NG; t0 < span.ctx; t0 += STEP * U) {
        int rows[U];
        uint4 kr[U];
        uint4 vr[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int t = t0 + group + u * STEP;
            rows[u] = t < span.ctx ? span.table[t / block_size] * block_size + t % block_size : -1;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (rows[u] >= 0) {
                kr[u] = *reinterpret_cast<const uint4*>(kbase + rows[u] * row_stride);
                vr[u] = *reinterpret_cast<const uint4*>(vbase + rows[u] * row_stride);
            } else {
                kr[u] = make_uint4(0u, 0u, 0u, 0u);
                vr[u] = make_uint4(0u, 0u, 0u, 0u);
            }
        }
        float s[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const __half2* k2 = reinterpret_cast<const __half2*>(&kr[u]);
            float partial = 0.f;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float2 f = __half22float2(k2[j]);
                partial = fmaf(qv[2 * j], f.x, partial);
                partial = fmaf(qv[2 * j + 1], f.y, partial);
            }
#pragma unroll
            for (int o = G / 2; o > 0; o >>= 1) partial += __shfl_xor_sync(0xffffffffu, partial, o);
            s[u] = partial;
        }
        float m_new = m;
#pragma unroll
        for (int u = 0; u < U; u++)
            if (rows[u] >= 0) m_new = fmaxf(m_new, s[u]);
        // m_new = -inf only while this group has seen no token (l and acc still 0); first token: m = -inf, corr = 0
        const float corr = m_new == -CUDART_INF_F ? 1.f : __expf(m - m_new);
        l *= corr;
#pragma unroll
        for (int i = 0; i < 8; i++) acc[i] *= corr;
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (rows[u] < 0) continue;
            const float p = __expf(s[u] - m_new);
            l += p;
            const __half2* v2 = reinterpret_cast<const __half2*>(&vr[u]);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float2 f = __half22float2(v2[j]);
                acc[2 * j] = fmaf(p, f.x, acc[2 * j]);
                acc[2 * j + 1] = fmaf(p, f.y, acc[2 * j + 1]);
            }
        }
        m = m_new;
    }
    // Groups of the warp merge: lanes with the same part, across groups (xor over the group bits).
#pragma unroll
    for (int o = G; o < 32; o <<= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const float l2 = __shfl_xor_sync(0xffffffffu, l, o);
        const float mm = fmaxf(m, m2);
        const float c1 = m == -CUDART_INF_F ? 0.f : __expf(m - mm);
        const float c2 = m2 == -CUDART_INF_F ? 0.f : __expf(m2 - mm);
        l = l * c1 + l2 * c2;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float a2 = __shfl_xor_sync(0xffffffffu, acc[i], o);
            acc[i] = acc[i] * c1 + a2 * c2;
        }
        m = mm;
    }
    if (lane == 0) { sm_m[warp] = m; sm_l[warp] = l; }
    if (group == 0) {
#pragma unroll
        for (int i = 0; i < 8; i++) sm_acc[warp][part * 8 + i] = acc[i];
    }
    __syncthreads();

    attention_epilogue<D>(sm_m, sm_l, &sm_acc[0][0], sizeof(sm_acc[0]) / sizeof(float), out, out_stride, seq, head,
                          num_heads, span.split, part_m, part_l, part_acc);
}

#ifndef RETINA_ATTN_G_UNROLL
#define RETINA_ATTN_G_UNROLL 4
#endif

#define RETINA_PAGED_GROUPED(D, U, B, NAME)                                                                             \
    extern "C" __global__ void __launch_bounds__(kWarps * 32, B) paged_attention_decode_##NAME##_d##D(                \
        __half* out, long long out_stride, const __half* q, long long q_stride, const __half* k_cache,               \
        const __half* v_cache, const int* block_tables, const int* context_lens, int max_blocks_per_seq,             \
        int block_size, int num_heads, int num_kv_heads, float scale) {                                               \
        pdl_entry();                                                                                                  \
        paged_attention_grouped<D, U>(out, out_stride, q, q_stride, k_cache, v_cache, block_tables, context_lens,    \
                                      max_blocks_per_seq, block_size, num_heads, num_kv_heads, scale, 0, nullptr,   \
                                      nullptr, nullptr);                                                             \
    }                                                                                                                 \
    extern "C" __global__ void __launch_bounds__(kWarps * 32, B) paged_attention_split_##NAME##_d##D(                 \
        const __half* q, long long q_stride, const __half* k_cache, const __half* v_cache, const int* block_tables,  \
        const int* context_lens, int max_blocks_per_seq, int block_size, int num_heads, int num_kv_heads,            \
        float scale, int partition_size, float* part_m, float* part_l, float* part_acc) {                            \
        pdl_entry();                                                                                                  \
        paged_attention_grouped<D, U>(nullptr, 0, q, q_stride, k_cache, v_cache, block_tables, context_lens,         \
                                      max_blocks_per_seq, block_size, num_heads, num_kv_heads, scale,               \
                                      partition_size, part_m, part_l, part_acc);                                     \
    }

RETINA_PAGED_GROUPED(8, RETINA_ATTN_G_UNROLL, 3, g)
RETINA_PAGED_GROUPED(16, RETINA_ATTN_G_UNROLL, 3, g)
RETINA_PAGED_GROUPED(32, RETINA_ATTN_G_UNROLL, 3, g)
RETINA_PAGED_GROUPED(64, RETINA_ATTN_G_UNROLL, 3, g)
RETINA_PAGED_GROUPED(128, RETINA_ATTN_G_UNROLL, 3, g)
RETINA_PAGED_GROUPED(256, RETINA_ATTN_G_UNROLL, 3, g)
RETINA_PAGED_GROUPED(128, 8, 2, g8) // more loads in flight, 2 blocks per SM (a comparison entry)

// Rotary embedding (HF rotate_half convention) on q and k in place of the fused qkv projection output, and K/V
// written into the cache at each token's slot. Block (token, group of blockDim.y heads) over the q, k and v heads
// (grid (numTokens, ceil((numHeads + 2 * numKvHeads) / blockDim.y))): one head per block for a decode step's few
// tokens, so they still spread over many SMs; several for a prefill's many tokens (fewer, fuller blocks).
//   qkv:       (numTokens, (numHeads + 2 * numKvHeads) * D) fp16, contiguous: q heads, k heads, v heads; q is
//              rotated in place; k's rotated values go to the cache (rope_kv_write_kback: back into qkv too, for
//              flash attention over the qkv rows themselves: prefills with no cached context)
//   positions: (numTokens) int64; slots: (numTokens) int64, -1: a padding row (skipped)
//   cos, sin:  (numPositions, D) fp16, the two halves of a row equal (emb = cat(freqs, freqs))
//   k_cache, v_cache: (numSlots, numKvHeads * D) fp16
// out[i] = x[i] cos[i] - x[i + D/2] sin[i],  out[i + D/2] = x[i + D/2] cos[i + D/2] + x[i] sin[i + D/2]  (i < D/2)
template <bool KBack>
__device__ __forceinline__ void rope_kv_write_impl(__half* qkv, const long long* positions, const long long* slots,
                                         const __half* __restrict__ cos, const __half* __restrict__ sin,
                                         __half* k_cache, __half* v_cache, int num_heads, int num_kv_heads, int D) {
    const int token = blockIdx.x;
    const int h = blockIdx.y * blockDim.y + threadIdx.y; // blockDim.y heads per block (many tokens: fewer blocks)
    if (h >= num_heads + 2 * num_kv_heads) return;
    const int half_d = D / 2;
    const long long row_len = (long long)(num_heads + 2 * num_kv_heads) * D;
    __half* row = qkv + token * row_len;
    const long long slot = slots[token];
    if (slot < 0) return; // a padding row of a captured decode step (CUDA graph bucket): no token, nothing written
    const long long kv_dim = (long long)num_kv_heads * D;
    if (h >= num_heads + num_kv_heads) { // a v head: copied to the cache
        const int vh = h - num_heads - num_kv_heads;
        const __half* v = row + (long long)h * D;
        __half* v_out = v_cache + slot * kv_dim + (long long)vh * D;
        for (int e = threadIdx.x; e < D; e += blockDim.x) v_out[e] = v[e];
        return;
    }
    const long long pos = positions[token];
    const __half* c = cos + pos * D;
    const __half* s = sin + pos * D;
    __half* x = row + (long long)h * D;
    __half* k = k_cache + slot * kv_dim + (long long)(h - num_heads) * D; // used when h >= num_heads
    for (int i = threadIdx.x; i < half_d; i += blockDim.x) {
        const float x1 = __half2float(x[i]);
        const float x2 = __half2float(x[i + half_d]);
        const __half o1 = __float2half_rn(x1 * __half2float(c[i]) - x2 * __half2float(s[i]));
        const __half o2 = __float2half_rn(x2 * __half2float(c[i + half_d]) + x1 * __half2float(s[i + half_d]));
        if (h < num_heads) {
            x[i] = o1;
            x[i + half_d] = o2;
        } else {
            k[i] = o1;
            k[i + half_d] = o2;
            if constexpr (KBack) {
                x[i] = o1;
                x[i + half_d] = o2;
            }
        }
    }
}

// One entry point per rotary implementation and k write-back choice (the arguments are the same for all four).
#define RETINA_ROPE_ENTRY(name, impl, kback)                                                                      \
    extern "C" __global__ void name(__half* qkv, const long long* positions, const long long* slots,              \
                                    const __half* __restrict__ cos, const __half* __restrict__ sin,               \
                                    __half* k_cache, __half* v_cache, int num_heads, int num_kv_heads, int D) {   \
        pdl_entry();                                                                                              \
        impl<kback>(qkv, positions, slots, cos, sin, k_cache, v_cache, num_heads, num_kv_heads, D);                \
    }

RETINA_ROPE_ENTRY(rope_kv_write, rope_kv_write_impl, false)
// rope_kv_write that also writes the rotated k heads back into qkv (prefills attended over their own qkv rows).
RETINA_ROPE_ENTRY(rope_kv_write_kback, rope_kv_write_impl, true)

// rope_kv_write with 16-byte loads and stores: a lane takes 8 consecutive rotated pairs (i .. i+7 with their
// partners i + D/2 ..), so a head of D = 128 is 8 lanes instead of 64 threads on 2-byte values. The arithmetic per
// pair is rope_kv_write_impl's, written the same way, so the two agree bit for bit. Needs D % 16 == 0 and every
// pointer 16-byte aligned (the launcher checks). Block (D / 16 lanes, blockDim.y heads); grid as rope_kv_write's.
template <bool KBack>
__device__ __forceinline__ void rope_kv_write_vec_impl(__half* qkv, const long long* positions, const long long* slots,
                                                       const __half* __restrict__ cos, const __half* __restrict__ sin,
                                                       __half* k_cache, __half* v_cache, int num_heads,
                                                       int num_kv_heads, int D) {
    const int token = blockIdx.x;
    const int h = blockIdx.y * blockDim.y + threadIdx.y;
    if (h >= num_heads + 2 * num_kv_heads) return;
    const int half_d = D / 2;
    const long long row_len = (long long)(num_heads + 2 * num_kv_heads) * D;
    __half* row = qkv + token * row_len;
    const long long slot = slots[token];
    if (slot < 0) return; // a padding row of a captured decode step: nothing written
    const long long kv_dim = (long long)num_kv_heads * D;
    if (h >= num_heads + num_kv_heads) { // a v head: copied to the cache, 16 bytes at a time
        const int vh = h - num_heads - num_kv_heads;
        const uint4* v = reinterpret_cast<const uint4*>(row + (long long)h * D);
        uint4* v_out = reinterpret_cast<uint4*>(v_cache + slot * kv_dim + (long long)vh * D);
        for (int e = threadIdx.x; e < D / 8; e += blockDim.x) v_out[e] = v[e];
        return;
    }
    const long long pos = positions[token];
    const __half* c = cos + pos * D;
    const __half* s = sin + pos * D;
    __half* x = row + (long long)h * D;
    __half* k = k_cache + slot * kv_dim + (long long)(h - num_heads) * D;
    for (int i = threadIdx.x * 8; i < half_d; i += blockDim.x * 8) {
        const uint4 x1v = *reinterpret_cast<const uint4*>(x + i);
        const uint4 x2v = *reinterpret_cast<const uint4*>(x + i + half_d);
        const uint4 c1v = *reinterpret_cast<const uint4*>(c + i);
        const uint4 c2v = *reinterpret_cast<const uint4*>(c + i + half_d);
        const uint4 s1v = *reinterpret_cast<const uint4*>(s + i);
        const uint4 s2v = *reinterpret_cast<const uint4*>(s + i + half_d);
        const __half* x1h = reinterpret_cast<const __half*>(&x1v);
        const __half* x2h = reinterpret_cast<const __half*>(&x2v);
        const __half* c1h = reinterpret_cast<const __half*>(&c1v);
        const __half* c2h = reinterpret_cast<const __half*>(&c2v);
        const __half* s1h = reinterpret_cast<const __half*>(&s1v);
        const __half* s2h = reinterpret_cast<const __half*>(&s2v);
        uint4 o1v;
        uint4 o2v;
        __half* o1h = reinterpret_cast<__half*>(&o1v);
        __half* o2h = reinterpret_cast<__half*>(&o2v);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float x1 = __half2float(x1h[j]);
            const float x2 = __half2float(x2h[j]);
            o1h[j] = __float2half_rn(x1 * __half2float(c1h[j]) - x2 * __half2float(s1h[j]));
            o2h[j] = __float2half_rn(x2 * __half2float(c2h[j]) + x1 * __half2float(s2h[j]));
        }
        if (h < num_heads) {
            *reinterpret_cast<uint4*>(x + i) = o1v;
            *reinterpret_cast<uint4*>(x + i + half_d) = o2v;
        } else {
            *reinterpret_cast<uint4*>(k + i) = o1v;
            *reinterpret_cast<uint4*>(k + i + half_d) = o2v;
            if constexpr (KBack) {
                *reinterpret_cast<uint4*>(x + i) = o1v;
                *reinterpret_cast<uint4*>(x + i + half_d) = o2v;
            }
        }
    }
}

RETINA_ROPE_ENTRY(rope_kv_write_vec, rope_kv_write_vec_impl, false)
RETINA_ROPE_ENTRY(rope_kv_write_kback_vec, rope_kv_write_vec_impl, true)

// SwiGLU: out = silu(gate) * up, gate and up side by side in one row (the fused gate_up projection's output).
//   gate_up: (numTokens, 2 * inter) fp16 contiguous; out: (numTokens, inter) fp16 contiguous
extern "C" __global__ void silu_mul(__half* __restrict__ out, const __half* __restrict__ gate_up, long long num_tokens,
                                    int inter) {
    pdl_entry();
    // x over a row's inter values, y over tokens (both grid-strided): no 64-bit division per element
    for (long long t = blockIdx.y; t < num_tokens; t += gridDim.y) {
        const __half* row = gate_up + t * 2 * inter;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < inter; j += gridDim.x * blockDim.x) {
            const float g = __half2float(row[j]);
            const float u = __half2float(row[inter + j]);
            out[t * inter + j] = __float2half_rn(g / (1.f + __expf(-g)) * u);
        }
    }
}

// f applied lane by lane to two 16-byte vectors of 8 fp16 values (the vec kernels' loads and stores).
template <typename F>
__device__ __forceinline__ uint4 zip8(const uint4 a, const uint4 b, F f) {
    const __half* ah = reinterpret_cast<const __half*>(&a);
    const __half* bh = reinterpret_cast<const __half*>(&b);
    uint4 out;
    __half* oh = reinterpret_cast<__half*>(&out);
#pragma unroll
    for (int k = 0; k < 8; k++) oh[k] = f(ah[k], bh[k]);
    return out;
}

// silu_mul with 16-byte loads and stores (8 values per thread per iteration), the same arithmetic per value. Off by
// default until it has run on a GPU (-Dretina.vecKernels=true). Needs inter a multiple of 8 and both buffers 16-byte
// aligned (the launcher checks, and otherwise launches silu_mul); x over a row's 8-value vectors, y over tokens.
__device__ __forceinline__ __half silu_mul_one(__half g, __half u) {
    const float gf = __half2float(g);
    return __float2half_rn(gf / (1.f + __expf(-gf)) * __half2float(u));
}

extern "C" __global__ void silu_mul_vec(__half* __restrict__ out, const __half* __restrict__ gate_up,
                                        long long num_tokens, int inter) {
    pdl_entry();
    const int vecs = inter >> 3;
    for (long long t = blockIdx.y; t < num_tokens; t += gridDim.y) {
        const uint4* g4 = reinterpret_cast<const uint4*>(gate_up + t * 2 * inter);
        const uint4* u4 = reinterpret_cast<const uint4*>(gate_up + t * 2 * inter + inter);
        uint4* o4 = reinterpret_cast<uint4*>(out + t * inter);
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < vecs; j += gridDim.x * blockDim.x) {
            o4[j] = zip8(g4[j], u4[j], [](__half g, __half u) { return silu_mul_one(g, u); });
        }
    }
}

// Token embedding lookup inside a captured decode step: row r of out = row ids[r] of the embedding table (exact
// copies, as torch's embedding). One block per row; 16-byte copies (hidden a multiple of 8).
//   out: (rows, hidden) fp16 contiguous; table: (vocab, hidden) fp16 contiguous; ids: (rows) int64, each in [0, vocab)
extern "C" __global__ void embed_rows(__half* __restrict__ out, const __half* __restrict__ table,
                                      const long long* __restrict__ ids, int hidden) {
    const uint4* src = reinterpret_cast<const uint4*>(table + ids[blockIdx.x] * (long long)hidden);
    uint4* dst = reinterpret_cast<uint4*>(out + (long long)blockIdx.x * hidden);
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) dst[i] = src[i];
}

// HF LlamaRMSNorm in a float16 model: x to fp32, x * rsqrt(mean(x^2) + eps) rounded to fp16, times the weight (the
// product rounded once, as torch's fp16 multiply). One block per row; any block size that is a multiple of 32.
//   x, out: (rows, hidden) fp16 contiguous (out may not alias x); w: (hidden) fp16
extern "C" __global__ void rms_norm(__half* __restrict__ out, const __half* __restrict__ x, const __half* __restrict__ w,
                                    int hidden, float eps) {
    pdl_entry();
    __shared__ float partial[32];
    const __half* row = x + (long long)blockIdx.x * hidden;
    __half* out_row = out + (long long)blockIdx.x * hidden;
    float ss = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const float v = __half2float(row[i]);
        ss += v * v;
    }
    ss = warp_sum(ss);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        float v = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.f;
        v = warp_sum(v);
        if (lane == 0) partial[0] = v;
    }
    __syncthreads();
    const float rstd = rsqrtf(partial[0] / (float)hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const __half n = __float2half_rn(__half2float(row[i]) * rstd);
        out_row[i] = __float2half_rn(__half2float(w[i]) * __half2float(n));
    }
}

// rms_norm with 16-byte loads and stores; the sum of squares adds up in another order than rms_norm's, so results may
// differ from it by one fp16 step. Off by default until it has run on a GPU (-Dretina.vecKernels=true). Needs hidden a
// multiple of 8 and all three buffers 16-byte aligned (the launcher checks, and otherwise launches rms_norm).
__device__ __forceinline__ __half rms_norm_one(__half x, __half w, float rstd) {
    const __half n = __float2half_rn(__half2float(x) * rstd);
    return __float2half_rn(__half2float(w) * __half2float(n));
}

extern "C" __global__ void rms_norm_vec(__half* __restrict__ out, const __half* __restrict__ x,
                                        const __half* __restrict__ w, int hidden, float eps) {
    pdl_entry();
    __shared__ float partial[32];
    const uint4* row4 = reinterpret_cast<const uint4*>(x + (long long)blockIdx.x * hidden);
    uint4* out4 = reinterpret_cast<uint4*>(out + (long long)blockIdx.x * hidden);
    const uint4* w4 = reinterpret_cast<const uint4*>(w);
    const int vecs = hidden >> 3;
    float ss = 0.f;
    for (int i = threadIdx.x; i < vecs; i += blockDim.x) {
        const uint4 v = row4[i];
        const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float2 f = __half22float2(h[k]);
            ss += f.x * f.x + f.y * f.y;
        }
    }
    const float rstd = rsqrtf(block_sum(ss, partial) / (float)hidden + eps);
    for (int i = threadIdx.x; i < vecs; i += blockDim.x) {
        out4[i] = zip8(row4[i], w4[i], [rstd](__half x, __half w) { return rms_norm_one(x, w, rstd); });
    }
}

// Merges paged_attention_split's partitions: out = sum_p acc_p exp(m_p - M) / sum_p l_p exp(m_p - M), M = max_p m_p.
// One block per (head, seq), one thread per element of the head (blockDim.x >= D rounded to a warp).
//   out: (numSeqs, numHeads * D) fp16 at out + seq * out_stride; part_*: as written by paged_attention_split
extern "C" __global__ void paged_attention_reduce(__half* __restrict__ out, long long out_stride,
                                                  const float* __restrict__ part_m, const float* __restrict__ part_l,
                                                  const float* __restrict__ part_acc, int num_heads, int num_parts,
                                                  int head_dim) {
    pdl_entry();
    const int head = blockIdx.x;
    const int seq = blockIdx.y;
    const long long base = ((long long)seq * num_heads + head) * num_parts;
    float gm = -CUDART_INF_F;
    for (int p = 0; p < num_parts; p++) gm = fmaxf(gm, part_m[base + p]);
    float gl = 0.f;
    for (int p = 0; p < num_parts; p++) {
        const float m = part_m[base + p];
        if (m != -CUDART_INF_F) gl += part_l[base + p] * __expf(m - gm);
    }
    const float inv = gl > 0.f ? 1.f / gl : 0.f;
    for (int e = threadIdx.x; e < head_dim; e += blockDim.x) {
        float v = 0.f;
        for (int p = 0; p < num_parts; p++) {
            const float m = part_m[base + p];
            if (m != -CUDART_INF_F) v = fmaf(part_acc[(base + p) * head_dim + e], __expf(m - gm), v);
        }
        out[seq * out_stride + (long long)head * head_dim + e] = __float2half_rn(v * inv);
    }
}

namespace {

// Small-batch GEMV for a decode step of one sequence (the decode graphs' M = 1 bucket; M = 2 and 4 exist for
// measurements): y (M, N) = x (M, K) @ W (N, K)^T, M <= 4 rows, fp32 accumulation, each output rounded once (after
// adding y's old value when accumulate != 0: the residual add, as cuBLAS's beta = 1). x is read through L1.
//   GLU: W is gate | up (N = 2 * inter rows); y (M, inter) = silu(gate) * up, gate and up each rounded to fp16 first,
//        then rounded as silu_mul rounds: the SwiGLU kernel and the gate_up round trip go away.
// A block of kGemvThreads threads takes ROWS rows of W (grid: ceil(N / ROWS); with GLU ROWS / 2 gate rows and the
// matching up rows) as one run of 16-byte chunks, thread t the chunks t, t + kGemvThreads, ..., U of them in
// flight at a time. Many short blocks keep every SM's loads in flight, and the block scheduler balances them. The
// first loads go out before pdl_entry's wait, so under programmatic launch they overlap the previous kernel's tail.
// The partial sums meet in shared memory. Needs K % 8 == 0 and 16-byte aligned rows; y may not alias x.
// (A version that computed RMSNorm in each block's prologue read the input row and the norm weight once per block,
// 16 KiB of L2 traffic per 32 KiB of weights, and was slower than the rms_norm kernel followed by this one.)
constexpr int kGemvThreads = 256;

// Chunk q of a block's run over W: its rows are consecutive, or with GLU two runs of ROWS / 2 rows (gate, then up).
// No division here: the loads go out as soon as their address is known.
template <bool GLU>
__device__ __forceinline__ uint4 gemv_load(const uint4* __restrict__ w0, const uint4* __restrict__ w1, int half, int q,
                                           int total) {
    if (q >= total) return make_uint4(0u, 0u, 0u, 0u);
    if constexpr (GLU) return q < half ? __ldcs(w0 + q) : __ldcs(w1 + (q - half));
    return __ldcs(w0 + q);
}

template <int M, int ROWS, bool GLU, int U>
__device__ __forceinline__ void gemv(__half* __restrict__ y, const __half* __restrict__ x, const __half* __restrict__ W,
                                     int N, int K, int accumulate) {
    constexpr int T = kGemvThreads;
    constexpr int kW = T / 32;
    __shared__ float red[kW][ROWS * M];
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int cpr = K >> 3; // 16-byte chunks per row
    // GLU: rows (of each half) row0 .. row0 + ROWS / 2 - 1; else row0 .. row0 + ROWS - 1
    const int row0 = blockIdx.x * (GLU ? ROWS / 2 : ROWS);
    const int valid = GLU ? min(ROWS / 2, N / 2 - row0) : min(ROWS, N - row0); // rows (per half) in range
    const int total = (GLU ? ROWS : valid) * cpr; // GLU: N / 2 is a multiple of ROWS / 2 (the launcher checks)
    const uint4* w0 = reinterpret_cast<const uint4*>(W + (long long)row0 * K);
    const uint4* w1 = GLU ? reinterpret_cast<const uint4*>(W + (long long)(N / 2 + row0) * K) : w0;
    const int half = (ROWS / 2) * cpr;
    uint4 w[U];
#pragma unroll
    for (int u = 0; u < U; u++) w[u] = gemv_load<GLU>(w0, w1, half, tid + T * u, total);
    pdl_entry();

    const uint4* xv = reinterpret_cast<const uint4*>(x);
    float acc[ROWS][M];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.f;
    for (int q0 = tid;; q0 += T * U) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int q = q0 + T * u;
            if (q < total) {
                const int r = q / cpr;
                const int c = q - r * cpr;
                const __half2* w2 = reinterpret_cast<const __half2*>(&w[u]);
#pragma unroll
                for (int m = 0; m < M; m++) {
                    const uint4 xr = __ldg(xv + m * cpr + c);
                    const __half2* x2 = reinterpret_cast<const __half2*>(&xr);
                    float d = 0.f;
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        const float2 wf = __half22float2(w2[j]);
                        const float2 xf = __half22float2(x2[j]);
                        d = fmaf(wf.x, xf.x, d);
                        d = fmaf(wf.y, xf.y, d);
                    }
#pragma unroll
                    for (int rr = 0; rr < ROWS; rr++)
                        if (rr == r) acc[rr][m] += d;
                }
            }
        }
        if (q0 + T * U >= total) break;
#pragma unroll
        for (int u = 0; u < U; u++) w[u] = gemv_load<GLU>(w0, w1, half, q0 + T * U + T * u, total);
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int m = 0; m < M; m++) {
            const float t = warp_sum(acc[r][m]);
            if (lane == 0) red[warp][r * M + m] = t;
        }
    __syncthreads();
    constexpr int kOut = (GLU ? ROWS / 2 : ROWS) * M; // outputs per block
    if (tid < kOut) {
        const int r = tid / M;
        const int m = tid - r * M;
        if (r < valid) {
            float t = 0.f;
#pragma unroll
            for (int v = 0; v < kW; v++) t += red[v][tid];
            if constexpr (GLU) {
                float u = 0.f;
#pragma unroll
                for (int v = 0; v < kW; v++) u += red[v][tid + (ROWS / 2) * M];
                const float g = __half2float(__float2half_rn(t));
                const float up = __half2float(__float2half_rn(u));
                y[(long long)m * (N / 2) + row0 + r] = __float2half_rn(g / (1.f + __expf(-g)) * up);
            } else {
                const long long o = (long long)m * N + row0 + r;
                const float prev = accumulate ? __half2float(y[o]) : 0.f;
                y[o] = __float2half_rn(t + prev);
            }
        }
    }
}

}  // namespace

// gemv_m<M>_plain / _glu take 4 rows of W per block; gemv_m<M>_plain_r8 takes 8 (for outputs up to 8192 wide: the o
// and down projections); each thread keeps 8 loads in flight. At M = 1 these are held to 4 resident blocks per SM (at
// most 64 registers): left alone, the glu variant took 80 registers, so 3 blocks per SM, and streamed gate_up's
// weights at 3.5 TB/s against the plain kernel's 4.2. At M = 2 and 4 a bound would spill.
// One-row steps take fewer loads per thread in more resident blocks, the fastest of the GEMV sweep (calls 47, 48):
// _l4 (4 loads, 6 blocks per SM) for qkv, gate_up and lm_head; _l2 (2 loads, 8 blocks per SM, 4 rows) for o and down.
#define RETINA_GEMV(M, ROWS, GLU, U, BOUNDS, NAME)                                                                     \
    extern "C" __global__ void BOUNDS gemv_m##M##_##NAME(                                                            \
        __half* y, const __half* x, const __half* W, int N, int K, int accumulate) {                                 \
        gemv<M, ROWS, GLU, U>(y, x, W, N, K, accumulate);                                                            \
    }

RETINA_GEMV(1, 4, false, 8, __launch_bounds__(kGemvThreads, 4), plain)
RETINA_GEMV(1, 8, false, 8, __launch_bounds__(kGemvThreads, 4), plain_r8)
RETINA_GEMV(1, 4, true, 8, __launch_bounds__(kGemvThreads, 4), glu)
RETINA_GEMV(1, 4, false, 4, __launch_bounds__(kGemvThreads, 6), plain_l4)
RETINA_GEMV(1, 4, true, 4, __launch_bounds__(kGemvThreads, 6), glu_l4)
RETINA_GEMV(1, 4, false, 2, __launch_bounds__(kGemvThreads, 8), plain_l2)
RETINA_GEMV(2, 4, false, 8, __launch_bounds__(kGemvThreads), plain)
RETINA_GEMV(2, 8, false, 8, __launch_bounds__(kGemvThreads), plain_r8)
RETINA_GEMV(2, 4, true, 8, __launch_bounds__(kGemvThreads), glu)
RETINA_GEMV(4, 4, false, 8, __launch_bounds__(kGemvThreads), plain)
RETINA_GEMV(4, 8, false, 8, __launch_bounds__(kGemvThreads), plain_r8)
RETINA_GEMV(4, 4, true, 8, __launch_bounds__(kGemvThreads), glu)

// ---- The direct vision tower (DirectVision.java): CLIP's pre-norm encoder layers around cuBLAS GEMMs. ----
// Biases enter a GEMM by starting its output at the bias and accumulating with beta = 1 (fp32 sum, one rounding,
// as torch's addmm); the kernels below write those starting rows next to their own work.


// One row per block: r = x (+ y), rounded to fp16 as torch's add, written to resid (may alias x; y may be null);
// with norm_out non-null, LayerNorm(r) = (r - mean) * rstd * w + b in fp32 (two passes over the row for mean and
// variance, biased, as torch's layer_norm) rounded once into norm_out. fill_a / fill_b (non-null) get this row's
// copy of bias_a (n_a values) / bias_b (n_b values): the start of the next GEMMs' outputs.
//   x, y, resid, norm_out: (rows, hidden) fp16 contiguous; w, b: (hidden) fp16
extern "C" __global__ void add_layer_norm(__half* resid, const __half* x, const __half* y, __half* norm_out,
                                          const __half* w, const __half* b, __half* fill_a, const __half* bias_a,
                                          int n_a, __half* fill_b, const __half* bias_b, int n_b, int hidden,
                                          float eps) {
    __shared__ float partial[32];
    const long long row = blockIdx.x;
    const __half* xr = x + row * hidden;
    __half* rr = resid + row * hidden;
    float sum = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const __half r = y != nullptr ? __float2half_rn(__half2float(xr[i]) + __half2float(y[row * hidden + i])) : xr[i];
        rr[i] = r;  // read back below by this same thread only
        sum += __half2float(r);
    }
    if (fill_a != nullptr)
        for (int i = threadIdx.x; i < n_a; i += blockDim.x) fill_a[row * n_a + i] = bias_a[i];
    if (fill_b != nullptr)
        for (int i = threadIdx.x; i < n_b; i += blockDim.x) fill_b[row * n_b + i] = bias_b[i];
    if (norm_out == nullptr) return;
    const float mean = block_sum(sum, partial) / (float)hidden;
    float sq = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const float c = __half2float(rr[i]) - mean;
        sq += c * c;
    }
    const float rstd = rsqrtf(block_sum(sq, partial) / (float)hidden + eps);
    __half* out = norm_out + row * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        out[i] = __float2half_rn(__half2float(w[i]) * (rstd * (__half2float(rr[i]) - mean)) + __half2float(b[i]));
}

// The MLP activation in place over x (total values), then fill (fill_total values) with bias repeated every n_fill
// (the start of the fc2 GEMM's output). act 0: HF quick_gelu, x * sigmoid(1.702 x) rounded after each op as torch's
// fp16 ops round; act 1: exact (erf) GELU in fp32, rounded once.
extern "C" __global__ void act_fill(__half* x, long long total, int act, __half* fill, const __half* bias, int n_fill,
                                    long long fill_total) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += stride) {
        const float v = __half2float(x[i]);
        float r;
        if (act == 0) {
            const float a = __half2float(__float2half_rn(v * 1.702f));
            const float s = __half2float(__float2half_rn(1.f / (1.f + expf(-a))));
            r = v * s;
        } else {
            r = v * 0.5f * (1.f + erff(v * 0.70710678118654752f));
        }
        x[i] = __float2half_rn(r);
    }
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < fill_total; i += stride)
        fill[i] = bias[i % n_fill];
}

// The patch-embedding convolution's input (stride = kernel = patch, no padding) as GEMM rows: row (image, gy, gx),
// column (c, ky, kx) as the conv weight flattens, zero from C*patch*patch up to k_pad. Pixels are rounded to fp16 once,
// as torch's .to(float16) rounds them before HF's conv. pixels: (images, C, grid*patch, grid*patch), fp32 when f32 is
// non-zero, else fp16. out: (images * grid * grid, k_pad) fp16.
extern "C" __global__ void patch_rows(__half* __restrict__ out, const void* __restrict__ pixels, int f32, int channels,
                                      int patch, int grid, int k_pad, long long total) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    const int side = grid * patch;
    const int pp = patch * patch;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += stride) {
        const long long row = i / k_pad;
        const int col = (int)(i - row * k_pad);
        __half v = __float2half_rn(0.f);
        if (col < channels * pp) {
            const int c = col / pp;
            const int ky = (col - c * pp) / patch;
            const int kx = col - c * pp - ky * patch;
            const long long image = row / (grid * grid);
            const int cell = (int)(row - image * grid * grid);
            const int gy = cell / grid;
            const int gx = cell - gy * grid;
            const long long at = ((image * channels + c) * side + (long long)gy * patch + ky) * side + gx * patch + kx;
            v = f32 ? __float2half_rn(static_cast<const float*>(pixels)[at]) : static_cast<const __half*>(pixels)[at];
        }
        out[i] = v;
    }
}

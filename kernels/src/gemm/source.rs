//! The CUDA C++ of the TF32 matmul: one kernel per tiling and operand layout.
//!
//! A cube computes a `bm x bn` tile of `C = A B` over its part of K, in `BK`-deep stages that
//! `cp.async` brings into shared memory `stages - 1` ahead of the one being multiplied. Its
//! warps (`wm x wn`) each hold a `bm/wm x bn/wn` part of the tile in registers as
//! `mma.sync.m16n8k8` TF32 accumulators (f32). Shared memory keeps each operand in its global
//! layout (the contiguous dimension inner, so every load is 16 bytes). Within each 8-deep
//! MMA step a thread takes k = 2t and 2t + 1 (t = lane % 4) where PTX numbers them t and
//! t + 4: the sum over k is the same, and an operand whose k is contiguous then reads its two
//! values as one 8-byte load. Rows are padded by 4 floats, which puts a warp's fragment reads
//! on 32 different banks in both layouts.
use super::{Layout, Tiling};

/// Depth of a stage (floats of K).
pub const BK: u32 = 32;

/// The 32-bit scalars the kernel reads from its `info` parameter, in order: the last two
/// place the bias of batch `batch`, column `c` at `bias[batch * bias_batch + c * bias_col]`.
pub const SCALARS: [&str; 11] = ["m", "n", "k", "batches", "k_chunk", "lda", "ldb", "a_batch", "b_batch", "bias_batch", "bias_col"];

/// The length (floats) of a shared memory row holding `inner` contiguous floats: 4 more, so
/// that rows start 4 banks apart.
fn padded(inner: u32) -> u32 {
    inner + 4
}

/// Bytes of shared memory the kernel of `tiling` takes.
pub fn shared_bytes(tiling: Tiling, layout: Layout) -> u32 {
    let a = if layout.a_k_contiguous { tiling.bm * padded(BK) } else { BK * padded(tiling.bm) };
    let b = if layout.b_n_contiguous { BK * padded(tiling.bn) } else { tiling.bn * padded(BK) };
    4 * tiling.stages * (a + b)
}

/// The kernel's entry point name.
pub fn entry_point(tiling: Tiling, layout: Layout, bias: bool) -> String {
    let Tiling { bm, bn, wm, wn, stages } = tiling;
    let a = if layout.a_k_contiguous { "ak" } else { "am" };
    let b = if layout.b_n_contiguous { "bn" } else { "bk" };
    let plus = if bias { "_bias" } else { "" };
    format!("icl_gemm_{bm}x{bn}_w{wm}x{wn}_s{stages}_{a}_{b}{plus}")
}

/// The kernel's CUDA C++: `buffer_0` A, `buffer_1` B, `buffer_2` C, with `bias` `buffer_3`
/// the bias, then the `info` scalars ([`SCALARS`]). A `[batches, m, k]`, B `[batches, k, n]`
/// by their strides (the contiguous dimension as `layout` says, `lda`/`ldb` the other,
/// `a_batch`/`b_batch` between batches), C `[splits, batches, m, n]` dense; grid (n tiles,
/// m tiles, batches x splits). The bias goes into the first split's part only, so the parts
/// still sum to `A B + bias`.
pub fn cuda(tiling: Tiling, layout: Layout, bias: bool) -> String {
    let Tiling { bm, bn, wm, wn, stages } = tiling;
    let name = entry_point(tiling, layout, bias);
    let (a_k, b_n) = (u32::from(layout.a_k_contiguous), u32::from(layout.b_n_contiguous));
    let bias_param = if bias { ", const float* __restrict__ buffer_3" } else { "" };
    // This thread's bias of MMA tile j's two columns (left at zero past n, and in every split
    // but the first, whose part of the sum alone takes it).
    let load_bias = if bias {
        r#"        const uint32 c = n0 + warp_n * WTN + j * 8 + 2 * t;
        const float* bias = buffer_3 + (uint64)batch * bias_batch;
        if (split == 0 && c < n) bias0[j] = bias[(uint64)c * bias_col];
        if (split == 0 && c + 1 < n) bias1[j] = bias[(uint64)(c + 1) * bias_col];
"#
    } else {
        ""
    };
    let prelude = crate::source_kernel::prelude(SCALARS.len());
    let reads = crate::source_kernel::read_scalars(&SCALARS);
    format!(
        r#"{prelude}
#ifndef ICL_LAB_EMULATED
// Round to TF32 (nearest, ties away), as the tensor cores read it.
__device__ __forceinline__ uint32 icl_tf32(float x) {{
    // Half a TF32 unit added below the 13 bits the tensor cores ignore: nearest, ties away
    // (as cvt.rna, which sm_90 spends three instructions on; infinities stay infinite).
    return __float_as_uint(x) + 0x1000u;
}}
// c += a b for one warp: a 16x8 (row), b 8x8 (column), c 16x8, TF32 in, f32 accumulators.
__device__ __forceinline__ void icl_mma(float* c, const uint32* a, const uint32* b) {{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {{%0,%1,%2,%3}}, {{%4,%5,%6,%7}}, {{%8,%9}}, {{%0,%1,%2,%3}};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}}
// 16 bytes global -> shared without registers; zeros where `valid` is false.
__device__ __forceinline__ void icl_cp_async16(float* dst, const float* src, bool valid) {{
    uint32 s;
    asm volatile("{{ .reg .u64 p; cvta.to.shared.u64 p, %1; cvt.u32.u64 %0, p; }}" : "=r"(s) : "l"(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(valid ? 16 : 0));
}}
__device__ __forceinline__ void icl_cp_async_commit() {{ asm volatile("cp.async.commit_group;"); }}
template <int N>
__device__ __forceinline__ void icl_cp_async_wait() {{ asm volatile("cp.async.wait_group %0;" ::"n"(N)); }}
#endif

#define BM {bm}
#define BN {bn}
#define BK {BK}
#define WM {wm}
#define WN {wn}
#define STAGES {stages}
#define THREADS (WM * WN * 32)
#define A_K_CONTIGUOUS {a_k}
#define B_N_CONTIGUOUS {b_n}
#define WTM (BM / WM)
#define WTN (BN / WN)
#define MT (WTM / 16)
#define NT (WTN / 8)
#if A_K_CONTIGUOUS
#define A_OUTER BM
#define A_INNER BK
#define A_LD (BK + 4)
#define A_DM A_LD
#define A_DK 1
#else
#define A_OUTER BK
#define A_INNER BM
#define A_LD (BM + 4)
#define A_DM 1
#define A_DK A_LD
#endif
#if B_N_CONTIGUOUS
#define B_OUTER BK
#define B_INNER BN
#define B_LD (BN + 4)
#define B_DK B_LD
#define B_DN 1
#else
#define B_OUTER BN
#define B_INNER BK
#define B_LD (BK + 4)
#define B_DK 1
#define B_DN B_LD
#endif
// Stage rows one pass of the cube's copies fills, and copies a thread makes per stage.
#define A_ROWS (THREADS / (A_INNER / 4))
#define B_ROWS (THREADS / (B_INNER / 4))
#define A_COPIES (A_OUTER / A_ROWS)
#define B_COPIES (B_OUTER / B_ROWS)
#define A_STAGE (A_OUTER * A_LD)
#define B_STAGE (B_OUTER * B_LD)

struct __align__(8) icl_float2 {{
    float x, y;
}};

// Two neighbouring outputs of row r, columns c and c + 1.
__device__ __forceinline__ void icl_store2(float* C, uint32 m, uint32 n, uint32 r, uint32 c, float v0, float v1) {{
    if (r >= m) return;
    float* p = C + (uint64)r * n + c;
    if (c + 1 < n && n % 2 == 0) {{
        icl_float2 v;
        v.x = v0;
        v.y = v1;
        *reinterpret_cast<icl_float2*>(p) = v;
    }} else {{
        if (c < n) p[0] = v0;
        if (c + 1 < n) p[1] = v1;
    }}
}}

extern "C" __global__ void __launch_bounds__(THREADS) {name} (const float* __restrict__ buffer_0, const float* __restrict__ buffer_1, float* __restrict__ buffer_2{bias_param}, const __grid_constant__ info_st info) {{
extern __shared__ __align__(16) uint8 dynamic_shared_mem[];
{reads}    float* As = reinterpret_cast<float*>(dynamic_shared_mem);
    float* Bs = As + STAGES * A_STAGE;
    // Signed ints for offsets: the compiler may then fold constants into addresses.
    const int tid = threadIdx.x;
    const int warp = tid / 32, lane = tid % 32;
    const int warp_m = warp / WN, warp_n = warp % WN;
    const int g = lane / 4, t = lane % 4;
    const uint32 batch = blockIdx.z % batches, split = blockIdx.z / batches;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int k_begin = split * k_chunk;
    const int k_end = k_begin + (int)k_chunk < (int)k ? k_begin + (int)k_chunk : (int)k;
    const int k_tiles = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;
    const float* A = buffer_0 + (uint64)batch * a_batch;
    const float* B = buffer_1 + (uint64)batch * b_batch;
    float* C = buffer_2 + ((uint64)split * batches + batch) * m * n;

    // This thread's copies: copy i fills row `outer0 + i * ROWS` of a stage, floats `inner`
    // to `inner + 3` of it (every copy of a thread in the same column).
    const int a_outer0 = tid / (A_INNER / 4), a_inner = tid % (A_INNER / 4) * 4;
    const int b_outer0 = tid / (B_INNER / 4), b_inner = tid % (B_INNER / 4) * 4;
#if A_K_CONTIGUOUS
    // Rows of A are m: fixed per copy; columns are k: move with the tile.
    const float* a_src = A + (uint64)(m0 + a_outer0) * lda + k_begin + a_inner;
    const int a_row_step = A_ROWS * lda, a_tile_step = BK;
    const int a_fixed = (int)m - m0 - a_outer0, a_moving = k_end - k_begin - a_inner;
#else
    const float* a_src = A + (uint64)(k_begin + a_outer0) * lda + m0 + a_inner;
    const int a_row_step = A_ROWS * lda, a_tile_step = BK * lda;
    const int a_fixed = (int)m - m0 - a_inner, a_moving = k_end - k_begin - a_outer0;
#endif
#if B_N_CONTIGUOUS
    const float* b_src = B + (uint64)(k_begin + b_outer0) * ldb + n0 + b_inner;
    const int b_row_step = B_ROWS * ldb, b_tile_step = BK * ldb;
    const int b_fixed = (int)n - n0 - b_inner, b_moving = k_end - k_begin - b_outer0;
#else
    const float* b_src = B + (uint64)(n0 + b_outer0) * ldb + k_begin + b_inner;
    const int b_row_step = B_ROWS * ldb, b_tile_step = BK;
    const int b_fixed = (int)n - n0 - b_outer0, b_moving = k_end - k_begin - b_inner;
#endif
    const int a_dst = a_outer0 * A_LD + a_inner, b_dst = b_outer0 * B_LD + b_inner;

    // Stage `stage` <- K tile `kt` of A and B, 16 bytes a copy, zeros past the edges.
    auto load = [&](int stage, int kt) {{
        const int dk = kt * BK;
        float* as = As + stage * A_STAGE + a_dst;
        float* bs = Bs + stage * B_STAGE + b_dst;
        const float* a_tile = a_src + (long long)kt * a_tile_step;
        const float* b_tile = b_src + (long long)kt * b_tile_step;
#pragma unroll
        for (int i = 0; i < A_COPIES; ++i) {{
#if A_K_CONTIGUOUS
            const bool ok = i * A_ROWS < a_fixed && dk < a_moving;
#else
            const bool ok = 0 < a_fixed && dk + i * A_ROWS < a_moving;
#endif
            icl_cp_async16(as + i * A_ROWS * A_LD, ok ? a_tile + (long long)i * a_row_step : A, ok);
        }}
#pragma unroll
        for (int i = 0; i < B_COPIES; ++i) {{
#if B_N_CONTIGUOUS
            const bool ok = 0 < b_fixed && dk + i * B_ROWS < b_moving;
#else
            const bool ok = i * B_ROWS < b_fixed && dk < b_moving;
#endif
            icl_cp_async16(bs + i * B_ROWS * B_LD, ok ? b_tile + (long long)i * b_row_step : B, ok);
        }}
    }};

    // This thread's fragments within a stage: A at (row r of MMA tile i, k = 2t), B at
    // (k = 2t, column g of MMA tile j); the other elements are constant offsets from these.
    int a_frag[MT], b_frag[NT];
#pragma unroll
    for (int i = 0; i < MT; ++i) a_frag[i] = (warp_m * WTM + i * 16 + g) * A_DM + 2 * t * A_DK;
#pragma unroll
    for (int j = 0; j < NT; ++j) b_frag[j] = (warp_n * WTN + j * 8 + g) * B_DN + 2 * t * B_DK;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

#pragma unroll
    for (int s = 0; s + 1 < STAGES; ++s) {{
        if (s < k_tiles) load(s, s);
        icl_cp_async_commit();
    }}
    int stage = 0;
    for (int kt = 0; kt < k_tiles; ++kt) {{
        // Tile kt has landed, and every warp is done with the stage the next load overwrites.
        icl_cp_async_wait<STAGES - 2>();
        __syncthreads();
        const int next = kt + STAGES - 1;
        if (next < k_tiles) load(stage == 0 ? STAGES - 1 : stage - 1, next);
        icl_cp_async_commit();
        const float* as = As + stage * A_STAGE;
        const float* bs = Bs + stage * B_STAGE;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {{
            uint32 af[MT][4], bf[NT][2];
#pragma unroll
            for (int i = 0; i < MT; ++i) {{
                const float* p = as + a_frag[i] + kk * A_DK;
                // a0 (r, 2t), a1 (r + 8, 2t), a2 (r, 2t + 1), a3 (r + 8, 2t + 1).
#if A_K_CONTIGUOUS
                const icl_float2 lo = *reinterpret_cast<const icl_float2*>(p), hi = *reinterpret_cast<const icl_float2*>(p + 8 * A_DM);
                af[i][0] = icl_tf32(lo.x);
                af[i][1] = icl_tf32(hi.x);
                af[i][2] = icl_tf32(lo.y);
                af[i][3] = icl_tf32(hi.y);
#else
                af[i][0] = icl_tf32(p[0]);
                af[i][1] = icl_tf32(p[8 * A_DM]);
                af[i][2] = icl_tf32(p[A_DK]);
                af[i][3] = icl_tf32(p[8 * A_DM + A_DK]);
#endif
            }}
#pragma unroll
            for (int j = 0; j < NT; ++j) {{
                const float* p = bs + b_frag[j] + kk * B_DK;
                // b0 (2t, c), b1 (2t + 1, c).
#if B_N_CONTIGUOUS
                bf[j][0] = icl_tf32(p[0]);
                bf[j][1] = icl_tf32(p[B_DK]);
#else
                const icl_float2 v = *reinterpret_cast<const icl_float2*>(p);
                bf[j][0] = icl_tf32(v.x);
                bf[j][1] = icl_tf32(v.y);
#endif
            }}
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j) icl_mma(acc[i][j], af[i], bf[j]);
        }}
        stage = stage + 1 == STAGES ? 0 : stage + 1;
    }}
    icl_cp_async_wait<0>();

    float bias0[NT], bias1[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) {{
        bias0[j] = 0.0f;
        bias1[j] = 0.0f;
{load_bias}    }}
#pragma unroll
    for (int i = 0; i < MT; ++i) {{
        const uint32 r = m0 + warp_m * WTM + i * 16 + g;
#pragma unroll
        for (int j = 0; j < NT; ++j) {{
            const uint32 c = n0 + warp_n * WTN + j * 8 + 2 * t;
            icl_store2(C, m, n, r, c, acc[i][j][0] + bias0[j], acc[i][j][1] + bias1[j]);
            icl_store2(C, m, n, r + 8, c, acc[i][j][2] + bias0[j], acc[i][j][3] + bias1[j]);
        }}
    }}
}}
"#
    )
}

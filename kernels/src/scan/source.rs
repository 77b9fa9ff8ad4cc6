//! The per-channel scan ([`super::Layout::PerChannel`]) in CUDA C++ of our own, for the CUDA
//! runtime (and the emulator); [`super::kernel`] is the same computation in CubeCL's
//! language, which other runtimes and the N this source does not take run.
//!
//! Why a source of our own: what CubeCL emits for the same loops spends most of a state-step
//! on overhead (docs/performance.md, session 22). Here `exp(Δ·A)` is one `ex2.approx.ftz` of
//! `Δ·(A·log₂e)` (CubeCL's `__expf` is six instructions: a multiply by log₂e and a guard for
//! results below 2⁻¹²⁶, which flushing to zero makes moot: such a decay is 0 in the sum
//! anyway), each step's inputs are loaded one step ahead (loops unrolled by two, the two
//! steps' registers alternating), and the backward recomputes `h_t` from `h_{t-1}` (one
//! fused multiply-add) where the CubeCL kernel kept it.
//!
//! The layouts, the chunks of saved states and the warp sums of ∂B, ∂C are those of
//! [`super::kernel`]: the two kernels' saved states and partial sums are interchangeable.
//! `ex2.approx.ftz` has a relative error below 2⁻²²; with the rounding of `A·log₂e` and
//! `Δ·A·log₂e` the decay is within ~1e-5 relative for |Δ·A| < 100, as `__expf` is.

use super::kernel::{scattered_layout, WARP};
use crate::source_kernel::CudaSource;

/// One compiled form of the per-channel kernels: forward or backward, N state entries, the
/// chunk of steps between saved states, threads a cube.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanSource {
    pub backward: bool,
    /// The forward writes the states entering each chunk (for a backward to come).
    pub save: bool,
    pub n: u32,
    pub chunk: u32,
    pub block: u32,
}

/// The scalars both kernels read from `info`, in order.
pub const SCALARS: [&str; 4] = ["batch", "members", "len", "width"];

impl ScanSource {
    /// Whether this source takes a scan with `n` state entries: whole 16-byte rows of B and C,
    /// and at most 32 entries (registers).
    pub fn takes(n: usize) -> bool {
        n.is_multiple_of(4) && (4..=32).contains(&n)
    }

    pub fn entry_point(self) -> String {
        let ScanSource { backward, save, n, chunk, block } = self;
        let what = if backward { "backward" } else if save { "forward_save" } else { "forward" };
        format!("icl_scan_{what}_n{n}_c{chunk}_b{block}")
    }

    /// Floats of shared memory a cube: the backward's chunk of states, `chunk·n` a thread.
    pub fn shared_floats(self) -> usize {
        if self.backward {
            (self.chunk * self.n * self.block) as usize
        } else {
            0
        }
    }

    /// The kernel's CUDA C++. Forward buffers: x, Δ, A, B, C, D, y, states. Backward: x, Δ,
    /// A, B, C, D, states, ∂y, ∂x, ∂Δ, ∂A partial, ∂B partial, ∂C partial, ∂D partial (as
    /// [`super::kernel`] lays them out). Grid (⌈e / block⌉, b).
    pub fn cuda(self) -> String {
        let ScanSource { n, chunk, block, .. } = self;
        let name = self.entry_point();
        let scalars = SCALARS.len();
        let reads: String = SCALARS.iter().enumerate().map(|(i, s)| format!("    const uint32 {s} = info.scalars_uint32[{i}];\n")).collect();
        let body = if self.backward { backward_body(n) } else { forward_body(self.save) };
        let params = if self.backward {
            "const float* __restrict__ buffer_0, const float* __restrict__ buffer_1, const float* __restrict__ buffer_2, \
             const float* __restrict__ buffer_3, const float* __restrict__ buffer_4, const float* __restrict__ buffer_5, \
             const float* __restrict__ buffer_6, const float* __restrict__ buffer_7, float* __restrict__ buffer_8, \
             float* __restrict__ buffer_9, float* __restrict__ buffer_10, float* __restrict__ buffer_11, \
             float* __restrict__ buffer_12, float* __restrict__ buffer_13"
        } else {
            "const float* __restrict__ buffer_0, const float* __restrict__ buffer_1, const float* __restrict__ buffer_2, \
             const float* __restrict__ buffer_3, const float* __restrict__ buffer_4, const float* __restrict__ buffer_5, \
             float* __restrict__ buffer_6, float* __restrict__ buffer_7"
        };
        let halve = if self.backward { HALVE } else { "" };
        format!(
            r#"typedef unsigned int uint32;
typedef unsigned long long int uint64;
typedef unsigned char uint8;

struct info_st {{
    uint32 scalars_uint32[{scalars}];
}};

#ifndef ICL_LAB_EMULATED
// 2^x, subnormal results flushed to zero: one MUFU instruction.
__device__ __forceinline__ float icl_ex2(float x) {{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}}
#endif

#define N {n}
#define CHUNK {chunk}
#define BLOCK {block}
#define LOG2E 1.4426950408889634f

struct __align__(16) icl_float4 {{
    float x, y, z, w;
}};

// Row `row` of a [.., N] tensor into out[0..N], 16 bytes a load.
__device__ __forceinline__ void icl_row(const float* __restrict__ base, uint64 row, float* out) {{
    const icl_float4* p = reinterpret_cast<const icl_float4*>(base + row * N);
#pragma unroll
    for (int q = 0; q < N / 4; ++q) {{
        const icl_float4 v = p[q];
        out[4 * q] = v.x;
        out[4 * q + 1] = v.y;
        out[4 * q + 2] = v.z;
        out[4 * q + 3] = v.w;
    }}
}}
{halve}
extern "C" __global__ void __launch_bounds__(BLOCK) {name} ({params}, const __grid_constant__ info_st info) {{
{reads}{body}}}
"#
        )
    }
}

impl CudaSource for ScanSource {
    const NAME: &'static str = "icl_lab_kernels::scan";

    fn entry_point(&self) -> String {
        ScanSource::entry_point(*self)
    }

    fn cuda(&self) -> String {
        ScanSource::cuda(*self)
    }

    fn threads(&self) -> u32 {
        self.block
    }

    fn shared_floats(&self) -> usize {
        ScanSource::shared_floats(*self)
    }
}

/// The forward: thread (b, e) runs over time with its N entries of h in registers.
fn forward_body(save: bool) -> String {
    let save = u32::from(save);
    format!(
        r#"    const uint32 ei = blockIdx.x * BLOCK + threadIdx.x, bi = blockIdx.y;
    if (ei >= width) return;
    // A stacked scan's batch rows are its members' in order; member m's A and D are rows
    // m·e .. (m+1)·e.
    const uint32 member = bi / (batch / members);
    float a2[N], h[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {{
        a2[j] = buffer_2[((uint64)member * width + ei) * N + j] * LOG2E;
        h[j] = 0.0f;
    }}
    const float skip = buffer_5[(uint64)member * width + ei];
    const uint64 first = (uint64)bi * len * width + ei;
    const float* xs = buffer_0 + first;
    const float* ds = buffer_1 + first;
    float* ys = buffer_6 + first;
    const uint64 rows = (uint64)bi * len;
    // States: [chunks, N, b, e]; the state entering chunk c at (c·N + j)·plane + b·e + ei.
    const uint64 plane = (uint64)batch * width;
    float* saved = buffer_7 + (uint64)bi * width + ei;

    // One step: h ← exp(Δ A) h + Δ x B; y = C·h + D x.
    auto step = [&](uint32 t, float xv, float dt, const float* bv, const float* cv) {{
        if ({save} && t % CHUNK == 0) {{
            float* s = saved + (uint64)(t / CHUNK) * N * plane;
#pragma unroll
            for (int j = 0; j < N; ++j) s[j * plane] = h[j];
        }}
        const float input = dt * xv;
        float out0 = skip * xv, out1 = 0.0f;
#pragma unroll
        for (int j = 0; j < N; ++j) {{
            h[j] = fmaf(icl_ex2(dt * a2[j]), h[j], input * bv[j]);
            if (j % 2 == 0) out0 = fmaf(cv[j], h[j], out0); else out1 = fmaf(cv[j], h[j], out1);
        }}
        ys[(uint64)t * width] = out0 + out1;
    }};

    // Two steps' inputs in turn: step t's loads are issued before step t - 1 runs.
    float x0, d0, b0[N], c0[N], x1, d1, b1[N], c1[N];
    x0 = xs[0];
    d0 = ds[0];
    icl_row(buffer_3, rows, b0);
    icl_row(buffer_4, rows, c0);
    uint32 t = 0;
    for (; t + 1 < len; t += 2) {{
        const uint64 o1 = (uint64)(t + 1) * width;
        x1 = xs[o1];
        d1 = ds[o1];
        icl_row(buffer_3, rows + t + 1, b1);
        icl_row(buffer_4, rows + t + 1, c1);
        step(t, x0, d0, b0, c0);
        if (t + 2 < len) {{
            const uint64 o2 = (uint64)(t + 2) * width;
            x0 = xs[o2];
            d0 = ds[o2];
            icl_row(buffer_3, rows + t + 2, b0);
            icl_row(buffer_4, rows + t + 2, c0);
        }}
        step(t + 1, x1, d1, b1, c1);
    }}
    if (t < len) step(t, x0, d0, b0, c0);
"#
    )
}

/// The backward: thread (b, e) walks the chunks last to first; in each it recomputes the
/// chunk's states from the saved one into its shared-memory slots, then runs the adjoint
/// recurrence `g_t = C_t ∂y_t + exp(Δ_{t+1} A) g_{t+1}` back through the chunk.
fn backward_body(n: u32) -> String {
    let p = (2 * n as usize).next_power_of_two();
    let (per_lane, shift) = scattered_layout(p);
    // The warp's reduce-scatter of p values: at offset 16, 8, .. 1, count p, p/2, .. (≥ 1).
    let stages: String = (0..5)
        .map(|k| {
            let count = (p >> k).max(1);
            format!("        icl_halve<{count}, {offset}>(v, lane);\n", offset = 16 >> k)
        })
        .collect();
    format!(
        r#"    const uint32 own = blockIdx.x * BLOCK + threadIdx.x, bi = blockIdx.y;
    const uint32 member = bi / (batch / members);
    const uint32 warps = (width + {WARP} - 1) / {WARP}, warp = own / {WARP};
    // A warp with no channel at all leaves as a whole, so no warp sum misses a lane.
    if (warp >= warps) return;
    // Lanes past the last channel in the last warp run channel e - 1's inputs with ∂y = 0:
    // what they add to the sums is 0, and they write nothing else.
    const bool active = own < width;
    const uint32 ei = active ? own : width - 1;
    const uint32 lane = threadIdx.x % {WARP};
    extern __shared__ __align__(16) uint8 dynamic_shared_mem[];
    // Slot s of this thread: float4 q at (s·N/4 + q)·BLOCK + threadIdx.x (a warp's 32 lanes on
    // 32 consecutive vectors).
    icl_float4* slots = reinterpret_cast<icl_float4*>(dynamic_shared_mem) + threadIdx.x;
    auto store_slot = [&](int s, const float* v) {{
#pragma unroll
        for (int q = 0; q < N / 4; ++q) {{
            icl_float4 w;
            w.x = v[4 * q];
            w.y = v[4 * q + 1];
            w.z = v[4 * q + 2];
            w.w = v[4 * q + 3];
            slots[(s * (N / 4) + q) * BLOCK] = w;
        }}
    }};
    auto load_slot = [&](int s, float* v) {{
#pragma unroll
        for (int q = 0; q < N / 4; ++q) {{
            const icl_float4 w = slots[(s * (N / 4) + q) * BLOCK];
            v[4 * q] = w.x;
            v[4 * q + 1] = w.y;
            v[4 * q + 2] = w.z;
            v[4 * q + 3] = w.w;
        }}
    }};

    float a2[N], carry[N], da[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {{
        a2[j] = buffer_2[((uint64)member * width + ei) * N + j] * LOG2E;
        carry[j] = 0.0f;  // exp(Δ_(t+1) A) g_(t+1)
        da[j] = 0.0f;
    }}
    const float skip = buffer_5[(uint64)member * width + ei];
    float dd = 0.0f;
    const uint64 plane = (uint64)batch * width;
    const uint64 me = (uint64)bi * width + ei;
    const uint64 rows = (uint64)bi * len;
    const float* xs = buffer_0 + rows * width + ei;
    const float* ds = buffer_1 + rows * width + ei;
    const float* gys = buffer_7 + rows * width + ei;
    float* dxs = buffer_8 + rows * width + ei;
    float* dds = buffer_9 + rows * width + ei;
    const bool writes_sums = (lane & {low}u) == 0;
    const uint32 first_index = (lane >> {shift}) * {per_lane};

    // Recompute: the state entering step t into slot s, h becomes the state after it.
    float h[N];
    auto forward = [&](int s, uint32 t, float xv, float dt, const float* bv) {{
        store_slot(s, h);
        const float input = dt * xv;
#pragma unroll
        for (int j = 0; j < N; ++j) h[j] = fmaf(icl_ex2(dt * a2[j]), h[j], input * bv[j]);
    }};
    // The adjoint at step t (slot s): ∂x, ∂Δ, this step's ∂B and ∂C summed over the warp,
    // ∂A and ∂D accumulated.
    auto adjoint = [&](int s, uint32 t, float xv, float dt, float gy, const float* bv, const float* cv) {{
        float hp[N], v[{p}];
        load_slot(s, hp);
        const float dtx = dt * xv;
        float gxs = 0.0f, gda = 0.0f;
        dd = fmaf(gy, xv, dd);
#pragma unroll
        for (int j = 0; j < N; ++j) {{
            const float decay = icl_ex2(dt * a2[j]);
            const float g = fmaf(gy, cv[j], carry[j]);
            const float dhp = decay * hp[j];
            const float gh = g * dhp;
            gda = fmaf(gh, a2[j], gda);
            da[j] = fmaf(dt, gh, da[j]);
            gxs = fmaf(g, bv[j], gxs);
            carry[j] = g * decay;
            v[j] = g * dtx;                       // ∂B_t[j] from this channel
            v[N + j] = gy * fmaf(dtx, bv[j], dhp);  // ∂C_t[j]: ∂y_t h_t[j]
        }}
#pragma unroll
        for (int q = 2 * N; q < {p}; ++q) v[q] = 0.0f;
{stages}        const uint64 base = ((rows + t) * warps + warp) * N;
#pragma unroll
        for (int i = 0; i < {per_lane}; ++i) {{
            const uint32 idx = first_index + i;
            if (writes_sums) {{
                if (idx < N) buffer_11[base + idx] = v[i];
                else if (idx < 2 * N) buffer_12[base + idx - N] = v[i];
            }}
        }}
        if (active) {{
            dxs[(uint64)t * width] = fmaf(gxs, dt, skip * gy);
            // ∂Δ = Σ_j g_j (B_j x + A_j exp(Δ A_j) h_(t-1),j); the A·log₂e sum times ln 2.
            dds[(uint64)t * width] = fmaf(gxs, xv, gda * 0.6931471805599453f);
        }}
    }};

    const uint32 chunks = (len + CHUNK - 1) / CHUNK;
    float x0, d0, g0, b0[N], c0[N], x1, d1, g1, b1[N], c1[N];
    for (uint32 ci = chunks; ci-- > 0;) {{
        const uint32 t0 = ci * CHUNK;
        const int steps = (int)(t0 + CHUNK < len ? CHUNK : len - t0);
        const float* start = buffer_6 + (uint64)ci * N * plane + me;
#pragma unroll
        for (int j = 0; j < N; ++j) h[j] = start[j * plane];

        // Forward through the chunk, step s + 1's inputs loaded before step s runs.
        x0 = xs[(uint64)t0 * width];
        d0 = ds[(uint64)t0 * width];
        icl_row(buffer_3, rows + t0, b0);
        int s = 0;
        for (; s + 1 < steps; s += 2) {{
            const uint32 t = t0 + s;
            x1 = xs[(uint64)(t + 1) * width];
            d1 = ds[(uint64)(t + 1) * width];
            icl_row(buffer_3, rows + t + 1, b1);
            forward(s, t, x0, d0, b0);
            if (s + 2 < steps) {{
                x0 = xs[(uint64)(t + 2) * width];
                d0 = ds[(uint64)(t + 2) * width];
                icl_row(buffer_3, rows + t + 2, b0);
            }}
            forward(s + 1, t + 1, x1, d1, b1);
        }}
        if (s < steps) forward(s, t0 + s, x0, d0, b0);

        // Back through the chunk: h is no longer needed (the adjoint rebuilds h_t from the
        // slot's h_(t-1)).
        auto inputs = [&](uint32 t, float& xv, float& dt, float& gy, float* bv, float* cv) {{
            const uint64 o = (uint64)t * width;
            xv = xs[o];
            dt = ds[o];
            gy = active ? gys[o] : 0.0f;
            icl_row(buffer_3, rows + t, bv);
            icl_row(buffer_4, rows + t, cv);
        }};
        s = steps - 1;
        inputs(t0 + s, x0, d0, g0, b0, c0);
        for (; s >= 1; s -= 2) {{
            inputs(t0 + s - 1, x1, d1, g1, b1, c1);
            adjoint(s, t0 + s, x0, d0, g0, b0, c0);
            if (s >= 2) inputs(t0 + s - 2, x0, d0, g0, b0, c0);
            adjoint(s - 1, t0 + s - 1, x1, d1, g1, b1, c1);
        }}
        if (s == 0) adjoint(0, t0, x0, d0, g0, b0, c0);
    }}

    if (active) {{
#pragma unroll
        for (int j = 0; j < N; ++j) buffer_10[me * N + j] = da[j];
        buffer_13[me] = dd;
    }}
"#,
        low = (1u32 << shift) - 1,
    )
}

/// The warp's reduce-scatter stage, written once into every backward's source.
pub const HALVE: &str = r#"
// One stage of the warp's reduce-scatter: COUNT values a lane become COUNT / 2, each the sum
// of this lane's and the lane OFFSET away's value of the same index; lanes with the OFFSET bit
// set keep the upper half. With one value left, it is summed with the other lane's.
template <int COUNT, int OFFSET>
__device__ __forceinline__ void icl_halve(float* v, uint32 lane) {
    if (COUNT >= 2) {
        const bool upper = (lane & OFFSET) != 0;
#pragma unroll
        for (int i = 0; i < COUNT / 2; ++i) {
            const float lo = v[i], hi = v[i + COUNT / 2];
            const float send = upper ? lo : hi, keep = upper ? hi : lo;
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, OFFSET);
        }
    } else {
        v[0] += __shfl_xor_sync(0xffffffffu, v[0], OFFSET);
    }
}
"#;

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
use super::Prefetch;
use crate::source_kernel::CudaSource;

/// Which of the per-channel kernels a source is. A scan of L steps runs as segments of time
/// ([`super::TimeSplit`], `seg` steps each, a multiple of the chunk): the first forward pass
/// ([`Pass::ForwardEnds`]) gives each segment but the last its end state from a zero start
/// and its Σ Δ, and the forward then starts each segment from those (the backward likewise,
/// from the other end). One segment is the whole scan and needs no first pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// y; with `save`, also the states entering each chunk (for a backward to come).
    Forward { save: bool },
    /// Each segment's end state from a zero state at its start, and its Σ Δ (all segments
    /// but the last).
    ForwardEnds,
    /// The gradients.
    Backward,
    /// Each segment's adjoint carry at its start from a zero carry at its end, and its Σ Δ
    /// (all segments but the first).
    BackwardStarts,
}

impl Pass {
    /// The buffers the pass takes, in launch order (as [`ScanSource::cuda`] lists them): `r`
    /// for one it reads, `w` for one it writes.
    pub fn buffers(self) -> &'static str {
        match self {
            Pass::Forward { .. } => "rrrrrrwwr",
            Pass::ForwardEnds | Pass::BackwardStarts => "rrrrw",
            Pass::Backward => "rrrrrrrrrwwwwww",
        }
    }
}

/// One compiled form of the per-channel kernels: which pass, N state entries, the chunk of
/// steps between saved states, threads a cube, and the prefetch of the passes that walk
/// forward in time or (the backward's first pass) back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanSource {
    pub pass: Pass,
    pub n: u32,
    pub chunk: u32,
    pub block: u32,
    pub prefetch: Prefetch,
}

/// The scalars every pass reads from `info`, in order: `seg` is the steps a segment of time.
pub const SCALARS: [&str; 5] = ["batch", "members", "len", "width", "seg"];

impl ScanSource {
    /// Whether this source takes a scan with `n` state entries: whole 16-byte rows of B and C,
    /// and at most 32 entries (registers).
    pub fn takes(n: usize) -> bool {
        n.is_multiple_of(4) && (4..=32).contains(&n)
    }

    pub fn entry_point(self) -> String {
        let ScanSource { pass, n, chunk, block, prefetch } = self;
        let what = match pass {
            Pass::Forward { save: false } => "forward",
            Pass::Forward { save: true } => "forward_save",
            Pass::ForwardEnds => "forward_ends",
            Pass::Backward => "backward",
            Pass::BackwardStarts => "backward_starts",
        };
        let ahead = match prefetch.ahead {
            0 => String::new(),
            k => format!("_l{}a{k}", prefetch.level),
        };
        format!("icl_scan_{what}_n{n}_c{chunk}_b{block}{ahead}")
    }

    /// Floats of shared memory a cube: the backward's chunk of states, `chunk·n` a thread.
    pub fn shared_floats(self) -> usize {
        if self.pass == Pass::Backward {
            (self.chunk * self.n * self.block) as usize
        } else {
            0
        }
    }

    /// The kernel's CUDA C++. Grid (⌈e / block⌉, b, segments; for the first passes
    /// segments - 1). Buffers, as [`super::kernel`] lays out those it shares, with `ends`
    /// `[segments - 1, N + 1, b, e]` (a segment's N entries, then its Σ Δ):
    /// - forward: x, Δ, A, B, C, D, y, states, ends (read);
    /// - forward ends: x, Δ, A, B, ends;
    /// - backward: x, Δ, A, B, C, D, states, ∂y, starts (read), ∂x, ∂Δ, ∂A partial
    ///   `[b, segments, e, N]`, ∂B partial, ∂C partial, ∂D partial `[b, segments, e]`;
    /// - backward starts: Δ, A, C, ∂y, starts.
    pub fn cuda(self) -> String {
        let ScanSource { pass, n, chunk, block, prefetch } = self;
        let name = self.entry_point();
        let reads = crate::source_kernel::read_scalars(&SCALARS);
        let body = match pass {
            Pass::Forward { save } => forward_body(save),
            Pass::ForwardEnds => forward_ends_body(),
            Pass::Backward => backward_body(n),
            Pass::BackwardStarts => backward_starts_body(),
        };
        let params: Vec<String> = pass
            .buffers()
            .chars()
            .enumerate()
            .map(|(i, access)| format!("{}float* __restrict__ buffer_{i}", if access == 'r' { "const " } else { "" }))
            .collect();
        let params = params.join(", ");
        let prelude = crate::source_kernel::prelude(SCALARS.len());
        let halve = if pass == Pass::Backward { HALVE } else { "" };
        format!(
            r#"{prelude}
#define N {n}
#define CHUNK {chunk}
#define BLOCK {block}
#define AHEAD {ahead}
#define AHEAD_LEVEL {level}
#define LOG2E 1.4426950408889634f
{COMMON}{halve}
extern "C" __global__ void __launch_bounds__(BLOCK) {name} ({params}, const __grid_constant__ info_st info) {{
{reads}{body}}}
"#,
            ahead = prefetch.ahead,
            level = prefetch.level,
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

/// What every pass shares: the exponential, row loads, the pipelined walk over steps, and
/// the thread's place.
const COMMON: &str = r#"
#ifndef ICL_LAB_EMULATED
// 2^x, subnormal results flushed to zero: one MUFU instruction.
__device__ __forceinline__ float icl_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
// Asks L2 (or L1) for the line at p, without waiting for it.
__device__ __forceinline__ void icl_prefetch_l2(const void* p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}
__device__ __forceinline__ void icl_prefetch_l1(const void* p) {
    asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
}
#endif

// The walks' prefetch, AHEAD steps ahead into cache level AHEAD_LEVEL: one float, and a row
// of N (every 32-byte sector it touches: 16-byte aligned, it may start mid-sector).
__device__ __forceinline__ void icl_ahead(const float* p) {
    if (AHEAD_LEVEL == 1) icl_prefetch_l1(p); else icl_prefetch_l2(p);
}
__device__ __forceinline__ void icl_ahead_row(const float* base, uint64 row) {
    const float* p = base + row * N;
#pragma unroll
    for (int q = 0; q < N / 8; ++q) icl_ahead(p + 8 * q);
    icl_ahead(p + N - 1);
}

struct __align__(16) icl_float4 {
    float x, y, z, w;
};

// Row `row` of a [.., N] tensor into out[0..N], 16 bytes a load.
__device__ __forceinline__ void icl_row(const float* __restrict__ base, uint64 row, float* out) {
    const icl_float4* p = reinterpret_cast<const icl_float4*>(base + row * N);
#pragma unroll
    for (int q = 0; q < N / 4; ++q) {
        const icl_float4 v = p[q];
        out[4 * q] = v.x;
        out[4 * q + 1] = v.y;
        out[4 * q + 2] = v.z;
        out[4 * q + 3] = v.w;
    }
}

// Runs step(i, in) for i = 0 .. count - 1 in order with in = load(i, ..)'s inputs, loading
// step i + 1's before step i runs: two sets of registers in turn.
template <class In, class Load, class Step>
__device__ __forceinline__ void icl_walk(int count, Load load, Step step) {
    In a, b;
    if (count <= 0) return;
    load(0, a);
    int i = 0;
    for (; i + 1 < count; i += 2) {
        load(i + 1, b);
        step(i, a);
        if (i + 2 < count) load(i + 2, a);
        step(i + 1, b);
    }
    if (i < count) step(i, a);
}

// Segment `part`'s steps: [first, first + count).
struct icl_span {
    uint32 first, count;
};
__device__ __forceinline__ icl_span icl_segment(uint32 part, uint32 seg, uint32 len) {
    const uint32 first = part * seg;
    return icl_span{first, min(seg, len - first)};
}
"#;

/// Every pass's start: thread (b, e, segment) and the member's A (times log₂e).
fn prologue() -> &'static str {
    r#"    const uint32 bi = blockIdx.y, part = blockIdx.z;
    // A stacked scan's batch rows are its members' in order; member m's A and D are rows
    // m·e .. (m+1)·e.
    const uint32 member = bi / (batch / members);
    const uint64 plane = (uint64)batch * width;
    const uint64 rows = (uint64)bi * len;
"#
}

/// The forward: thread (b, e, segment) runs over its segment's steps with its N entries of h
/// in registers, from the state the earlier segments' ends give.
fn forward_body(save: bool) -> String {
    let save = u32::from(save);
    let prologue = prologue();
    format!(
        r#"    const uint32 ei = blockIdx.x * BLOCK + threadIdx.x;
    if (ei >= width) return;
{prologue}    const uint64 me = (uint64)bi * width + ei;
    float a2[N], h[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {{
        a2[j] = buffer_2[((uint64)member * width + ei) * N + j] * LOG2E;
        h[j] = 0.0f;
    }}
    // The state entering this segment: each earlier segment's end, after the decay of the
    // segments between (exp(A Σ Δ) over a segment is its steps' decays' product).
    for (uint32 q = 0; q < part; ++q) {{
        const float* end = buffer_8 + (uint64)q * (N + 1) * plane + me;
        const float span = end[N * plane];
#pragma unroll
        for (int j = 0; j < N; ++j) h[j] = fmaf(icl_ex2(span * a2[j]), h[j], end[j * plane]);
    }}
    const float skip = buffer_5[(uint64)member * width + ei];
    const float* xs = buffer_0 + rows * width + ei;
    const float* ds = buffer_1 + rows * width + ei;
    float* ys = buffer_6 + rows * width + ei;
    // States: [chunks, N, b, e]; the state entering chunk c at (c·N + j)·plane + b·e + ei.
    float* saved = buffer_7 + me;
    const icl_span steps = icl_segment(part, seg, len);

    struct In {{
        float x, d, b[N], c[N];
    }};
    auto load = [&](int i, In& in) {{
        const uint32 t = steps.first + i;
        in.x = xs[(uint64)t * width];
        in.d = ds[(uint64)t * width];
        icl_row(buffer_3, rows + t, in.b);
        icl_row(buffer_4, rows + t, in.c);
        if (AHEAD > 0 && i + AHEAD < (int)steps.count) {{
            const uint64 u = t + AHEAD;
            icl_ahead(xs + u * width);
            icl_ahead(ds + u * width);
            icl_ahead_row(buffer_3, rows + u);
            icl_ahead_row(buffer_4, rows + u);
        }}
    }};
    // One step: h ← exp(Δ A) h + Δ x B; y = C·h + D x.
    // A segment starts on a chunk: the steps that save are those with i % CHUNK == 0 (which
    // the compiler sees only of i, the pipeline's even steps).
    auto step = [&](int i, const In& in) {{
        const uint32 t = steps.first + i;
        if ({save} && i % CHUNK == 0) {{
            float* s = saved + (uint64)(t / CHUNK) * N * plane;
#pragma unroll
            for (int j = 0; j < N; ++j) s[j * plane] = h[j];
        }}
        const float input = in.d * in.x;
        float out0 = skip * in.x, out1 = 0.0f;
#pragma unroll
        for (int j = 0; j < N; ++j) {{
            h[j] = fmaf(icl_ex2(in.d * a2[j]), h[j], input * in.b[j]);
            if (j % 2 == 0) out0 = fmaf(in.c[j], h[j], out0); else out1 = fmaf(in.c[j], h[j], out1);
        }}
        ys[(uint64)t * width] = out0 + out1;
    }};
    icl_walk<In>((int)steps.count, load, step);
"#
    )
}

/// The forward's first pass: segment `part`'s end state from a zero start, and its Σ Δ.
fn forward_ends_body() -> String {
    let prologue = prologue();
    format!(
        r#"    const uint32 ei = blockIdx.x * BLOCK + threadIdx.x;
    if (ei >= width) return;
{prologue}    float a2[N], h[N], span = 0.0f;
#pragma unroll
    for (int j = 0; j < N; ++j) {{
        a2[j] = buffer_2[((uint64)member * width + ei) * N + j] * LOG2E;
        h[j] = 0.0f;
    }}
    const float* xs = buffer_0 + rows * width + ei;
    const float* ds = buffer_1 + rows * width + ei;
    const icl_span steps = icl_segment(part, seg, len);
    struct In {{
        float x, d, b[N];
    }};
    auto load = [&](int i, In& in) {{
        const uint32 t = steps.first + i;
        in.x = xs[(uint64)t * width];
        in.d = ds[(uint64)t * width];
        icl_row(buffer_3, rows + t, in.b);
        if (AHEAD > 0 && i + AHEAD < (int)steps.count) {{
            const uint64 u = t + AHEAD;
            icl_ahead(xs + u * width);
            icl_ahead(ds + u * width);
            icl_ahead_row(buffer_3, rows + u);
        }}
    }};
    auto step = [&](int, const In& in) {{
        span += in.d;
        const float input = in.d * in.x;
#pragma unroll
        for (int j = 0; j < N; ++j) h[j] = fmaf(icl_ex2(in.d * a2[j]), h[j], input * in.b[j]);
    }};
    icl_walk<In>((int)steps.count, load, step);
    float* end = buffer_4 + (uint64)part * (N + 1) * plane + (uint64)bi * width + ei;
#pragma unroll
    for (int j = 0; j < N; ++j) end[j * plane] = h[j];
    end[N * plane] = span;
"#
    )
}

/// The backward's first pass: segment `part + 1`'s adjoint carry at its start from a zero
/// carry at its end (`carry ← exp(Δ_t A)(C_t ∂y_t + carry)` back over its steps), and its Σ Δ.
fn backward_starts_body() -> String {
    let prologue = prologue();
    format!(
        r#"    const uint32 ei = blockIdx.x * BLOCK + threadIdx.x;
    if (ei >= width) return;
{prologue}    float a2[N], carry[N], span = 0.0f;
#pragma unroll
    for (int j = 0; j < N; ++j) {{
        a2[j] = buffer_1[((uint64)member * width + ei) * N + j] * LOG2E;
        carry[j] = 0.0f;
    }}
    const float* ds = buffer_0 + rows * width + ei;
    const float* gys = buffer_3 + rows * width + ei;
    const icl_span steps = icl_segment(part + 1, seg, len);
    struct In {{
        float d, g, c[N];
    }};
    auto load = [&](int i, In& in) {{
        const uint32 t = steps.first + steps.count - 1 - i;
        in.d = ds[(uint64)t * width];
        in.g = gys[(uint64)t * width];
        icl_row(buffer_2, rows + t, in.c);
        if (AHEAD > 0 && i + AHEAD < (int)steps.count) {{
            const uint64 u = t - AHEAD;
            icl_ahead(ds + u * width);
            icl_ahead(gys + u * width);
            icl_ahead_row(buffer_2, rows + u);
        }}
    }};
    auto step = [&](int, const In& in) {{
        span += in.d;
#pragma unroll
        for (int j = 0; j < N; ++j) carry[j] = icl_ex2(in.d * a2[j]) * fmaf(in.g, in.c[j], carry[j]);
    }};
    icl_walk<In>((int)steps.count, load, step);
    float* start = buffer_4 + (uint64)part * (N + 1) * plane + (uint64)bi * width + ei;
#pragma unroll
    for (int j = 0; j < N; ++j) start[j * plane] = carry[j];
    start[N * plane] = span;
"#
    )
}

/// The backward: thread (b, e, segment) walks its segment's chunks last to first, from the
/// adjoint carry the later segments' starts give; in each chunk it recomputes the chunk's
/// states from the saved one into its shared-memory slots, then runs the adjoint recurrence
/// `g_t = C_t ∂y_t + exp(Δ_{t+1} A) g_{t+1}` back through the chunk. While it works on a
/// chunk, the next one's inputs are asked of L2.
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
    let prologue = prologue();
    format!(
        r#"    const uint32 own = blockIdx.x * BLOCK + threadIdx.x;
{prologue}    const uint32 warps = (width + {WARP} - 1) / {WARP}, warp = own / {WARP};
    // A warp with no channel at all leaves as a whole, so no warp sum misses a lane.
    if (warp >= warps) return;
    // Lanes past the last channel in the last warp run channel e - 1's inputs with ∂y = 0:
    // what they add to the sums is 0, and they write nothing else.
    const bool active = own < width;
    const uint32 ei = active ? own : width - 1;
    const uint32 lane = threadIdx.x % {WARP};
    const uint32 parts = (len + seg - 1) / seg;
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

    const uint64 me = (uint64)bi * width + ei;
    float a2[N], carry[N], da[N];
#pragma unroll
    for (int j = 0; j < N; ++j) {{
        a2[j] = buffer_2[((uint64)member * width + ei) * N + j] * LOG2E;
        carry[j] = 0.0f;  // exp(Δ_(t+1) A) g_(t+1)
        da[j] = 0.0f;
    }}
    // The carry into this segment's last step: each later segment's start (slot q holds
    // segment q + 1's), after the decay of the segments between. Idle lanes keep a zero
    // carry, as their ∂y is zero: channel e - 1's would enter the warp's sums.
    for (uint32 q = parts - 1; active && q-- > part;) {{
        const float* start = buffer_8 + (uint64)q * (N + 1) * plane + me;
        const float span = start[N * plane];
#pragma unroll
        for (int j = 0; j < N; ++j) carry[j] = fmaf(icl_ex2(span * a2[j]), carry[j], start[j * plane]);
    }}
    const float skip = buffer_5[(uint64)member * width + ei];
    float dd = 0.0f;
    const float* xs = buffer_0 + rows * width + ei;
    const float* ds = buffer_1 + rows * width + ei;
    const float* gys = buffer_7 + rows * width + ei;
    float* dxs = buffer_9 + rows * width + ei;
    float* dds = buffer_10 + rows * width + ei;
    const bool writes_sums = (lane & {low}u) == 0;
    const uint32 first_index = (lane >> {shift}) * {per_lane};

    // Recompute: the state entering step t into slot s, h becomes the state after it.
    float h[N];
    struct Recompute {{
        float x, d, b[N];
    }};
    struct Adjoint {{
        float x, d, g, b[N], c[N];
    }};
    // The adjoint at step t (slot s): ∂x, ∂Δ, this step's ∂B and ∂C summed over the warp,
    // ∂A and ∂D accumulated.
    auto adjoint = [&](int s, uint32 t, const Adjoint& in) {{
        float hp[N], v[{p}];
        load_slot(s, hp);
        const float dt = in.d, xv = in.x, gy = in.g;
        const float dtx = dt * xv;
        float gxs = 0.0f, gda = 0.0f;
        dd = fmaf(gy, xv, dd);
#pragma unroll
        for (int j = 0; j < N; ++j) {{
            const float decay = icl_ex2(dt * a2[j]);
            const float g = fmaf(gy, in.c[j], carry[j]);
            const float dhp = decay * hp[j];
            const float gh = g * dhp;
            gda = fmaf(gh, a2[j], gda);
            da[j] = fmaf(dt, gh, da[j]);
            gxs = fmaf(g, in.b[j], gxs);
            carry[j] = g * decay;
            v[j] = g * dtx;                          // ∂B_t[j] from this channel
            v[N + j] = gy * fmaf(dtx, in.b[j], dhp);  // ∂C_t[j]: ∂y_t h_t[j]
        }}
#pragma unroll
        for (int q = 2 * N; q < {p}; ++q) v[q] = 0.0f;
{stages}        const uint64 base = ((rows + t) * warps + warp) * N;
#pragma unroll
        for (int i = 0; i < {per_lane}; ++i) {{
            const uint32 idx = first_index + i;
            if (writes_sums) {{
                if (idx < N) buffer_12[base + idx] = v[i];
                else if (idx < 2 * N) buffer_13[base + idx - N] = v[i];
            }}
        }}
        if (active) {{
            dxs[(uint64)t * width] = fmaf(gxs, dt, skip * gy);
            // ∂Δ = Σ_j g_j (B_j x + A_j exp(Δ A_j) h_(t-1),j); the A·log₂e sum times ln 2.
            dds[(uint64)t * width] = fmaf(gxs, xv, gda * 0.6931471805599453f);
        }}
    }};

    const icl_span steps = icl_segment(part, seg, len);
    const uint32 first_chunk = steps.first / CHUNK;
    for (uint32 ci = (steps.first + steps.count + CHUNK - 1) / CHUNK; ci-- > first_chunk;) {{
        const uint32 t0 = ci * CHUNK;
        const int count = (int)(t0 + CHUNK < len ? CHUNK : len - t0);
        const float* start = buffer_6 + (uint64)ci * N * plane + me;
#pragma unroll
        for (int j = 0; j < N; ++j) h[j] = start[j * plane];
        if (ci > first_chunk) {{
            // The previous chunk's inputs and saved state, into L2 while this chunk runs.
            const uint32 earlier = t0 - CHUNK;
#pragma unroll
            for (int k = 0; k < CHUNK; ++k) {{
                const uint64 o = (uint64)(earlier + k) * width;
                icl_prefetch_l2(xs + o);
                icl_prefetch_l2(ds + o);
                icl_prefetch_l2(gys + o);
#pragma unroll
                for (int q = 0; q < N; q += 8) {{
                    icl_prefetch_l2(buffer_3 + (rows + earlier + k) * N + q);
                    icl_prefetch_l2(buffer_4 + (rows + earlier + k) * N + q);
                }}
            }}
#pragma unroll
            for (int j = 0; j < N; ++j) icl_prefetch_l2(start - (uint64)N * plane + j * plane);
        }}

        // Forward through the chunk.
        icl_walk<Recompute>(count, [&](int s, Recompute& in) {{
            const uint64 o = (uint64)(t0 + s) * width;
            in.x = xs[o];
            in.d = ds[o];
            icl_row(buffer_3, rows + t0 + s, in.b);
        }}, [&](int s, const Recompute& in) {{
            store_slot(s, h);
            const float input = in.d * in.x;
#pragma unroll
            for (int j = 0; j < N; ++j) h[j] = fmaf(icl_ex2(in.d * a2[j]), h[j], input * in.b[j]);
        }});

        // Back through the chunk: h is no longer needed (the adjoint rebuilds h_t from the
        // slot's h_(t-1)).
        icl_walk<Adjoint>(count, [&](int i, Adjoint& in) {{
            const uint32 t = t0 + count - 1 - i;
            const uint64 o = (uint64)t * width;
            in.x = xs[o];
            in.d = ds[o];
            in.g = active ? gys[o] : 0.0f;
            icl_row(buffer_3, rows + t, in.b);
            icl_row(buffer_4, rows + t, in.c);
        }}, [&](int i, const Adjoint& in) {{
            adjoint(count - 1 - i, t0 + count - 1 - i, in);
        }});
    }}

    if (active) {{
        // ∂A and ∂D partials: one row per (batch row, segment).
        const uint64 row = ((uint64)bi * parts + part) * width + ei;
#pragma unroll
        for (int j = 0; j < N; ++j) buffer_11[row * N + j] = da[j];
        buffer_14[row] = dd;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A GPU reads every parameter a kernel declares: each pass's source must declare exactly
    /// the buffers its launch binds, the written ones without `const`.
    #[test]
    fn each_pass_declares_the_buffers_it_is_launched_with() {
        for pass in [Pass::Forward { save: false }, Pass::Forward { save: true }, Pass::ForwardEnds, Pass::Backward, Pass::BackwardStarts] {
            let source = ScanSource { pass, n: 16, chunk: 8, block: 128, prefetch: Prefetch::NONE }.cuda();
            let access = pass.buffers();
            let declared = source.matches("float* __restrict__ buffer_").count();
            assert_eq!(declared, access.len(), "{pass:?}");
            for (i, a) in access.chars().enumerate() {
                let read = source.contains(&format!("const float* __restrict__ buffer_{i},"));
                assert_eq!(read, a == 'r', "{pass:?}: buffer_{i}");
            }
        }
    }

    /// Kernels with different prefetches are different kernels to the cache: their names differ.
    #[test]
    fn a_prefetch_names_its_kernel() {
        let source = |prefetch| ScanSource { pass: Pass::Forward { save: true }, n: 16, chunk: 8, block: 128, prefetch };
        let none = source(Prefetch::NONE);
        let l1 = source(Prefetch { level: 1, ahead: 16 });
        assert_eq!(none.entry_point(), "icl_scan_forward_save_n16_c8_b128");
        assert_eq!(l1.entry_point(), "icl_scan_forward_save_n16_c8_b128_l1a16");
        assert!(l1.cuda().contains("#define AHEAD 16\n#define AHEAD_LEVEL 1\n"));
        assert_ne!(source(Prefetch { level: 2, ahead: 16 }).entry_point(), l1.entry_point());
    }
}

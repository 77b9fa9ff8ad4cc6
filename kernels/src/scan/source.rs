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
    /// for one it reads, `w` for one it writes; a gated scan's come after the others.
    pub fn buffers(self, gate: bool) -> &'static str {
        match (self, gate) {
            (Pass::Forward { .. }, false) => "rrrrrrwwr",
            (Pass::Forward { .. }, true) => "rrrrrrwwrrw",
            (Pass::ForwardEnds, _) | (Pass::BackwardStarts, false) => "rrrrw",
            (Pass::BackwardStarts, true) => "rrrrwr",
            (Pass::Backward, false) => "rrrrrrrrrwwwwww",
            (Pass::Backward, true) => "rrrrrrrrrwwwwwwrrw",
        }
    }
}

/// One compiled form of the per-channel kernels: which pass, N state entries, the chunk of
/// steps between saved states, threads a cube, the state entries each thread holds, the
/// prefetch of the passes that walk forward in time or (the backward's first pass) back,
/// whether Δ comes raw, to pass through softplus as it is read (paper-spec §6: the backward
/// then gives ∂ of the raw Δ), and whether the output is gated, `y·silu(z)` (paper-spec §6.2
/// step 9: the backward then takes ∂ of the gated output and gives ∂z).
///
/// A channel's N entries are split over `n / entries` threads (its groups), each in its own
/// warp of the cube: a warp is 32 channels' same group, so the warp sums of ∂B, ∂C stay sums
/// over channels, and the sums over a channel's groups (y; ∂x, ∂Δ) go through shared memory
/// once a chunk. The first passes of a split hold all N (`entries == n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanSource {
    pub pass: Pass,
    pub n: u32,
    pub chunk: u32,
    pub block: u32,
    pub entries: u32,
    pub prefetch: Prefetch,
    pub softplus: bool,
    pub gate: bool,
}

/// The scalars every pass reads from `info`, in order: `seg` is the steps a segment of time.
/// `zrow` is the floats between rows of the gate z, which may be a slice of a wider tensor
/// (Mamba's z is half of in_proj's output rows).
pub const SCALARS: [&str; 6] = ["batch", "members", "len", "width", "seg", "zrow"];

impl ScanSource {
    /// Whether this source takes a scan with `n` state entries: whole 16-byte rows of B and C,
    /// and at most 32 entries (registers).
    pub fn takes(n: usize) -> bool {
        n.is_multiple_of(4) && (4..=32).contains(&n)
    }

    /// The form of `pass` for N = `n` with about `entries` state entries a thread: the most
    /// that divide N in whole 16-byte vectors, up to `entries` (at least 4). A cube is 32
    /// channels' groups, or more channels where that is fewer than 4 warps.
    pub fn split(pass: Pass, n: u32, chunk: u32, entries: u32, prefetch: Prefetch) -> Self {
        let entries = (4..=entries.clamp(4, n.max(4))).rev().find(|s| s % 4 == 0 && n % s == 0).unwrap_or(n);
        let groups = n / entries;
        let block = WARP as u32 * groups * (4 / groups).max(1);
        ScanSource { pass, n, chunk, block, entries, prefetch, softplus: false, gate: false }
    }

    /// This form taking Δ raw (`softplus`) or as it is.
    pub fn with_softplus(self, softplus: bool) -> Self {
        ScanSource { softplus, ..self }
    }

    /// This form gating its output with z, or not. The forward's first pass has no output:
    /// it is never gated.
    pub fn with_gate(self, gate: bool) -> Self {
        ScanSource { gate: gate && self.pass != Pass::ForwardEnds, ..self }
    }

    /// The buffers this form takes ([`Pass::buffers`]).
    pub fn buffers(self) -> &'static str {
        self.pass.buffers(self.gate)
    }

    /// A thread's share of a channel's state: `n / entries` threads a channel.
    pub fn groups(self) -> u32 {
        self.n / self.entries
    }

    /// Cubes an SM must hold at once, which bounds the registers a thread. Split: at most
    /// `256 / groups` (at least 64), so that a 64 x 512 scan's threads all fit an H100 or H200
    /// at once (each runs its whole segment: a second wave would double the time).
    pub fn min_cubes(self) -> u32 {
        match (self.groups(), self.pass) {
            // Unsplit: the forward's 4 cubes (128 registers), the backward's 3 (its shared
            // memory holds no more).
            (1, Pass::Backward) => 3,
            (1, _) => 4,
            (groups, _) => ((256 * groups).min(1024) / self.block).max(1),
        }
    }

    /// Channels a cube covers (the grid's x is the channels over this).
    pub fn channels_per_cube(self) -> u32 {
        self.block / self.groups()
    }

    pub fn entry_point(self) -> String {
        let ScanSource { pass, n, chunk, block, entries, prefetch, softplus, gate } = self;
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
        let split = if entries == n { String::new() } else { format!("_s{entries}") };
        let raw = if softplus { "_softplus" } else { "" };
        let gated = if gate { "_gate" } else { "" };
        format!("icl_scan_{what}_n{n}_c{chunk}_b{block}{split}{ahead}{raw}{gated}")
    }

    /// Floats of shared memory a cube: the backward's chunk of states (`chunk·entries` a
    /// thread), and with a channel split over threads, their partial sums of a chunk's steps
    /// (the forward's y, double-buffered; the backward's ∂x and ∂Δ parts). A backward of a raw
    /// Δ also keeps the chunk's Δ and softplus' slope (`2·chunk` a thread), so that softplus
    /// runs once a step.
    pub fn shared_floats(self) -> usize {
        let split = self.groups() > 1;
        let floats = match self.pass {
            Pass::Backward => self.chunk * self.entries + if split { 2 * self.chunk } else { 0 } + if self.softplus { 2 * self.chunk } else { 0 },
            Pass::Forward { .. } if split => 2 * self.chunk,
            _ => 0,
        };
        (floats * self.block) as usize
    }

    /// The kernel's CUDA C++. Grid (⌈e / block⌉, b, segments; for the first passes
    /// segments - 1). Buffers, as [`super::kernel`] lays out those it shares, with `ends`
    /// `[segments - 1, N + 1, b, e]` (a segment's N entries, then its Σ Δ):
    /// - forward: x, Δ, A, B, C, D, y, states, ends (read); gated, then z and the ungated y
    ///   (written when saving, for the backward), y being the gated output;
    /// - forward ends: x, Δ, A, B, ends;
    /// - backward: x, Δ, A, B, C, D, states, ∂y, starts (read), ∂x, ∂Δ, ∂A partial
    ///   `[b, segments, e, N]`, ∂B partial, ∂C partial, ∂D partial `[b, segments, e]`; gated,
    ///   then z, the ungated y and ∂z, ∂y being the gated output's;
    /// - backward starts: Δ, A, C, ∂y, starts; gated, then z.
    pub fn cuda(self) -> String {
        let ScanSource { pass, n, chunk, block, entries, prefetch, softplus, gate } = self;
        let name = self.entry_point();
        let reads = crate::source_kernel::read_scalars(&SCALARS);
        let body = match pass {
            Pass::Forward { save } => forward_body(save),
            Pass::ForwardEnds => first_pass_body(false),
            Pass::Backward => backward_body(entries),
            Pass::BackwardStarts => first_pass_body(true),
        };
        let params: Vec<String> = self
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
#define S {entries}
#define GROUPS {groups}
#define AHEAD {ahead}
#define AHEAD_LEVEL {level}
#define LOG2E 1.4426950408889634f
#define DELTA_SOFTPLUS {softplus}
#define GATE {gate}
{COMMON}{halve}
extern "C" __global__ void __launch_bounds__(BLOCK, {min_cubes}) {name} ({params}, const __grid_constant__ info_st info) {{
{reads}{body}}}
"#,
            ahead = prefetch.ahead,
            level = prefetch.level,
            groups = n / entries,
            min_cubes = self.min_cubes(),
            softplus = u32::from(softplus),
            gate = u32::from(gate),
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

// The walks' prefetch, AHEAD steps ahead into cache level AHEAD_LEVEL: one float, and
// entries first .. first + COUNT of a row of N (every 32-byte sector they touch: 16-byte
// aligned, they may start mid-sector).
__device__ __forceinline__ void icl_ahead(const float* p) {
    if (AHEAD_LEVEL == 1) icl_prefetch_l1(p); else icl_prefetch_l2(p);
}
template <int COUNT>
__device__ __forceinline__ void icl_ahead_vec(const float* p) {
#pragma unroll
    for (int q = 0; q < COUNT / 8; ++q) icl_ahead(p + 8 * q);
    icl_ahead(p + COUNT - 1);
}
template <int COUNT>
__device__ __forceinline__ void icl_ahead_row(const float* base, uint64 row, uint32 first) {
    icl_ahead_vec<COUNT>(base + row * N + first);
}

// Δ as the recurrence takes it from what is stored: softplus(raw) = max(raw, 0) +
// log1p(exp(-|raw|)) where the kernel applies it (no overflow for a large |raw|), on the
// fast exponential and logarithm (a few instructions; the backward computes it once a
// step, in its recompute, and keeps it for the adjoint). log1p(t) as log(u)·t/(u - 1) with u = 1 + t rounded (Goldberg's): the rounding of u
// cancels, so a small t (a raw far below 0, Mamba's Δ init) keeps its digits.
// With `slope`, also ∂Δ/∂(what is stored): softplus' = σ(raw) = (raw ≥ 0 ? 1 : t) / u, from
// the same exponential.
__device__ __forceinline__ float icl_delta(float stored, float* slope = nullptr) {
#if DELTA_SOFTPLUS
    const float t = __expf(-fabsf(stored)), u = 1.0f + t;
    if (slope) *slope = __fdividef(stored >= 0.0f ? 1.0f : t, u);
    return fmaxf(stored, 0.0f) + (u == 1.0f ? t : __logf(u) * __fdividef(t, u - 1.0f));
#else
    if (slope) *slope = 1.0f;
    return stored;
#endif
}

// σ(z), on the fast exponential: 1 / (1 + exp(-z)) (0 for z far below 0, 1 far above).
__device__ __forceinline__ float icl_sigmoid(float z) {
    return __fdividef(1.0f, 1.0f + __expf(-z));
}

struct __align__(16) icl_float4 {
    float x, y, z, w;
};

// COUNT floats at p (16-byte aligned) into out[0..COUNT], 16 bytes a load.
template <int COUNT>
__device__ __forceinline__ void icl_vec(const float* __restrict__ p, float* out) {
    const icl_float4* v = reinterpret_cast<const icl_float4*>(p);
#pragma unroll
    for (int q = 0; q < COUNT / 4; ++q) {
        const icl_float4 w = v[q];
        out[4 * q] = w.x;
        out[4 * q + 1] = w.y;
        out[4 * q + 2] = w.z;
        out[4 * q + 3] = w.w;
    }
}
// Entries first .. first + COUNT of row `row` of a [.., N] tensor (first a multiple of 4).
template <int COUNT>
__device__ __forceinline__ void icl_row(const float* __restrict__ base, uint64 row, uint32 first, float* out) {
    icl_vec<COUNT>(base + row * N + first, out);
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

// icl_walk by whole chunks: step(i, k, steps, in) with k = i % CHUNK a constant (the chunk's
// steps unrolled) and `steps` the chunk's (CHUNK, a constant, but in a short last chunk), and
// done(i0, steps) after each chunk, that of steps i0 .. i0 + steps. The walk starts on a
// chunk; only its last chunk may be short.
// Unsplit kernels (GROUPS == 1: nothing to do after a chunk) walk in pairs of steps, as
// icl_walk, with k computed: unrolled by chunks, their N entries a thread spill.
template <class In, class Load, class Step, class Done>
__device__ __forceinline__ void icl_walk_chunks(int count, Load load, Step step, Done done) {
    if (GROUPS == 1) {
        icl_walk<In>(count, load, [&](int i, const In& in) { step(i, i % CHUNK, count, in); });
        return;
    }
    In in[2];
    if (count <= 0) return;
    load(0, in[0]);
    int i = 0;
    for (; i + CHUNK <= count; i += CHUNK) {
#pragma unroll
        for (int k = 0; k < CHUNK; ++k) {
            if (k + 1 < CHUNK || i + CHUNK < count) load(i + k + 1, in[(k + 1) % 2]);
            step(i + k, k, CHUNK, in[k % 2]);
        }
        done(i, CHUNK);
    }
    const int rest = count - i;
    if (rest > 0) {
#pragma unroll
        for (int k = 0; k < CHUNK; ++k) {
            if (k < rest) {
                if (k + 1 < rest) load(i + k + 1, in[(k + 1) % 2]);
                step(i + k, k, rest, in[k % 2]);
            }
        }
        done(i, rest);
    }
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

/// The split passes' thread: group `g` (entries `j0 .. j0 + S`) of channel `ei`. Warp `wi`
/// of the cube is group `wi % GROUPS` of the cube's channel warp `wi / GROUPS`, 32 channels.
/// Threads past the last channel run channel e - 1's inputs and write nothing, so every
/// thread reaches the cube's barriers and every lane the warp's shuffles.
fn split_place() -> &'static str {
    r#"    const uint32 lane = threadIdx.x % 32, wi = threadIdx.x / 32;
    const uint32 g = wi % GROUPS, cw = wi / GROUPS;
    const uint32 lanes = blockIdx.x * (BLOCK / 32 / GROUPS) + cw;
    const uint32 own = lanes * 32 + lane;
    const bool active = own < width;
    const uint32 ei = active ? own : width - 1;
    const uint32 j0 = g * S;
    // The thread of group q of this thread's channel (its partial sums' column).
    auto peer = [&](uint32 q) { return (cw * GROUPS + q) * 32 + lane; };
"#
}

/// The forward: thread (b, e, group, segment) runs over its segment's steps with its S
/// entries of h in registers, from the state the earlier segments' ends give. A channel's
/// groups sum y through shared memory a chunk at a time (double-buffered: one barrier a
/// chunk).
fn forward_body(save: bool) -> String {
    let save = u32::from(save);
    let (prologue, place) = (prologue(), split_place());
    format!(
        r#"{place}{prologue}    const uint64 me = (uint64)bi * width + ei;
    float a2[S], h[S];
#pragma unroll
    for (int j = 0; j < S; ++j) {{
        a2[j] = buffer_2[((uint64)member * width + ei) * N + j0 + j] * LOG2E;
        h[j] = 0.0f;
    }}
    // The state entering this segment: each earlier segment's end, after the decay of the
    // segments between (exp(A Σ Δ) over a segment is its steps' decays' product).
    for (uint32 q = 0; q < part; ++q) {{
        const float* end = buffer_8 + (uint64)q * (N + 1) * plane + me;
        const float span = end[N * plane];
#pragma unroll
        for (int j = 0; j < S; ++j) h[j] = fmaf(icl_ex2(span * a2[j]), h[j], end[(j0 + j) * plane]);
    }}
    // D x enters y once: through group 0.
    const float skip = g == 0 ? buffer_5[(uint64)member * width + ei] : 0.0f;
    const icl_span steps = icl_segment(part, seg, len);
    // Running pointers at the step the walk loads next (y's: the next it writes), and the
    // saved state of the next chunk: [chunks, N, b, e], entry j of chunk c at (c·N + j)·plane.
    // (32-bit offsets: the launch checks that every tensor's elements fit.)
    uint32 o = ((uint32)rows + steps.first) * width + ei, r = ((uint32)rows + steps.first) * N + j0;
    uint32 oy = o, oz = ((uint32)rows + steps.first) * zrow + ei;
    float* ps = buffer_7 + (uint64)(steps.first / CHUNK) * N * plane + (uint64)j0 * plane + me;
    const uint32 ahead = AHEAD * width;
    // y's parts: [2][CHUNK][BLOCK], step k of a chunk at k·BLOCK of its parity's half.
    extern __shared__ __align__(16) uint8 dynamic_shared_mem[];
    float* const parts_of_y = reinterpret_cast<float*>(dynamic_shared_mem) + threadIdx.x;
    float* parts = parts_of_y;

    // y at offset `at` (z's at `zat`) out: gated, y·silu(z), the ungated y kept (when
    // saving) for the backward.
    auto emit = [&](uint32 at, uint32 zat, float y) {{
#if GATE
        const float zv = buffer_9[zat];
        buffer_6[at] = y * zv * icl_sigmoid(zv);
        if ({save}) buffer_10[at] = y;
#else
        buffer_6[at] = y;
#endif
    }};
    struct In {{
        float x, d, b[S], c[S];
    }};
    auto load = [&](int i, In& in) {{
        in.x = buffer_0[o];
        in.d = icl_delta(buffer_1[o]);
        icl_vec<S>(buffer_3 + r, in.b);
        icl_vec<S>(buffer_4 + r, in.c);
        if (AHEAD > 0 && i + AHEAD < (int)steps.count) {{
            // A channel's groups share x and Δ: group 0 asks for them.
            if (g == 0) {{
                icl_ahead(buffer_0 + (o + ahead));
                icl_ahead(buffer_1 + (o + ahead));
            }}
            icl_ahead_vec<S>(buffer_3 + (r + AHEAD * N));
            icl_ahead_vec<S>(buffer_4 + (r + AHEAD * N));
        }}
        o += width;
        r += N;
    }};
    // One step: h ← exp(Δ A) h + Δ x B; y = C·h + D x (this group's part of it).
    auto step = [&](int, int k, int, const In& in) {{
        if ({save} && k == 0) {{
            if (active) {{
#pragma unroll
                for (int j = 0; j < S; ++j) ps[j * plane] = h[j];
            }}
            ps += N * plane;
        }}
        const float input = in.d * in.x;
        float out0 = skip * in.x, out1 = 0.0f;
#pragma unroll
        for (int j = 0; j < S; ++j) {{
            h[j] = fmaf(icl_ex2(in.d * a2[j]), h[j], input * in.b[j]);
            if (j % 2 == 0) out0 = fmaf(in.c[j], h[j], out0); else out1 = fmaf(in.c[j], h[j], out1);
        }}
        if (GROUPS == 1) {{
            if (active) emit(oy, oz, out0 + out1);
            oy += width;
            oz += zrow;
        }} else {{
            parts[k * BLOCK] = out0 + out1;
        }}
    }};
    // A chunk's y from its groups' parts: group g sums steps g, g + GROUPS, .. of it.
    auto done = [&](int, int count) {{
        if (GROUPS == 1) return;
        __syncthreads();
        const float* chunk_parts = parts - threadIdx.x + peer(0) + g * BLOCK;
        uint32 out = oy + g * width, outz = oz + g * zrow;
#pragma unroll
        for (int r = 0; r < (CHUNK + GROUPS - 1) / GROUPS; ++r) {{
            if ((int)g + r * GROUPS < count) {{
                float y = 0.0f;
#pragma unroll
                for (int q = 0; q < GROUPS; ++q) y += chunk_parts[r * GROUPS * BLOCK + 32 * q];
                if (active) emit(out, outz, y);
            }}
            out += GROUPS * width;
            outz += GROUPS * zrow;
        }}
        oy += CHUNK * width;
        oz += CHUNK * zrow;
        parts = parts == parts_of_y ? parts_of_y + CHUNK * BLOCK : parts_of_y;
    }};
    icl_walk_chunks<In>((int)steps.count, load, step, done);
"#
    )
}

/// A split's first passes, one thread a channel with all N entries. Forward: segment
/// `part`'s end state from a zero start, `h ← exp(Δ_t A) h + Δ_t x_t B_t` over its steps.
/// Backward: segment `part + 1`'s adjoint carry at its start from a zero carry at its end,
/// `carry ← exp(Δ_t A)(C_t ∂y_t + carry)` back over its steps. Both also give the segment's
/// Σ Δ.
fn first_pass_body(backward: bool) -> String {
    let prologue = prologue();
    // Buffers: A, Δ, the other per-channel input (x or ∂y), the row (B or C).
    let (a, ds, other, row) = if backward { (1, 0, 3, 2) } else { (2, 1, 0, 3) };
    let (segment, t, u, update) = if backward {
        ("part + 1", "steps.first + steps.count - 1 - i", "t - AHEAD", "icl_ex2(in.d * a2[j]) * fmaf(in.o, in.r[j], z[j])")
    } else {
        ("part", "steps.first + i", "t + AHEAD", "fmaf(icl_ex2(in.d * a2[j]), z[j], (in.d * in.o) * in.r[j])")
    };
    format!(
        r#"    const uint32 ei = blockIdx.x * BLOCK + threadIdx.x;
    if (ei >= width) return;
{prologue}    float a2[N], z[N], span = 0.0f;
#pragma unroll
    for (int j = 0; j < N; ++j) {{
        a2[j] = buffer_{a}[((uint64)member * width + ei) * N + j] * LOG2E;
        z[j] = 0.0f;
    }}
    const float* ds = buffer_{ds} + rows * width + ei;
    const float* os = buffer_{other} + rows * width + ei;
    const icl_span steps = icl_segment({segment}, seg, len);
    struct In {{
        float d, o, r[N];
    }};
    auto load = [&](int i, In& in) {{
        const uint32 t = {t};
        in.d = icl_delta(ds[(uint64)t * width]);
        in.o = os[(uint64)t * width];
#if GATE
        // The backward's: ∂ of the gated output through the gate, ∂y = ∂out·silu(z).
        const float zv = buffer_5[(rows + t) * zrow + ei];
        in.o *= zv * icl_sigmoid(zv);
#endif
        icl_row<N>(buffer_{row}, rows + t, 0, in.r);
        if (AHEAD > 0 && i + AHEAD < (int)steps.count) {{
            const uint64 u = {u};
            icl_ahead(ds + u * width);
            icl_ahead(os + u * width);
            icl_ahead_row<N>(buffer_{row}, rows + u, 0);
        }}
    }};
    auto step = [&](int, const In& in) {{
        span += in.d;
#pragma unroll
        for (int j = 0; j < N; ++j) z[j] = {update};
    }};
    icl_walk<In>((int)steps.count, load, step);
    float* out = buffer_4 + (uint64)part * (N + 1) * plane + (uint64)bi * width + ei;
#pragma unroll
    for (int j = 0; j < N; ++j) out[j * plane] = z[j];
    out[N * plane] = span;
"#
    )
}

/// The backward: thread (b, e, group, segment) walks its segment's chunks last to first,
/// from the adjoint carry the later segments' starts give; in each chunk it recomputes its S
/// entries of the chunk's states from the saved one into its shared-memory slots, then runs
/// the adjoint recurrence `g_t = C_t ∂y_t + exp(Δ_{t+1} A) g_{t+1}` back through the chunk.
/// The state after step t, which ∂C_t needs, is the later step's slot (or, at the chunk's
/// last step, where the recompute ended). A channel's groups sum their parts of ∂x and ∂Δ
/// through shared memory once a chunk. While it works on a chunk, the next one's inputs are
/// asked of L2.
fn backward_body(entries: u32) -> String {
    let p = (2 * entries as usize).next_power_of_two();
    let (per_lane, shift) = scattered_layout(p);
    // The warp's reduce-scatter of p values: at offset 16, 8, .. 1, count p, p/2, .. (≥ 1).
    let stages: String = (0..5)
        .map(|k| {
            let count = (p >> k).max(1);
            format!("        icl_halve<{count}, {offset}>(v, lane);\n", offset = 16 >> k)
        })
        .collect();
    let (prologue, place) = (prologue(), split_place());
    format!(
        r#"{place}{prologue}    const uint32 warps = (width + {WARP} - 1) / {WARP};
    const uint32 parts = (len + seg - 1) / seg;
    extern __shared__ __align__(16) uint8 dynamic_shared_mem[];
    // Slot s of this thread: float4 q at (s·S/4 + q)·BLOCK + threadIdx.x (a warp's 32 lanes on
    // 32 consecutive vectors).
    icl_float4* slots = reinterpret_cast<icl_float4*>(dynamic_shared_mem) + threadIdx.x;
    // The groups' parts of ∂x and ∂Δ after the slots: [CHUNK][2][BLOCK].
    float* const parts_of_sums = reinterpret_cast<float*>(dynamic_shared_mem) + CHUNK * S * BLOCK;
    // Of a raw Δ, after those: this thread's Δ and softplus' slope at each step of the chunk,
    // [CHUNK][2][BLOCK], from the recompute for the adjoint (softplus once a step).
    float* const deltas = parts_of_sums + (GROUPS > 1 ? 2 * CHUNK * BLOCK : 0) + threadIdx.x;
    auto store_slot = [&](int s, const float* v) {{
#pragma unroll
        for (int q = 0; q < S / 4; ++q) {{
            icl_float4 w;
            w.x = v[4 * q];
            w.y = v[4 * q + 1];
            w.z = v[4 * q + 2];
            w.w = v[4 * q + 3];
            slots[(s * (S / 4) + q) * BLOCK] = w;
        }}
    }};
    auto load_slot = [&](int s, float* v) {{
#pragma unroll
        for (int q = 0; q < S / 4; ++q) {{
            const icl_float4 w = slots[(s * (S / 4) + q) * BLOCK];
            v[4 * q] = w.x;
            v[4 * q + 1] = w.y;
            v[4 * q + 2] = w.z;
            v[4 * q + 3] = w.w;
        }}
    }};

    const uint64 me = (uint64)bi * width + ei;
    float a2[S], carry[S], da[S];
#pragma unroll
    for (int j = 0; j < S; ++j) {{
        a2[j] = buffer_2[((uint64)member * width + ei) * N + j0 + j] * LOG2E;
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
        for (int j = 0; j < S; ++j) carry[j] = fmaf(icl_ex2(span * a2[j]), carry[j], start[(j0 + j) * plane]);
    }}
    const float skip = buffer_5[(uint64)member * width + ei];
    float dd = 0.0f;
    const float* xs = buffer_0 + rows * width + ei;
    const float* ds = buffer_1 + rows * width + ei;
    const float* gys = buffer_7 + rows * width + ei;
#if GATE
    const float* zs = buffer_15 + rows * zrow + ei;
    const float* ys = buffer_16 + rows * width + ei;
    float* dzs = buffer_17 + rows * width + ei;
#endif
    // ∂y at offset o (z's at oz): of a gated scan, ∂out·silu(z) (∂out given), and with `dz`
    // also ∂z = ∂out·y·σ(z)(1 + z(1 - σ(z))) written; else as given.
    auto grad_y = [&](uint32 o, uint32 oz, bool dz) {{
#if GATE
        const float gout = gys[o], zv = zs[oz], sig = icl_sigmoid(zv);
        if (dz) dzs[o] = gout * ys[o] * sig * fmaf(zv, 1.0f - sig, 1.0f);
        return gout * zv * sig;
#else
        return gys[o];
#endif
    }};
    // Step s of the chunk's Δ (at offset o) and its slope: kept by the recompute, or as
    // stored (slope 1).
    auto delta_at = [&](int s, uint32 o, float& slope) {{
        if (DELTA_SOFTPLUS) {{
            slope = deltas[(2 * s + 1) * BLOCK];
            return deltas[2 * s * BLOCK];
        }}
        slope = 1.0f;
        return ds[o];
    }};
    float* dxs = buffer_9 + rows * width + ei;
    float* dds = buffer_10 + rows * width + ei;
    // A channel warp past the last channel (in a cube of several) has no row of sums.
    const bool writes_sums = lanes < warps && (lane & {low}u) == 0;
    const uint32 first_index = (lane >> {shift}) * {per_lane};

    // ∂x and ∂Δ of step t from the channel's sums over its entries.
    auto finish = [&](uint32 o, float gxs, float gda, float dt, float slope, float xv, float gy) {{
        if (!active) return;
        dxs[o] = fmaf(gxs, dt, skip * gy);
        // ∂Δ = Σ_j g_j (B_j x + A_j exp(Δ A_j) h_(t-1),j); the A·log₂e sum times ln 2. Of a
        // raw Δ, times softplus' slope.
        dds[o] = fmaf(gxs, xv, gda * 0.6931471805599453f) * slope;
    }};

    // h: the state after the step the walk is at (the recompute's, then the adjoint's).
    float h[S];
    struct Recompute {{
        float x, d, s, b[S];
    }};
    struct Adjoint {{
        float x, d, s, g, b[S], c[S];
    }};
    // The adjoint at step t (slot s): ∂x, ∂Δ (or this group's parts of them), this step's ∂B
    // and ∂C summed over the warp, ∂A and ∂D accumulated.
    auto adjoint = [&](int s, uint32 o, uint32 sum_at, const Adjoint& in) {{
        float hp[S], v[{p}];
        load_slot(s, hp);
        const float dt = in.d, xv = in.x, gy = in.g;
        const float dtx = dt * xv;
        float gxs = 0.0f, gda = 0.0f;
        dd = fmaf(gy, xv, dd);
#pragma unroll
        for (int j = 0; j < S; ++j) {{
            const float decay = icl_ex2(dt * a2[j]);
            const float gj = fmaf(gy, in.c[j], carry[j]);
            carry[j] = gj * decay;
            const float gh = carry[j] * hp[j];  // g exp(Δ A) h_(t-1)
            gda = fmaf(gh, a2[j], gda);
            da[j] = fmaf(dt, gh, da[j]);
            gxs = fmaf(gj, in.b[j], gxs);
            v[j] = gj * dtx;       // ∂B_t[j] from this channel
            v[S + j] = gy * h[j];  // ∂C_t[j]: ∂y_t h_t[j]
            h[j] = hp[j];
        }}
#pragma unroll
        for (int q = 2 * S; q < {p}; ++q) v[q] = 0.0f;
{stages}        const uint32 base = sum_at;
#pragma unroll
        for (int i = 0; i < {per_lane}; ++i) {{
            const uint32 idx = first_index + i;
            if (writes_sums) {{
                if (idx < S) buffer_12[base + idx] = v[i];
                else if (idx < 2 * S) buffer_13[base + idx - S] = v[i];
            }}
        }}
        if (GROUPS == 1) {{
            finish(o, gxs, gda, dt, in.s, xv, gy);
        }} else {{
            parts_of_sums[(2 * s) * BLOCK + threadIdx.x] = gxs;
            parts_of_sums[(2 * s + 1) * BLOCK + threadIdx.x] = gda;
        }}
    }};

    const icl_span steps = icl_segment(part, seg, len);
    const uint32 first_chunk = steps.first / CHUNK;
    for (uint32 ci = (steps.first + steps.count + CHUNK - 1) / CHUNK; ci-- > first_chunk;) {{
        const uint32 t0 = ci * CHUNK;
        const int count = (int)(t0 + CHUNK < len ? CHUNK : len - t0);
        const float* start = buffer_6 + (uint64)ci * N * plane + me;
#pragma unroll
        for (int j = 0; j < S; ++j) h[j] = start[(j0 + j) * plane];
        if (ci > first_chunk) {{
            // The previous chunk's inputs and saved state, into L2 while this chunk runs.
            const uint32 earlier = t0 - CHUNK;
#pragma unroll
            for (int k = 0; k < CHUNK; ++k) {{
                const uint64 o = (uint64)(earlier + k) * width;
                if (g == 0) {{
                    icl_prefetch_l2(xs + o);
                    icl_prefetch_l2(ds + o);
                    icl_prefetch_l2(gys + o);
#if GATE
                    icl_prefetch_l2(zs + (uint64)(earlier + k) * zrow);
                    icl_prefetch_l2(ys + o);
#endif
                }}
#pragma unroll
                for (int q = 0; q < S; q += 8) {{
                    icl_prefetch_l2(buffer_3 + (rows + earlier + k) * N + j0 + q);
                    icl_prefetch_l2(buffer_4 + (rows + earlier + k) * N + j0 + q);
                }}
            }}
#pragma unroll
            for (int j = 0; j < S; ++j) icl_prefetch_l2(start - (uint64)N * plane + (j0 + j) * plane);
        }}

        // Forward through the chunk.
        {{
            // Step t's offset in x and Δ, and its row's in B.
            uint32 o = t0 * width, r = ((uint32)rows + t0) * N + j0;
            icl_walk_chunks<Recompute>(count, [&](int, Recompute& in) {{
                in.x = xs[o];
                in.d = icl_delta(ds[o], &in.s);
                icl_vec<S>(buffer_3 + r, in.b);
                o += width;
                r += N;
            }}, [&](int, int k, int, const Recompute& in) {{
                store_slot(k, h);
                if (DELTA_SOFTPLUS) {{
                    deltas[2 * k * BLOCK] = in.d;
                    deltas[(2 * k + 1) * BLOCK] = in.s;
                }}
                const float input = in.d * in.x;
#pragma unroll
                for (int j = 0; j < S; ++j) h[j] = fmaf(icl_ex2(in.d * a2[j]), h[j], input * in.b[j]);
            }}, [](int, int) {{}});
        }}

        // The groups have finished summing the later chunk's parts: they may be overwritten.
        if (GROUPS > 1) __syncthreads();
        // Back through the chunk, from its last step.
        {{
            const uint32 last = t0 + count - 1;
            // The loads' step t: its offset in x, Δ, ∂y and its row's in B, C; the steps'
            // (one behind): offset in ∂x, ∂Δ and in the sums.
            uint32 o = last * width, oz = last * zrow, r = ((uint32)rows + last) * N + j0;
            uint32 at = o, sum_at = (((uint32)rows + last) * warps + lanes) * N + j0;
            icl_walk_chunks<Adjoint>(count, [&](int i, Adjoint& in) {{
                in.x = xs[o];
                in.d = delta_at(count - 1 - i, o, in.s);
                // ∂z once a step: by the channel's group 0.
                in.g = active ? grad_y(o, oz, g == 0) : 0.0f;
                icl_vec<S>(buffer_3 + r, in.b);
                icl_vec<S>(buffer_4 + r, in.c);
                o -= width;
                oz -= zrow;
                r -= N;
            }}, [&](int, int k, int steps, const Adjoint& in) {{
                adjoint(steps - 1 - k, at, sum_at, in);
                at -= width;
                sum_at -= warps * N;
            }}, [](int, int) {{}});
        }}
        if (GROUPS > 1) {{
            // The chunk's ∂x and ∂Δ: group g sums steps g, g + GROUPS, .. of it.
            __syncthreads();
            const float* chunk_parts = parts_of_sums + peer(0) + 2 * g * BLOCK;
            uint32 o = (t0 + g) * width, oz = (t0 + g) * zrow;
#pragma unroll
            for (int r = 0; r < (CHUNK + GROUPS - 1) / GROUPS; ++r) {{
                if ((int)g + r * GROUPS < count) {{
                    float gxs = 0.0f, gda = 0.0f;
#pragma unroll
                    for (int q = 0; q < GROUPS; ++q) {{
                        gxs += chunk_parts[2 * r * GROUPS * BLOCK + 32 * q];
                        gda += chunk_parts[(2 * r * GROUPS + 1) * BLOCK + 32 * q];
                    }}
                    if (active) {{
                        float slope;
                        const float dt = delta_at((int)g + r * (int)GROUPS, o, slope);
                        finish(o, gxs, gda, dt, slope, xs[o], grad_y(o, oz, false));
                    }}
                }}
                o += GROUPS * width;
                oz += GROUPS * zrow;
            }}
        }}
    }}

    if (active) {{
        // ∂A and ∂D partials: one row per (batch row, segment); ∂D from group 0.
        const uint64 row = ((uint64)bi * parts + part) * width + ei;
#pragma unroll
        for (int j = 0; j < S; ++j) buffer_11[row * N + j0 + j] = da[j];
        if (g == 0) buffer_14[row] = dd;
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
            for gate in [false, true] {
                let kernel = ScanSource::split(pass, 16, 8, 4, Prefetch::NONE).with_gate(gate);
                let (source, access) = (kernel.cuda(), kernel.buffers());
                let declared = source.matches("float* __restrict__ buffer_").count();
                assert_eq!(declared, access.len(), "{pass:?} gate {gate}");
                for (i, a) in access.chars().enumerate() {
                    let read = source.contains(&format!("const float* __restrict__ buffer_{i},"));
                    assert_eq!(read, a == 'r', "{pass:?} gate {gate}: buffer_{i}");
                }
                // The forward's first pass has no output to gate.
                assert_eq!(kernel.gate, gate && pass != Pass::ForwardEnds);
                assert_eq!(kernel.entry_point().ends_with("_gate"), kernel.gate);
            }
        }
    }

    /// A split takes the most entries up to the asked that divide N in whole vectors, never
    /// fewer than 4, and cubes of whole channel warps of at least 4 warps.
    #[test]
    fn a_split_divides_the_state_into_whole_vectors() {
        let split = |n, entries| {
            let k = ScanSource::split(Pass::Backward, n, 8, entries, Prefetch::NONE);
            (k.entries, k.groups(), k.block, k.channels_per_cube())
        };
        assert_eq!(split(16, 4), (4, 4, 128, 32));
        assert_eq!(split(16, 8), (8, 2, 128, 64));
        assert_eq!(split(16, 12), (8, 2, 128, 64), "12 does not divide 16");
        assert_eq!(split(16, 32), (16, 1, 128, 128));
        assert_eq!(split(12, 8), (4, 3, 96, 32), "8 does not divide 12");
        assert_eq!(split(32, 4), (4, 8, 256, 32));
        assert_eq!(split(4, 1), (4, 1, 128, 128), "at least 4");
        // Unsplit kernels keep their names; split ones say so.
        assert_eq!(ScanSource::split(Pass::Backward, 16, 8, 16, Prefetch::NONE).entry_point(), "icl_scan_backward_n16_c8_b128");
        assert_eq!(ScanSource::split(Pass::Backward, 16, 8, 4, Prefetch::NONE).entry_point(), "icl_scan_backward_n16_c8_b128_s4");
        // Shared memory: the backward's slots, and the groups' sums where split.
        assert_eq!(ScanSource::split(Pass::Backward, 16, 8, 4, Prefetch::NONE).shared_floats(), (8 * 4 + 16) * 128);
        assert_eq!(ScanSource::split(Pass::Forward { save: true }, 16, 8, 4, Prefetch::NONE).shared_floats(), 16 * 128);
        assert_eq!(ScanSource::split(Pass::Forward { save: true }, 16, 8, 16, Prefetch::NONE).shared_floats(), 0);
        // A raw Δ's backward also keeps each step's Δ and slope.
        assert_eq!(ScanSource::split(Pass::Backward, 16, 8, 16, Prefetch::NONE).with_softplus(true).shared_floats(), (8 * 16 + 16) * 128);
        assert_eq!(ScanSource::split(Pass::Backward, 16, 8, 4, Prefetch::NONE).with_softplus(true).shared_floats(), (8 * 4 + 32) * 128);
    }

    /// Kernels with different prefetches are different kernels to the cache: their names differ.
    #[test]
    fn a_prefetch_names_its_kernel() {
        let source = |prefetch| ScanSource::split(Pass::Forward { save: true }, 16, 8, 16, prefetch);
        let none = source(Prefetch::NONE);
        let l1 = source(Prefetch { level: 1, ahead: 16 });
        assert_eq!(none.entry_point(), "icl_scan_forward_save_n16_c8_b128");
        assert_eq!(l1.entry_point(), "icl_scan_forward_save_n16_c8_b128_l1a16");
        assert!(l1.cuda().contains("#define AHEAD 16\n#define AHEAD_LEVEL 1\n"));
        assert_ne!(source(Prefetch { level: 2, ahead: 16 }).entry_point(), l1.entry_point());
    }
}

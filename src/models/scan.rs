//! The selective scan of Mamba (paper-spec §6.2 steps 6–8) as plain burn tensor ops, and the
//! dispatch to the fused CUDA kernel (`icl_lab_kernels::scan`).
//!
//! `h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t`,  `y_t = C_t · h_t + D ⊙ x_t`.
//!
//! Chunked: within a chunk of `CHUNK` steps the recurrence is solved in closed form with
//! log-space cumulative sums, `h_t = Σ_{s≤t} exp(S_t − S_s) u_s + exp(S_t) h_0` where
//! `S_t = Σ_{r≤t} Δ_r A`; only exponents `S_t − S_s ≤ 0` are formed, so nothing overflows
//! however large Δ grows. A short loop carries `h` across chunks. Works on every backend, gets
//! autodiff for free, and is the oracle the fused CUDA kernel is tested against.
//!
//! The fused kernel is reached without new trait bounds on the models: `ScanMode::Fused`
//! checks at run time whether `B` is the CUDA backend (`runtime::CudaBackend` or its inner
//! backend, by `TypeId`) and moves the tensors over; any other backend takes the chunked form.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};

use super::fused::{cast, fused_available, on_fused_backend};

/// Steps solved in closed form at once. Memory per chunk is `b·E·N·CHUNK²` floats.
pub const CHUNK: usize = 16;

/// Inputs of one selective scan.
///
/// # Shapes
/// - x, delta: `[b, l, e]` (delta after softplus; before it for [`selective_scan_of_raw_delta`])
/// - a: `[e, n]` (negative: `-exp(A_log)`)
/// - b_in, c: `[b, l, n]`
/// - d: `[e]`
#[derive(Clone)]
pub struct ScanInputs<B: Backend> {
    pub x: Tensor<B, 3>,
    pub delta: Tensor<B, 3>,
    pub a: Tensor<B, 2>,
    pub b_in: Tensor<B, 3>,
    pub c: Tensor<B, 3>,
    pub d: Tensor<B, 1>,
}

/// How to evaluate the scan: all give the same result (tested); which is faster depends on
/// the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// Closed form within chunks of this many steps: few, large ops (GPU backends).
    Chunked(usize),
    /// One step at a time on precomputed decays and inputs: many small ops with no T² blowup
    /// (the CPU backend, where element-wise work, not op count, is the cost).
    Sequential,
    /// The fused CubeCL kernels, forward and backward (CUDA); on a backend without them,
    /// `Chunked(CHUNK)`.
    Fused,
}

impl ScanMode {
    /// The fastest mode for backend `B`: fused on CUDA; else the faster tensor-op form
    /// (measured: on burn-ndarray the sequential form is several times faster at ICL sizes).
    /// `ICL_LAB_SCAN` overrides the choice (for benchmarks): `fused`, `sequential`,
    /// `chunked:N`, or `tensor` (the backend's tensor-op default).
    pub fn for_backend<B: Backend>(device: &B::Device) -> Self {
        let tensor = if B::name(device).contains("ndarray") { ScanMode::Sequential } else { ScanMode::Chunked(CHUNK) };
        let fused = fused_available::<B>();
        let chosen = std::env::var("ICL_LAB_SCAN").ok().and_then(|v| match v.trim() {
            "tensor" => Some(tensor),
            other => Self::parse(other),
        });
        match chosen {
            Some(ScanMode::Fused) if !fused => tensor,
            Some(mode) => mode,
            None if fused => ScanMode::Fused,
            None => tensor,
        }
    }

    /// `fused`, `sequential` or `chunked:N` (N >= 1).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "sequential" => Some(ScanMode::Sequential),
            "fused" => Some(ScanMode::Fused),
            other => other.strip_prefix("chunked:")?.parse().ok().filter(|&n| n >= 1).map(ScanMode::Chunked),
        }
    }
}

/// A scan's operands and its gate z (whose output is `y·silu(z)`), if gated.
type Gated<B> = (ScanInputs<B>, Option<Tensor<B, 3>>);

/// The fused scan, when `B` is the backend `K` that has it (`raw_delta`: Δ before softplus).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn fused_on<B: Backend, K: icl_lab_kernels::scan::FusedScan>(operands: Gated<B>, raw_delta: bool) -> Result<Tensor<B, 3>, Gated<B>> {
    let (inp, gate): Gated<K> = cast(operands)?;
    let y = icl_lab_kernels::scan::selective_scan(inp.x, inp.delta, inp.a, inp.b_in, inp.c, inp.d, gate, raw_delta);
    Ok(cast(y).unwrap_or_else(|_| unreachable!("B is K")))
}

/// The fused scan, or the operands back when `B` has none.
fn fused_scan<B: Backend>(operands: Gated<B>, raw_delta: bool) -> Result<Tensor<B, 3>, Gated<B>> {
    on_fused_backend!(fused_on::<B>(operands, raw_delta))
}

/// [`selective_scan`] of a Δ given before its softplus (paper-spec §6.2 step 4 with steps
/// 6–8): the fused kernels take it raw and apply softplus as they read it (no pass over Δ of
/// its own, forward or backward); every other path applies [`super::pointwise::softplus`]
/// first.
pub fn selective_scan_of_raw_delta<B: Backend>(inp: ScanInputs<B>, mode: ScanMode) -> Tensor<B, 3> {
    scan(inp, None, mode, true)
}

/// Mamba's scan whole (paper-spec §6.2 steps 4 and 6–9): [`selective_scan_of_raw_delta`]
/// gated by z `[b, l, e]`, `y·silu(z)`. The fused kernels apply the gate as they write y and
/// give ∂z in their backward (no pass over y and z of its own); every other path applies
/// [`super::pointwise::silu`] after.
pub fn gated_scan_of_raw_delta<B: Backend>(inp: ScanInputs<B>, z: Tensor<B, 3>, mode: ScanMode) -> Tensor<B, 3> {
    scan(inp, Some(z), mode, true)
}

/// Returns y, shape `[b, l, e]`. A stacked model's members (`models::members`: x `[K·b, l, e]`
/// with A `[K·e, n]` and D `[K·e]`) each scan their own rows: the fused kernels take the
/// stacked operands whole (one launch for every member; slicing them here instead would cost a
/// full-size zero gradient per slice in burn's autodiff), the tensor-op scans go one member at
/// a time.
pub fn selective_scan<B: Backend>(inp: ScanInputs<B>, mode: ScanMode) -> Tensor<B, 3> {
    scan(inp, None, mode, false)
}

/// Every scan: the fused kernels where `mode` asks for them, `B` has them and they are
/// verified at this shape; else the tensor-op scan, Δ through softplus first when
/// `raw_delta`, gated after when `gate`.
fn scan<B: Backend>(inp: ScanInputs<B>, gate: Option<Tensor<B, 3>>, mode: ScanMode, raw_delta: bool) -> Tensor<B, 3> {
    let [_, _, e] = inp.x.dims();
    let (inp, gate) = match mode {
        ScanMode::Fused if fused_verified(e, inp.a.dims()[1]) => match fused_scan((inp, gate), raw_delta) {
            Ok(y) => return y,
            Err(back) => back,
        },
        _ => (inp, gate),
    };
    let inp = if raw_delta { ScanInputs { delta: super::pointwise::softplus(inp.delta), ..inp } } else { inp };
    let y = ungated_tensor_scan(inp, mode);
    match gate {
        Some(z) => y * super::pointwise::silu(z),
        None => y,
    }
}

/// The tensor-op scan of every member: whole for one, a member at a time for a stack.
fn ungated_tensor_scan<B: Backend>(inp: ScanInputs<B>, mode: ScanMode) -> Tensor<B, 3> {
    let [kb, _, e] = inp.x.dims();
    let members = super::members::count(inp.a.dims()[0], e);
    if members == 1 {
        return tensor_scan(inp, mode);
    }
    let b = kb / members;
    let rows = |t: &Tensor<B, 3>, k: usize| t.clone().narrow(0, k * b, b);
    let ys = (0..members)
        .map(|k| {
            let member = ScanInputs {
                x: rows(&inp.x, k),
                delta: rows(&inp.delta, k),
                a: inp.a.clone().narrow(0, k * e, e),
                b_in: rows(&inp.b_in, k),
                c: rows(&inp.c, k),
                d: inp.d.clone().narrow(0, k * e, e),
            };
            tensor_scan(member, mode)
        })
        .collect();
    Tensor::cat(ys, 0)
}

/// The tensor-op scan `mode` names; for `Fused` (whose kernels did not take this scan), the
/// chunked one.
fn tensor_scan<B: Backend>(inp: ScanInputs<B>, mode: ScanMode) -> Tensor<B, 3> {
    match mode {
        ScanMode::Chunked(chunk) => chunked_scan(inp, chunk.max(1)),
        ScanMode::Sequential => sequential_scan(inp),
        ScanMode::Fused => chunked_scan(inp, CHUNK),
    }
}

/// Shapes the fused kernel has been verified on (H200, `bench scan --check` over
/// [`CHECK_SHAPES`], session 4): d_inner 40, 70, 96, 128, 200 and 256 with d_state 4, 8 and
/// 16 match the tensor-op scan within 1e-4. Any d_inner is covered: its tail (a partial last
/// warp, whole idle warps in the last cube) is what those widths exercise. Until session 4
/// only multiples of 32 were let through: the backward's idle lanes raced the last channel's
/// lane on its chunk scratch (`kernels/src/scan/kernel.rs`), which broke dA, dΔ and dC for
/// d_inner 40 and 70 (and would have for 96). d_state above 16 has not been checked.
pub fn fused_verified(d_inner: usize, d_state: usize) -> bool {
    d_inner >= 1 && (1..=16).contains(&d_state)
}

fn sequential_scan<B: Backend>(inp: ScanInputs<B>) -> Tensor<B, 3> {
    let [b, l, e] = inp.x.dims();
    let n = inp.a.dims()[1];
    let a = inp.a.unsqueeze::<3>(); // (1, e, n)
    // Per-step inputs are sliced from the small (b, l, e|n) tensors, never from a (b, l, e, n)
    // one: the backward of each slice writes a zero tensor the size of its source.
    let at = |t: &Tensor<B, 3>, step: usize, w: usize| t.clone().slice([0..b, step..step + 1, 0..w]).reshape([b, w]);
    let mut h: Option<Tensor<B, 3>> = None;
    let mut ys = Vec::with_capacity(l);
    for t in 0..l {
        let delta = at(&inp.delta, t, e).unsqueeze_dim::<3>(2); // (b, e, 1)
        let x = at(&inp.x, t, e).unsqueeze_dim::<3>(2); // (b, e, 1)
        let u = delta.clone() * x * at(&inp.b_in, t, n).unsqueeze_dim::<3>(1); // (b, e, n)
        let next = match h {
            Some(h) => (delta * a.clone()).exp() * h + u,
            None => u,
        };
        let c = at(&inp.c, t, n).unsqueeze_dim::<3>(2); // (b, n, 1)
        ys.push(next.clone().matmul(c).reshape([b, 1, e])); // C_t · h_t
        h = Some(next);
    }
    Tensor::cat(ys, 1) + inp.x * inp.d.reshape([1, 1, e])
}

fn chunked_scan<B: Backend>(inp: ScanInputs<B>, chunk: usize) -> Tensor<B, 3> {
    let [b, l, e] = inp.x.dims();
    let n = inp.a.dims()[1];
    let device = inp.x.device();
    let a = inp.a.reshape([1, 1, e, n]);
    // The inputs' dtype, not the device's default: burn keeps one default per device, and
    // NdArray<f32> and NdArray<f64> share NdArrayDevice::Cpu.
    let mut h = Tensor::<B, 3>::zeros([b, e, n], (&device, inp.x.dtype())); // state entering the chunk
    let mut ys = Vec::with_capacity(l.div_ceil(chunk));
    for start in (0..l).step_by(chunk) {
        let t = chunk.min(l - start);
        let span = start..start + t;
        let x = inp.x.clone().slice([0..b, span.clone(), 0..e]);
        let delta = inp.delta.clone().slice([0..b, span.clone(), 0..e]);
        let bc = inp.b_in.clone().slice([0..b, span.clone(), 0..n]);
        let cc = inp.c.clone().slice([0..b, span, 0..n]);

        // log decay per step and its running sum within the chunk: (b, t, e, n)
        let log_a = delta.clone().unsqueeze_dim::<4>(3) * a.clone();
        let s = log_a.cumsum(1).permute([0, 2, 3, 1]); // (b, e, n, t)
        // input per step: u_s = Δ_s x_s B_s, (b, e, n, t)
        let u = ((delta * x.clone()).unsqueeze_dim::<4>(3) * bc.unsqueeze_dim::<4>(2)).permute([0, 2, 3, 1]);

        // segment sums S_t − S_s for s ≤ t; the rest masked to -inf before exp: (b, e, n, t, t)
        let seg = s.clone().unsqueeze_dim::<5>(4) - s.clone().unsqueeze_dim::<5>(3);
        let future = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, &device).unsqueeze::<5>().expand([b, e, n, t, t]);
        let w = seg.mask_fill(future, f32::NEG_INFINITY).exp();
        // Σ_s w[t, s] u_s as broadcast-multiply-and-sum: a batched matmul of b·e·n tiny
        // matrices is far slower on the CPU backend.
        let within = (w * u.unsqueeze_dim::<5>(3)).sum_dim(4).squeeze_dim::<4>(4); // (b, e, n, t)
        let states = within + s.exp() * h.unsqueeze_dim::<4>(3); // (b, e, n, t)

        // y_t = C_t · h_t + D x_t
        let c = cc.permute([0, 2, 1]).unsqueeze_dim::<4>(1); // (b, 1, n, t)
        let y = (states.clone() * c).sum_dim(2).squeeze_dim::<3>(2).swap_dims(1, 2); // (b, t, e)
        ys.push(y + x * inp.d.clone().reshape([1, 1, e]));
        h = states.slice([0..b, 0..e, 0..n, t - 1..t]).squeeze_dim::<3>(3);
    }
    Tensor::cat(ys, 1)
}

/// Shapes `[b, l, e, n]` on which the fused scan is checked against the tensor-op scan: lengths
/// off the 16-step chunk, channel counts off the 32-channel warp, and a state size other than 16.
/// New shapes go last: a shape's seed is its index.
pub const CHECK_SHAPES: [[usize; 4]; 6] =
    [[2, 37, 40, 4], [3, 100, 70, 16], [8, 300, 128, 16], [4, 1000, 256, 16], [2, 50, 96, 8], [3, 45, 200, 16]];

/// Random scan inputs of shape `[b, l, e, n]` drawn on the host from `seed`, each a leaf that
/// requires grad: x, B, C ~ U(-1, 1), Δ ~ U(0.01, 1), A ~ U(-4, -0.1), D ~ U(0.5, 1.5).
pub fn random_inputs<B: AutodiffBackend>(dims: [usize; 4], seed: u64, device: &B::Device) -> ScanInputs<B> {
    random_stacked_inputs(1, dims, seed, device)
}

/// [`random_inputs`] of a stacked scan of `members` members (`models::members`), each `dims`:
/// x, Δ, B and C with `members · b` rows, A and D with `members · e`.
pub fn random_stacked_inputs<B: AutodiffBackend>(members: usize, [b, l, e, n]: [usize; 4], seed: u64, device: &B::Device) -> ScanInputs<B> {
    let (b, rows) = (members * b, members * e);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |shape: Vec<usize>, lo: f32, hi: f32| {
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random_range(lo..hi)).collect();
        TensorData::new(values, shape)
    };
    // B's own float type, not the device's default (one per device, shared between backends).
    let opts = || (device, <B::FloatElem as burn::tensor::Element>::dtype());
    ScanInputs {
        x: Tensor::from_data(draw(vec![b, l, e], -1.0, 1.0), opts()).require_grad(),
        delta: Tensor::from_data(draw(vec![b, l, e], 0.01, 1.0), opts()).require_grad(),
        a: Tensor::from_data(draw(vec![rows, n], -4.0, -0.1), opts()).require_grad(),
        b_in: Tensor::from_data(draw(vec![b, l, n], -1.0, 1.0), opts()).require_grad(),
        c: Tensor::from_data(draw(vec![b, l, n], -1.0, 1.0), opts()).require_grad(),
        d: Tensor::from_data(draw(vec![rows], 0.5, 1.5), opts()).require_grad(),
    }
}

/// Largest relative error of `got` against `want`, each entry measured against
/// max(|want|, 1% of want's largest magnitude), so entries that cancel to ~0 are judged on the
/// tensor's scale.
pub fn max_relative_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "compared tensors differ in size");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(0.01 * scale).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// y and the gradients of `Σ y ⊙ proj` with respect to x, Δ, A, B, C, D (and `wide`, for a
/// gated scan), as host vectors (`raw_delta`: Δ before softplus,
/// [`selective_scan_of_raw_delta`]; `wide`: a leaf `[b, l, 2e]` whose upper half is the gate z,
/// [`gated_scan_of_raw_delta`]).
fn scan_with_grads<B: AutodiffBackend>(inp: &ScanInputs<B>, wide: Option<&Tensor<B, 3>>, proj: &Tensor<B, 3>, mode: ScanMode, raw_delta: bool) -> Vec<Vec<f64>> {
    fn host<K: Backend, const D: usize>(t: Tensor<K, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().iter::<f64>().collect()
    }
    let e = inp.x.dims()[2];
    let gate = wide.map(|w| w.clone().narrow(2, e, e));
    let y = scan(inp.clone(), gate, mode, raw_delta);
    let grads = (y.clone() * proj.clone()).sum().backward();
    let grad = |t: Option<Tensor<B::InnerBackend, 3>>, len: usize| t.map_or_else(|| vec![0.0; len], host);
    let g3 = |t: &Tensor<B, 3>| grad(t.grad(&grads), t.shape().num_elements());
    let mut values = vec![
        host(y),
        g3(&inp.x),
        g3(&inp.delta),
        inp.a.grad(&grads).map_or_else(|| vec![0.0; inp.a.shape().num_elements()], host),
        g3(&inp.b_in),
        g3(&inp.c),
        inp.d.grad(&grads).map_or_else(|| vec![0.0; inp.d.shape().num_elements()], host),
    ];
    // ∂z as the leaf's upper half (a slice's own gradient is not kept).
    values.extend(wide.map(g3));
    values
}

/// Names of the values `compare_modes` reports, in order.
pub const COMPARED: [&str; 7] = ["y", "dx", "ddelta", "dA", "dB", "dC", "dD"];

/// Names of the values [`compare_gated_modes`] reports, in order: [`COMPARED`]'s and ∂z.
pub const COMPARED_GATED: [&str; 8] = ["y", "dx", "ddelta", "dA", "dB", "dC", "dD", "dz"];

/// Largest relative errors (see [`max_relative_error`]) of the scan in mode `test` against
/// mode `reference`, on random inputs of shape `[b, l, e, n]`: for y and for each gradient of
/// a fixed random projection of y, in the order of [`COMPARED`].
pub fn compare_modes<B: AutodiffBackend>(dims: [usize; 4], seed: u64, device: &B::Device, test: ScanMode, reference: ScanMode) -> [f64; 7] {
    compare_stacked_modes::<B>(1, dims, seed, device, test, reference)
}

/// Stacked scans (`members` members of `dims` each) checked on the GPU: GPT-2-sized Mamba's
/// d_inner 256 at 16 members, and an odd member count and width.
pub const STACKED_CHECK_SHAPES: [(usize, [usize; 4]); 2] = [(3, [2, 37, 96, 8]), (16, [4, 82, 256, 16])];

/// [`compare_modes`] on a stacked scan of `members` members.
pub fn compare_stacked_modes<B: AutodiffBackend>(members: usize, dims: [usize; 4], seed: u64, device: &B::Device, test: ScanMode, reference: ScanMode) -> [f64; 7] {
    compare_scans::<B>(members, dims, seed, device, [test, reference], false, false).try_into().expect("seven values")
}

/// [`compare_stacked_modes`] of scans given Δ before softplus (U(-3, 3)): the fused kernels
/// apply it themselves, the tensor-op scans after [`super::pointwise::softplus`].
pub fn compare_raw_delta_modes<B: AutodiffBackend>(members: usize, dims: [usize; 4], seed: u64, device: &B::Device, test: ScanMode, reference: ScanMode) -> [f64; 7] {
    compare_scans::<B>(members, dims, seed, device, [test, reference], true, false).try_into().expect("seven values")
}

/// [`compare_raw_delta_modes`] of Mamba's whole scan, gated by z (U(-4, 4), a slice of rows
/// twice as wide as Mamba's is): the fused kernels gate y themselves, the tensor-op scans
/// after; the errors of [`COMPARED_GATED`].
pub fn compare_gated_modes<B: AutodiffBackend>(members: usize, dims: [usize; 4], seed: u64, device: &B::Device, test: ScanMode, reference: ScanMode) -> [f64; 8] {
    compare_scans::<B>(members, dims, seed, device, [test, reference], true, true).try_into().expect("eight values")
}

fn compare_scans<B: AutodiffBackend>(members: usize, dims: [usize; 4], seed: u64, device: &B::Device, [test, reference]: [ScanMode; 2], raw_delta: bool, gated: bool) -> Vec<f64> {
    let mut inp = random_stacked_inputs::<B>(members, dims, seed, device);
    if raw_delta {
        // A new leaf (an op on the drawn leaf would not be one).
        inp.delta = Tensor::from_inner(inp.delta.inner() * 6.0 - 3.0).require_grad();
    }
    let [b, l, e, _] = dims;
    let b = members * b;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut uniform = |len: usize, scale: f32| (0..len).map(|_| rng.random_range(-scale..scale)).collect::<Vec<f32>>();
    let proj = Tensor::<B, 3>::from_data(TensorData::new(uniform(b * l * e, 1.0), [b, l, e]), (device, inp.x.dtype()));
    // z the upper half of a leaf's rows, as Mamba's is of in_proj's output.
    let wide = gated.then(|| Tensor::<B, 3>::from_data(TensorData::new(uniform(b * l * 2 * e, 4.0), [b, l, 2 * e]), (device, inp.x.dtype())).require_grad());
    let got = scan_with_grads(&inp, wide.as_ref(), &proj, test, raw_delta);
    let want = scan_with_grads(&inp, wide.as_ref(), &proj, reference, raw_delta);
    got.iter().zip(&want).map(|(g, w)| max_relative_error(g, w)).collect()
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{DType, Distribution};

    use super::*;

    /// f64, so the comparison tests the algebra of the chunking, not fp32 rounding (the fp32
    /// forward and backward are compared with the f64 recurrence in `fp32_is_close_to_f64`).
    type B = Autodiff<NdArray<f64>>;
    type B32 = Autodiff<NdArray<f32>>;

    /// The recurrence one step at a time, exactly as written in paper-spec §6.2.
    fn naive_scan(inp: &ScanInputs<B>) -> Tensor<B, 3> {
        let [b, l, e] = inp.x.dims();
        let n = inp.a.dims()[1];
        let mut h = Tensor::<B, 3>::zeros([b, e, n], (&inp.x.device(), inp.x.dtype()));
        let mut ys = Vec::new();
        for t in 0..l {
            let x_t = inp.x.clone().slice([0..b, t..t + 1, 0..e]).reshape([b, e, 1]);
            let d_t = inp.delta.clone().slice([0..b, t..t + 1, 0..e]).reshape([b, e, 1]);
            let b_t = inp.b_in.clone().slice([0..b, t..t + 1, 0..n]).reshape([b, 1, n]);
            let c_t = inp.c.clone().slice([0..b, t..t + 1, 0..n]).reshape([b, 1, n]);
            let a_bar = (d_t.clone() * inp.a.clone().unsqueeze::<3>()).exp();
            h = a_bar * h + d_t * b_t * x_t.clone();
            let y = (h.clone() * c_t).sum_dim(2).reshape([b, 1, e]);
            ys.push(y + x_t.reshape([b, 1, e]) * inp.d.clone().reshape([1, 1, e]));
        }
        Tensor::cat(ys, 1)
    }

    /// Random f64 inputs.
    fn inputs(b: usize, l: usize, e: usize, n: usize, delta_scale: f64) -> [Tensor<B, 3>; 6] {
        let dev = NdArrayDevice::Cpu;
        // dtype given: the device's default is whichever backend touched NdArrayDevice::Cpu first.
        let r = |shape: [usize; 3], lo: f64, hi: f64| Tensor::<B, 3>::random(shape, Distribution::Uniform(lo, hi), (&dev, DType::F64)).require_grad();
        [
            r([b, l, e], -1.0, 1.0),
            r([b, l, e], 0.0, delta_scale),
            r([1, e, n], -3.0, -0.1),
            r([b, l, n], -1.0, 1.0),
            r([b, l, n], -1.0, 1.0),
            r([1, 1, e], 0.5, 1.5),
        ]
    }

    fn host<K: Backend, const D: usize>(t: Tensor<K, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().iter::<f64>().collect()
    }

    /// Elementwise relative error <= `tol`, measured against max(|want|, 1% of the tensor's
    /// largest magnitude), so entries that cancel to ~0 are judged on the tensor's scale.
    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (g - w).abs() / w.abs().max(0.01 * scale).max(f64::MIN_POSITIVE);
            assert!(err <= tol, "{what}[{i}]: {g} vs {w} (relative error {err:.2e})");
        }
    }

    /// The `inputs` tensors (A and D drawn as rank 3) as scan inputs on any backend.
    fn assemble<K: Backend>(ts: [Tensor<K, 3>; 6]) -> ScanInputs<K> {
        let [x, delta, a, b_in, c, d] = ts;
        let [_, e, n] = a.dims();
        ScanInputs { x, delta, a: a.reshape([e, n]), b_in, c, d: d.reshape([e]) }
    }

    fn check(l: usize, delta_scale: f64, mode: ScanMode) {
        let ts = inputs(2, l, 5, 4, delta_scale);
        let [x, delta, a, b_in, c, d] = ts.clone();
        let fast = selective_scan(assemble(ts.clone()), mode);
        let slow = naive_scan(&assemble(ts));
        assert_close(&host(fast.clone()), &host(slow.clone()), 1e-5, &format!("y (l = {l}, {mode:?})"));

        // Gradients of a fixed random projection of y, with respect to every input.
        let proj = Tensor::<B, 3>::random(fast.dims(), Distribution::Normal(0.0, 1.0), (&fast.device(), DType::F64));
        let g_fast = (fast * proj.clone()).sum().backward();
        let g_slow = (slow * proj).sum().backward();
        for (name, t) in [("x", &x), ("delta", &delta), ("A", &a), ("B", &b_in), ("C", &c), ("D", &d)] {
            // An input a path never touches (A at l = 1) has no gradient: zeros.
            let zeros = || vec![0.0; t.shape().num_elements()];
            let gf = t.grad(&g_fast).map_or_else(zeros, host);
            let gs = t.grad(&g_slow).map_or_else(zeros, host);
            assert_close(&gf, &gs, 1e-5, &format!("grad {name} (l = {l}, {mode:?})"));
        }
    }

    #[test]
    fn chunked_scan_equals_the_recurrence_forward_and_backward() {
        for l in [1, 7, CHUNK, CHUNK + 1, 2 * CHUNK + 5] {
            check(l, 0.5, ScanMode::Chunked(CHUNK));
            check(l, 0.5, ScanMode::Sequential);
        }
        check(10, 0.5, ScanMode::Chunked(3));
    }

    #[test]
    fn fp32_is_close_to_f64() {
        let ts = inputs(2, 2 * CHUNK + 3, 5, 4, 0.5);
        let to32 = |t: &Tensor<B, 3>| Tensor::<B32, 3>::from_data(t.to_data().convert::<f32>(), (&NdArrayDevice::Cpu, DType::F32));
        let y32 = selective_scan(assemble(ts.clone().map(|t| to32(&t))), ScanMode::Chunked(CHUNK));
        let exact = naive_scan(&assemble(ts));
        assert_close(&host(y32), &host(exact), 1e-5, "fp32 y");
    }

    #[test]
    fn scan_mode_parses() {
        assert_eq!(ScanMode::parse("sequential"), Some(ScanMode::Sequential));
        assert_eq!(ScanMode::parse("chunked:8"), Some(ScanMode::Chunked(8)));
        assert_eq!(ScanMode::parse("chunked:0"), None);
        assert_eq!(ScanMode::parse("fast"), None);
        assert_eq!(ScanMode::parse("fused"), Some(ScanMode::Fused));
    }

    #[test]
    fn large_steps_do_not_overflow() {
        // Δ·A down to -300 per step: exp(-S) would overflow fp32 in a naive cumsum form.
        let y = selective_scan(assemble(inputs(1, 2 * CHUNK, 3, 2, 100.0)), ScanMode::Chunked(CHUNK));
        assert!(y.into_data().iter::<f32>().all(f32::is_finite));
    }

    #[test]
    fn the_fused_mode_takes_the_chunked_form_off_cuda() {
        assert!(!fused_available::<B32>());
        assert!(!fused_available::<NdArray<f32>>());
        let errors = compare_modes::<B32>([2, 21, 6, 3], 1, &NdArrayDevice::Cpu, ScanMode::Fused, ScanMode::Chunked(CHUNK));
        assert_eq!(errors, [0.0; 7], "Fused on the CPU must be exactly the chunked scan");
    }

    /// The raw-Δ comparison the GPU check runs: its inputs are leaves it can differentiate,
    /// and two tensor-op scans of softplus(Δ) agree. In f64, so any gap is a wrong formula,
    /// not fp32 rounding (which differs between CPUs: two fp32 forms of this scan differ by up
    /// to ~1e-4 on some).
    #[test]
    fn raw_delta_scans_compare_on_the_cpu() {
        let errors = compare_raw_delta_modes::<B>(2, [2, 21, 6, 3], 1, &NdArrayDevice::Cpu, ScanMode::Sequential, ScanMode::Chunked(CHUNK));
        for (name, err) in COMPARED.iter().zip(errors) {
            assert!(err <= 1e-10, "{name}: relative error {err:.2e}");
        }
    }

    /// Mamba's whole scan, gated by a slice of wider rows: ∂z reaches the leaf, and both
    /// tensor-op forms agree on it (in f64, as above).
    #[test]
    fn gated_scans_compare_on_the_cpu() {
        let errors = compare_gated_modes::<B>(2, [2, 21, 6, 3], 1, &NdArrayDevice::Cpu, ScanMode::Sequential, ScanMode::Chunked(CHUNK));
        for (name, err) in COMPARED_GATED.iter().zip(errors) {
            assert!(err <= 1e-10, "{name}: relative error {err:.2e}");
        }
        // The gate changes y: the gated scan is not the plain one.
        let inp = random_inputs::<B32>([1, 5, 4, 2], 3, &NdArrayDevice::Cpu);
        let z = Tensor::<B32, 3>::ones([1, 5, 4], (&NdArrayDevice::Cpu, inp.x.dtype())) * -2.0;
        let plain = selective_scan_of_raw_delta(inp.clone(), ScanMode::Sequential);
        let gated = gated_scan_of_raw_delta(inp, z, ScanMode::Sequential);
        let silu = -2.0 / (1.0 + 2f32.exp());
        let diff = (gated - plain * silu).abs().max().into_scalar();
        assert!(diff < 1e-6, "gated = y·silu(z): off by {diff}");
    }

    #[test]
    fn compare_modes_sees_small_and_large_differences() {
        // The two tensor-op forms agree to fp32 rounding, and the comparison notices it is not 0.
        let errors = compare_modes::<B32>([2, 37, 6, 4], 2, &NdArrayDevice::Cpu, ScanMode::Sequential, ScanMode::Chunked(CHUNK));
        for (name, err) in COMPARED.iter().zip(errors) {
            assert!(err <= 1e-4, "{name}: {err:.2e}");
        }
        assert!(errors.iter().any(|&e| e > 0.0), "fp32 forms never agree bit for bit: {errors:?}");
        assert!(max_relative_error(&[1.0, 2.0], &[1.0, 2.2]) > 0.09);
        // Entries near zero are judged against 1% of the largest.
        assert!((max_relative_error(&[1e-9, 100.0], &[0.0, 100.0]) - 1e-9).abs() < 1e-12);
    }

    /// `bench scan --check` and the CUDA test judge the kernel itself: every shape they check
    /// is one the dispatch sends to the kernel, and the kernel's guard admits nothing wider
    /// than what they check (d_state <= 16).
    #[test]
    fn the_check_shapes_are_what_the_kernel_guard_admits() {
        for [_, _, e, n] in CHECK_SHAPES {
            assert!(fused_verified(e, n), "[.., {e}, {n}] is checked but would take the tensor-op scan");
        }
        let widths: Vec<usize> = CHECK_SHAPES.iter().map(|s| s[2]).collect();
        assert!(widths.iter().any(|e| e % 32 != 0), "a partial last warp is checked");
        assert!(widths.iter().any(|e| e % 32 == 0 && e % 128 != 0), "whole idle warps in the last cube are checked");
        let max_state = CHECK_SHAPES.iter().map(|s| s[3]).max().unwrap();
        assert!(!fused_verified(128, max_state + 1), "a d_state above the checked ones takes the tensor-op scan");
        assert!(!fused_verified(0, 16) && !fused_verified(128, 0));
    }

    /// The fused CUDA kernels against the tensor-op scan, forward and every gradient, on the
    /// GPU. Skips (with a notice on stderr) where there is no CUDA device, as on CI.
    #[cfg(feature = "cuda")]
    #[test]
    fn fused_scan_equals_the_tensor_scan_on_cuda() {
        let Some(device) = crate::runtime::device::gpu_or_skip("fused_scan_equals_the_tensor_scan_on_cuda") else { return };
        for (seed, dims) in CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_modes::<crate::runtime::CudaBackend>(dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(CHUNK));
            for (name, err) in COMPARED.iter().zip(errors) {
                assert!(err <= 1e-4, "{name} at [b, l, e, n] = {dims:?}: relative error {err:.2e}");
            }
        }
        for (seed, (members, dims)) in STACKED_CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_stacked_modes::<crate::runtime::CudaBackend>(members, dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(CHUNK));
            for (name, err) in COMPARED.iter().zip(errors) {
                assert!(err <= 1e-4, "{name} at {members} members of {dims:?}: relative error {err:.2e}");
            }
        }
        // Δ given before softplus (the models' way): our CUDA C++ applies it as it reads Δ.
        for (seed, (members, dims)) in STACKED_CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_raw_delta_modes::<crate::runtime::CudaBackend>(members, dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(CHUNK));
            for (name, err) in COMPARED.iter().zip(errors) {
                assert!(err <= 1e-4, "{name} at {members} members of {dims:?}, Δ raw: relative error {err:.2e}");
            }
            // And gated (Mamba's whole scan): our CUDA C++ gates y as it writes it.
            let errors = compare_gated_modes::<crate::runtime::CudaBackend>(members, dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(CHUNK));
            for (name, err) in COMPARED_GATED.iter().zip(errors) {
                assert!(err <= 1e-4, "{name} at {members} members of {dims:?}, gated: relative error {err:.2e}");
            }
        }
    }

    /// A stacked scan is its members' scans: each member's rows of the stacked result equal a
    /// plain scan of that member's operands alone (f64: exact up to summation order).
    #[test]
    fn a_stacked_scan_is_its_members_scans() {
        let (members, dims) = (3, [2, 9, 5, 3]);
        let stacked = random_stacked_inputs::<B>(members, dims, 4, &NdArrayDevice::Cpu);
        let y = selective_scan(stacked.clone(), ScanMode::Chunked(4));
        let [b, _, e, _] = dims;
        for m in 0..members {
            let rows = |t: &Tensor<B, 3>| t.clone().narrow(0, m * b, b);
            let alone = ScanInputs { x: rows(&stacked.x), delta: rows(&stacked.delta), a: stacked.a.clone().narrow(0, m * e, e), b_in: rows(&stacked.b_in), c: rows(&stacked.c), d: stacked.d.clone().narrow(0, m * e, e) };
            let want: Vec<f64> = naive_scan(&alone).into_data().iter::<f64>().collect();
            let got: Vec<f64> = rows(&y).into_data().iter::<f64>().collect();
            assert!(max_relative_error(&got, &want) < 1e-12, "member {m}");
        }
        let errors = compare_stacked_modes::<B>(members, dims, 5, &NdArrayDevice::Cpu, ScanMode::Sequential, ScanMode::Chunked(4));
        assert!(errors.iter().all(|&e| e < 1e-9), "{errors:?}");
    }
}

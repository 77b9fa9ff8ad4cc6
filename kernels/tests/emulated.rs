//! The fused kernels (scan, LayerNorm, attention, causal conv, the optimiser step, column sums), as compiled for an
//! sm_90 GPU, run on the CPU (`icl-lab-emu`, kernels/emu) and checked against plain f64 references whose
//! gradients are themselves checked by finite differences. On a GPU the same comparisons are
//! `icl-lab bench scan|attention|layer-norm|adam --check`; here they run in CI, with no GPU:
//! the kernels' indexing, chunking, warp sums and idle lanes, exactly as CubeCL generates
//! them (timing and memory ordering aside).
#![cfg(feature = "cuda")]
// Index loops mirror the kernels' own indexing.
#![allow(clippy::needless_range_loop)]

use icl_lab_emu as emu_runtime;

use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use emu_runtime::{EmuBackend as B, EmuDevice};
use icl_lab_kernels::adam::{AdamKernels, AdamParam, AdamSettings};
use icl_lab_kernels::attention::AttentionKernels;
use icl_lab_kernels::layer_norm::LayerNormKernels;
use icl_lab_kernels::scan::{Layout, Scan, ScanKernels, TimeSplit};
use rand::{Rng, SeedableRng};

/// A scan's operands in f64, row-major as the kernels take them: x, Δ `[b, l, e]`, A
/// `[k·e, n]`, B, C `[b, l, n]`, D `[k·e]`, for `k` members over the batch rows.
#[derive(Clone)]
struct Operands {
    dims: [usize; 4],
    members: usize,
    x: Vec<f64>,
    delta: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    d: Vec<f64>,
}

/// y and the six gradients given ∂L/∂y.
struct Reference {
    y: Vec<f64>,
    grads: [Vec<f64>; 6],
}

impl Operands {
    /// Operands as the models make them: Δ after softplus (positive), A = -exp(A_log) (negative).
    fn random([nb, l, e, n]: [usize; 4], members: usize, seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut v = |len: usize, lo: f64, hi: f64| (0..len).map(|_| rng.random_range(lo..hi)).collect::<Vec<f64>>();
        Operands {
            dims: [nb, l, e, n],
            members,
            x: v(nb * l * e, -1.0, 1.0),
            delta: v(nb * l * e, 0.01, 0.6),
            a: v(members * e * n, -2.0, -0.05),
            b: v(nb * l * n, -1.0, 1.0),
            c: v(nb * l * n, -1.0, 1.0),
            d: v(members * e, -1.0, 1.0),
        }
    }

    /// The scan and its gradients by the adjoint recurrence, in f64.
    fn reference(&self, dy: &[f64]) -> Reference {
        let [nb, l, e, n] = self.dims;
        let rows_per_member = nb / self.members;
        let (mut y, mut gx, mut gdelta) = (vec![0.0; nb * l * e], vec![0.0; nb * l * e], vec![0.0; nb * l * e]);
        let (mut ga, mut gb, mut gc, mut gd) = (vec![0.0; self.a.len()], vec![0.0; nb * l * n], vec![0.0; nb * l * n], vec![0.0; self.d.len()]);
        for bi in 0..nb {
            let m = bi / rows_per_member;
            for ei in 0..e {
                let a = |j: usize| self.a[(m * e + ei) * n + j];
                let at = |t: usize| (bi * l + t) * e + ei;
                let bc = |t: usize, j: usize| (bi * l + t) * n + j;
                // h[t + 1] is the state after step t; h[0] = 0.
                let mut h = vec![vec![0.0; n]; l + 1];
                for t in 0..l {
                    let (dt, x) = (self.delta[at(t)], self.x[at(t)]);
                    let mut out = self.d[m * e + ei] * x;
                    for j in 0..n {
                        h[t + 1][j] = (dt * a(j)).exp() * h[t][j] + dt * self.b[bc(t, j)] * x;
                        out += self.c[bc(t, j)] * h[t + 1][j];
                    }
                    y[at(t)] = out;
                }
                let mut carry = vec![0.0; n];
                for t in (0..l).rev() {
                    let (dt, x, g_y) = (self.delta[at(t)], self.x[at(t)], dy[at(t)]);
                    gd[m * e + ei] += g_y * x;
                    gx[at(t)] += self.d[m * e + ei] * g_y;
                    for j in 0..n {
                        let decay = (dt * a(j)).exp();
                        let g = carry[j] + g_y * self.c[bc(t, j)];
                        gc[bc(t, j)] += g_y * h[t + 1][j];
                        gx[at(t)] += g * dt * self.b[bc(t, j)];
                        gdelta[at(t)] += g * (a(j) * decay * h[t][j] + self.b[bc(t, j)] * x);
                        ga[(m * e + ei) * n + j] += g * dt * decay * h[t][j];
                        gb[bc(t, j)] += g * dt * x;
                        carry[j] = g * decay;
                    }
                }
            }
        }
        Reference { y, grads: [gx, gdelta, ga, gb, gc, gd] }
    }

    fn fields_mut(&mut self) -> [&mut Vec<f64>; 6] {
        [&mut self.x, &mut self.delta, &mut self.a, &mut self.b, &mut self.c, &mut self.d]
    }

    /// The operands as the kernels' raw tensors on the emulated device.
    fn tensors(&self) -> Scan<burn::tensor::ops::FloatTensor<B>> {
        let [nb, l, e, n] = self.dims;
        Scan {
            x: device(&self.x, [nb, l, e]),
            delta: device(&self.delta, [nb, l, e]),
            a: device(&self.a, [self.members * e, n]),
            b: device(&self.b, [nb, l, n]),
            c: device(&self.c, [nb, l, n]),
            d: device(&self.d, [self.members * e]),
        }
    }
}

fn read(t: burn::tensor::ops::FloatTensor<B>) -> Vec<f64> {
    let t = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(t));
    let n = t.shape().num_elements();
    t.reshape([n]).into_data().convert::<f32>().to_vec::<f32>().expect("f32 data").into_iter().map(f64::from).collect()
}

/// max |got - want| / (max |want| + 1e-3), the error the GPU checks bound by 1e-4.
fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())) + 1e-3;
    got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((g - w).abs())) / scale
}

const NAMES: [&str; 6] = ["x", "delta", "A", "B", "C", "D"];

/// Runs both kernels of `layout` on the emulator and compares y and every gradient.
fn check(dims: [usize; 4], members: usize, layout: Layout, seed: u64) {
    check_split(dims, members, layout, TimeSplit::Auto, TimeSplit::Auto, false, seed)
}

fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// [`check`] with the forward split over time by `forward` and the backward by `backward`.
/// With `raw_delta`, the kernels get Δ before softplus (values either side of 0) and apply
/// it themselves: y as the reference's on softplus(Δ), ∂Δ the raw Δ's (times σ(Δ)).
fn check_split(dims: [usize; 4], members: usize, layout: Layout, forward: TimeSplit, backward: TimeSplit, raw_delta: bool, seed: u64) {
    check_form(dims, members, layout, [forward, backward], raw_delta, false, seed)
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// [`check_split`], and with `gate` the output gated by z (U(-4, 4)), `y·silu(z)`: z a slice
/// of rows twice as wide (as Mamba's is), ∂y given of the gated output, and ∂z checked too.
fn check_form(dims: [usize; 4], members: usize, layout: Layout, [forward, backward]: [TimeSplit; 2], raw_delta: bool, gate: bool, seed: u64) {
    emu_runtime::set_execute(true);
    let mut ops = Operands::random(dims, members, seed);
    let [nb, l, e, _] = dims;
    let dout = Operands::random([nb, l, e, 1], 1, seed + 1).x;
    let z: Vec<f64> = Operands::random([nb, l, e, 1], 1, seed + 2).x.iter().map(|v| 4.0 * v).collect();
    let silu = |v: f64| v * sigmoid(v);
    // The ungated y's gradient: through the gate when there is one.
    let dy: Vec<f64> = if gate { dout.iter().zip(&z).map(|(g, &v)| g * silu(v)).collect() } else { dout.clone() };
    let raw: Vec<f64> = ops.delta.iter().map(|d| 6.0 * d - 1.8).collect();
    if raw_delta {
        ops.delta = raw.iter().map(|&v| softplus(v)).collect();
    }
    let mut want = ops.reference(&dy);
    if raw_delta {
        ops.delta = raw.clone();
        want.grads[1] = want.grads[1].iter().zip(&raw).map(|(g, &v)| g * sigmoid(v)).collect();
    }
    let want_dz: Vec<f64> = (0..dout.len()).map(|i| dout[i] * want.y[i] * sigmoid(z[i]) * (1.0 + z[i] * (1.0 - sigmoid(z[i])))).collect();
    if gate {
        want.y = want.y.iter().zip(&z).map(|(y, &v)| y * silu(v)).collect();
    }
    let inp = ops.tensors();
    // z in the upper half of [nb, l, 2e] rows (the lower half other values).
    let wide: Vec<f64> = (0..nb * l).flat_map(|r| (0..e).map(move |i| -(i as f64)).chain(z[r * e..(r + 1) * e].to_vec())).collect();
    let gate_t = gate.then(|| Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(device(&wide, [nb, l, 2 * e]))).narrow(2, e, e).into_primitive().tensor());
    let (y, saved) = B::scan_forward(inp.clone(), gate_t.clone(), raw_delta, true, layout, forward);
    let dy_t = emu_tensor::<B, 3>(&dout, [nb, l, e]);
    let (grads, dz) = B::scan_backward(inp, gate_t, raw_delta, saved.expect("saved states"), dy_t.into_primitive().tensor(), backward);
    let what = format!("{layout} {dims:?} x{members} split {forward}/{backward}{}{}", if raw_delta { ", Δ raw" } else { "" }, if gate { ", gated" } else { "" });
    let err = relative_error(&read(y), &want.y);
    assert!(err < 1e-4, "{what}: y off by {err:.2e}");
    for ((name, got), want) in NAMES.iter().zip(grads.into_array()).zip(&want.grads) {
        let err = relative_error(&read(got), want);
        assert!(err < 1e-4, "{what}: ∂{name} off by {err:.2e}");
    }
    assert_eq!(dz.is_some(), gate, "{what}: ∂z comes back exactly for a gated scan");
    if let Some(dz) = dz {
        let err = relative_error(&read(dz), &want_dz);
        assert!(err < 1e-4, "{what}: ∂z off by {err:.2e}");
    }
}

/// Checks `grads` (∂loss/∂inputs) against central finite differences of `loss`.
fn check_by_finite_differences(what: &str, inputs: &[Vec<f64>], grads: &[Vec<f64>], loss: impl Fn(&[Vec<f64>]) -> f64) {
    for (k, grad) in grads.iter().enumerate() {
        for i in 0..grad.len() {
            let (mut up, mut down) = (inputs.to_vec(), inputs.to_vec());
            up[k][i] += 1e-6;
            down[k][i] -= 1e-6;
            let numeric = (loss(&up) - loss(&down)) / 2e-6;
            assert!((numeric - grad[i]).abs() < 1e-6 * (1.0 + numeric.abs()), "{what}: ∂input {k}[{i}]: analytic {} vs finite difference {numeric}", grad[i]);
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `len` values uniform in [lo, hi) from `seed`.
fn uniform(len: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// `v` as an f32 tensor of backend `A` on the emulator.
fn emu_tensor<A: burn::tensor::backend::Backend<Device = EmuDevice>, const D: usize>(v: &[f64], shape: [usize; D]) -> Tensor<A, D> {
    Tensor::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), shape), &EmuDevice)
}

/// A tensor's values, row-major, as f64.
fn host<K: burn::tensor::backend::Backend, const D: usize>(t: Tensor<K, D>) -> Vec<f64> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32").into_iter().map(f64::from).collect()
}

/// `v` as a tensor of `shape` on the emulated device, the raw primitive the kernels take.
fn device<const D: usize>(v: &[f64], shape: [usize; D]) -> burn::tensor::ops::FloatTensor<B> {
    emu_tensor::<B, D>(v, shape).into_primitive().tensor()
}

#[test]
fn the_f64_scan_gradients_match_finite_differences() {
    let ops = Operands::random([2, 5, 3, 4], 2, 7);
    let dy = Operands::random([2, 5, 3, 1], 1, 8).x;
    let grads = ops.reference(&dy).grads;
    let inputs: Vec<Vec<f64>> = [&ops.x, &ops.delta, &ops.a, &ops.b, &ops.c, &ops.d].map(|v| v.clone()).to_vec();
    check_by_finite_differences("scan", &inputs, &grads, |v| {
        let mut o = ops.clone();
        for (field, value) in o.fields_mut().into_iter().zip(v) {
            *field = value.clone();
        }
        dot(&o.reference(&dy).y, &dy)
    });
}

// Shapes: e not a multiple of 32 (idle lanes in the last warp), l not a multiple of either
// layout's chunk (a short last chunk), two members over four batch rows, and each state size
// the per-state kernels take.

#[test]
fn per_channel_kernels_match_the_reference() {
    check([2, 37, 40, 16], 1, Layout::PerChannel, 1);
    check([4, 19, 33, 16], 2, Layout::PerChannel, 2);
    check([2, 21, 20, 8], 1, Layout::PerChannel, 3);
    check([2, 9, 12, 3], 1, Layout::PerChannel, 4);
    // Our CUDA C++ takes N from 4 to 32 in steps of 4 (N = 3 above runs CubeCL's kernel).
    check([2, 13, 36, 32], 1, Layout::PerChannel, 8);
    check([3, 10, 7, 4], 1, Layout::PerChannel, 9);
    // N = 12: three threads a channel (4 entries each), cubes of 96.
    check([2, 11, 45, 12], 1, Layout::PerChannel, 10);
}

// Split over time: at these few channels `Auto` makes every chunk a segment (above); here
// whole scans, and segments of several chunks with a short last one (16 + 16 + 5 steps, two
// members), each split of the forward paired with another of the backward.
#[test]
fn per_channel_kernels_split_over_time_match_the_reference() {
    let one = TimeSplit::Segments(1);
    check_split([2, 37, 40, 16], 1, Layout::PerChannel, one, one, false, 11);
    check_split([2, 37, 40, 16], 1, Layout::PerChannel, TimeSplit::Segments(3), one, false, 12);
    check_split([4, 37, 33, 8], 2, Layout::PerChannel, one, TimeSplit::Segments(3), false, 13);
    check_split([2, 30, 12, 32], 1, Layout::PerChannel, TimeSplit::Segments(2), TimeSplit::Auto, false, 14);
}

// Δ given raw, softplus applied by the scan: in our CUDA C++'s every pass (whole, and split
// over time both ways, with the forward's channels split over threads at N = 16), and around
// the kernels that take Δ applied (CubeCL's per channel at N = 3, per state).
#[test]
fn scans_of_a_raw_delta_apply_softplus() {
    let one = TimeSplit::Segments(1);
    check_split([2, 37, 40, 16], 1, Layout::PerChannel, one, one, true, 15);
    check_split([4, 37, 33, 8], 2, Layout::PerChannel, TimeSplit::Segments(3), TimeSplit::Segments(3), true, 16);
    check_split([2, 9, 12, 3], 1, Layout::PerChannel, one, one, true, 17);
    check_split([4, 19, 33, 16], 2, Layout::PerState, one, one, true, 18);
}

// The gate y·silu(z) (Mamba's whole scan: Δ raw too): inside our CUDA C++'s passes (whole,
// split over time both ways with the backward's first pass gating ∂y, the forward's channels
// split over threads at N = 16), and around the kernels without it (CubeCL's per channel at
// N = 3, per state).
#[test]
fn gated_scans_match_the_reference() {
    let one = TimeSplit::Segments(1);
    check_form([2, 37, 40, 16], 1, Layout::PerChannel, [one, one], true, true, 21);
    check_form([4, 37, 33, 8], 2, Layout::PerChannel, [TimeSplit::Segments(3), TimeSplit::Segments(3)], true, true, 22);
    // e = 128: z starts 512 bytes into its rows, on CubeCL's alignment, so its slice is a view.
    check_form([2, 19, 128, 16], 1, Layout::PerChannel, [one, TimeSplit::Segments(2)], false, true, 23);
    check_form([2, 9, 12, 3], 1, Layout::PerChannel, [one, one], true, true, 24);
    check_form([4, 19, 33, 16], 2, Layout::PerState, [one, one], true, true, 25);
}

/// The scan tests again with every channel's state split over 4-entry threads in both passes,
/// so that the backward's sums of the groups' parts (of ∂x and ∂Δ) run
/// here too: by default its threads hold a whole state. `ICL_LAB_SCAN_ENTRIES` is read once a
/// process, hence a process of its own (this test binary, filtered to the scan tests).
#[test]
fn scans_with_states_split_over_threads_match_the_reference() {
    if std::env::var_os("ICL_LAB_SCAN_ENTRIES").is_some() {
        return; // the child, or a caller who chose the split: the other tests run under it
    }
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["scan", "per_channel", "--test-threads", "2"])
        .env("ICL_LAB_SCAN_ENTRIES", "4")
        .output()
        .expect("run the scan tests in a child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the scan tests with 4-entry threads failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for name in ["gated_scans_match_the_reference", "scans_of_a_raw_delta_apply_softplus", "per_channel_kernels_split_over_time_match_the_reference"] {
        assert!(stdout.contains(&format!("test {name} ... ok")), "{name} did not run with 4-entry threads:\n{stdout}");
    }
}

#[test]
fn per_state_kernels_match_the_reference() {
    check([2, 37, 40, 16], 1, Layout::PerState, 5);
    check([4, 19, 33, 16], 2, Layout::PerState, 6);
    check([2, 21, 20, 8], 1, Layout::PerState, 7);
}

/// LayerNorm over rows of `e` (biased variance), γ and β per member (`rows` split into
/// `γ.len() / e` equal blocks): y and ∂x, ∂γ, ∂β given ∂y.
fn layer_norm_reference(x: &[f64], gamma: &[f64], beta: &[f64], e: usize, dy: &[f64], eps: f64) -> (Vec<f64>, [Vec<f64>; 3]) {
    let rows = x.len() / e;
    let per_member = rows / (gamma.len() / e);
    let (mut y, mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; x.len()], vec![0.0; gamma.len()], vec![0.0; beta.len()]);
    for r in 0..rows {
        let (xs, g0) = (&x[r * e..(r + 1) * e], (r / per_member) * e);
        let mean = xs.iter().sum::<f64>() / e as f64;
        let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / e as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        let xhat: Vec<f64> = xs.iter().map(|v| (v - mean) * rstd).collect();
        let dys = &dy[r * e..(r + 1) * e];
        let dxhat: Vec<f64> = (0..e).map(|i| dys[i] * gamma[g0 + i]).collect();
        let (m1, m2) = (dxhat.iter().sum::<f64>() / e as f64, dot(&dxhat, &xhat) / e as f64);
        for i in 0..e {
            y[r * e + i] = xhat[i] * gamma[g0 + i] + beta[g0 + i];
            dx[r * e + i] = rstd * (dxhat[i] - m1 - xhat[i] * m2);
            dg[g0 + i] += dys[i] * xhat[i];
            db[g0 + i] += dys[i];
        }
    }
    (y, [dx, dg, db])
}

#[test]
fn the_f64_layer_norm_gradients_match_finite_differences() {
    let (e, members) = (4, 2);
    let inputs = vec![uniform(6 * e, -1.0, 1.0, 1), uniform(members * e, 0.5, 1.5, 2), uniform(members * e, -0.5, 0.5, 3)];
    let dy = uniform(6 * e, -1.0, 1.0, 4);
    let (_, grads) = layer_norm_reference(&inputs[0], &inputs[1], &inputs[2], e, &dy, 1e-5);
    check_by_finite_differences("layer norm", &inputs, &grads, |v| dot(&layer_norm_reference(&v[0], &v[1], &v[2], e, &dy, 1e-5).0, &dy));
}

/// Both LayerNorm kernels at `[rows, e]` with `members` (γ and β of `members·e`).
fn check_layer_norm(rows: usize, e: usize, members: usize, seed: u64) {
    emu_runtime::set_execute(true);
    let (x, gamma, beta) = (uniform(rows * e, -2.0, 2.0, seed), uniform(members * e, 0.5, 1.5, seed + 1), uniform(members * e, -0.5, 0.5, seed + 2));
    let dy = uniform(rows * e, -1.0, 1.0, seed + 3);
    let (want_y, want) = layer_norm_reference(&x, &gamma, &beta, e, &dy, 1e-5);
    let (y, mean, rstd) = B::layer_norm_forward(device(&x, [rows, e]), device(&gamma, [members * e]), device(&beta, [members * e]), 1e-5);
    let (dx, dg, db) = B::layer_norm_backward(device(&x, [rows, e]), device(&gamma, [members * e]), mean, rstd, device(&dy, [rows, e]));
    for (name, got, want) in [("y", y, &want_y), ("∂x", dx, &want[0]), ("∂γ", dg, &want[1]), ("∂β", db, &want[2])] {
        let err = relative_error(&read(got), want);
        assert!(err < 1e-4, "layer norm [{rows}, {e}] x{members}: {name} off by {err:.2e}");
    }
}

#[test]
fn layer_norm_kernels_match_the_reference() {
    check_layer_norm(21, 64, 1, 11);
    check_layer_norm(20, 96, 2, 12);
    check_layer_norm(3, 1024, 1, 13);
}

/// Causal softmax attention over the packed `qkv` `[b, t, 3·h·d]` (q, k, v side by side, head
/// `hh` at columns `hh·d..`): y `[b, t, h·d]` and ∂qkv given ∂y.
fn attention_reference(qkv: &[f64], [b, t, h, d]: [usize; 4], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let e = h * d;
    let at = |bi: usize, i: usize, part: usize, hh: usize, c: usize| (bi * t + i) * 3 * e + part * e + hh * d + c;
    let (mut y, mut dqkv) = (vec![0.0; b * t * e], vec![0.0; qkv.len()]);
    let scale = 1.0 / (d as f64).sqrt();
    for bi in 0..b {
        for hh in 0..h {
            for i in 0..t {
                let s: Vec<f64> = (0..=i).map(|j| (0..d).map(|c| qkv[at(bi, i, 0, hh, c)] * qkv[at(bi, j, 1, hh, c)]).sum::<f64>() * scale).collect();
                let top = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|v| (v - top).exp()).sum();
                let p: Vec<f64> = s.iter().map(|v| (v - top).exp() / z).collect();
                let out = |c: usize| (bi * t + i) * e + hh * d + c;
                for c in 0..d {
                    y[out(c)] = (0..=i).map(|j| p[j] * qkv[at(bi, j, 2, hh, c)]).sum();
                }
                // ∂s_j = p_j (∂p_j - Σ_k p_k ∂p_k), ∂p_j = ∂y_i · v_j.
                let dp: Vec<f64> = (0..=i).map(|j| (0..d).map(|c| dy[out(c)] * qkv[at(bi, j, 2, hh, c)]).sum()).collect();
                let mix = dot(&p, &dp);
                for j in 0..=i {
                    let ds = p[j] * (dp[j] - mix) * scale;
                    for c in 0..d {
                        dqkv[at(bi, i, 0, hh, c)] += ds * qkv[at(bi, j, 1, hh, c)];
                        dqkv[at(bi, j, 1, hh, c)] += ds * qkv[at(bi, i, 0, hh, c)];
                        dqkv[at(bi, j, 2, hh, c)] += p[j] * dy[out(c)];
                    }
                }
            }
        }
    }
    (y, dqkv)
}

#[test]
fn the_f64_attention_gradients_match_finite_differences() {
    let dims = [2, 4, 2, 3];
    let qkv = uniform(2 * 4 * 3 * 6, -1.0, 1.0, 21);
    let dy = uniform(2 * 4 * 6, -1.0, 1.0, 22);
    let (_, grad) = attention_reference(&qkv, dims, &dy);
    check_by_finite_differences("attention", &[qkv], &[grad], |v| dot(&attention_reference(&v[0], dims, &dy).0, &dy));
}

/// The three attention kernels at `[b, t]` with `h` heads of `d` columns.
fn check_attention([b, t, h, d]: [usize; 4], seed: u64) {
    emu_runtime::set_execute(true);
    let e = h * d;
    let qkv = uniform(b * t * 3 * e, -1.5, 1.5, seed);
    let dy = uniform(b * t * e, -1.0, 1.0, seed + 1);
    let (want_y, want_d) = attention_reference(&qkv, [b, t, h, d], &dy);
    let (y, lse) = B::attention_forward(device(&qkv, [b, t, 3 * e]), h);
    let y_data = read(y.clone());
    let dqkv = B::attention_backward(device(&qkv, [b, t, 3 * e]), y, lse, device(&dy, [b, t, e]), h);
    let err = relative_error(&y_data, &want_y);
    assert!(err < 1e-4, "attention {:?}: y off by {err:.2e}", [b, t, h, d]);
    let err = relative_error(&read(dqkv), &want_d);
    assert!(err < 1e-4, "attention {:?}: ∂qkv off by {err:.2e}", [b, t, h, d]);
}

#[test]
fn attention_kernels_match_the_reference() {
    // Sequences shorter and longer than a cube's rows; every head size the kernels take.
    check_attention([2, 9, 2, 16], 31);
    check_attention([1, 41, 1, 8], 32);
    check_attention([1, 19, 2, 32], 33);
    check_attention([1, 7, 1, 64], 34);
    // Three tiles, the last partial.
    check_attention([1, 70, 1, 16], 35);
}

#[test]
fn the_adam_kernels_match_the_reference() {
    emu_runtime::set_execute(true);
    // The last case has more parameters than a launch takes (icl_lab_kernels::adam's GROUP)
    // and two step numbers (a parameter that joined late), so groups split both ways.
    let many: Vec<Vec<usize>> = (0..37).map(|i| vec![1 + (i * 7) % 23, 1 + i % 3]).collect();
    for (members, shapes) in [(1, vec![vec![5, 7], vec![13], vec![2, 3, 4]]), (2, vec![vec![4, 7], vec![6], vec![2, 3, 4]]), (1, many)] {
        let s = AdamSettings { lr: 1e-2, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, max_norm: 0.5, members };
        let time_of = |k: usize| if k % 5 == 4 { 2 } else { 3 };
        let data: Vec<[Vec<f64>; 4]> = shapes
            .iter()
            .enumerate()
            .map(|(i, shape)| {
                let n: usize = shape.iter().product();
                let seed = 40 + 4 * i as u64;
                [uniform(n, -1.0, 1.0, seed), uniform(n, -2.0, 2.0, seed + 1), uniform(n, -0.1, 0.1, seed + 2), uniform(n, 0.0, 0.01, seed + 3)]
            })
            .collect();
        // Each member's norm over its part (the first axis's rows) of every gradient.
        let norms: Vec<f64> = (0..members)
            .map(|m| data.iter().map(|[_, g, _, _]| g.chunks(g.len() / members).nth(m).unwrap().iter().map(|v| v * v).sum::<f64>()).sum::<f64>().sqrt())
            .collect();
        // The kernels see a parameter's elements in order (member m's rows, the first axis,
        // are the m-th block of them), so flat tensors stand for any shape.
        let params = data
            .iter()
            .enumerate()
            .map(|(k, [p, g, m, v])| {
                let flat = |values: &Vec<f64>| device(values, [values.len()]);
                AdamParam { value: flat(p), grad: flat(g), moment_1: flat(m), moment_2: flat(v), time: time_of(k) }
            })
            .collect();
        let (updated, got_norms) = B::clipped_adam(params, s);
        let err = relative_error(&read(got_norms), &norms);
        assert!(err < 1e-5, "adam x{members}: norms off by {err:.2e}");
        for (k, (new, [p, g, m, v])) in updated.into_iter().zip(&data).enumerate() {
            let n = p.len();
            let (step_factor, eps_hat) = s.corrections(time_of(k));
            let (mut wp, mut wm, mut wv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            for i in 0..n {
                let member = i / (n / members);
                let coef = (s.max_norm as f64 / (norms[member] + 1e-6)).min(1.0);
                let gi = g[i] * coef;
                wm[i] = m[i] * s.beta_1 as f64 + gi * (1.0 - s.beta_1 as f64);
                wv[i] = v[i] * s.beta_2 as f64 + gi * gi * (1.0 - s.beta_2 as f64);
                wp[i] = p[i] - s.lr as f64 * wm[i] * step_factor as f64 / (wv[i].sqrt() + eps_hat as f64);
            }
            for (name, got, want) in [("value", new.value, &wp), ("moment 1", new.moment_1, &wm), ("moment 2", new.moment_2, &wv)] {
                let err = relative_error(&read(got), want);
                assert!(err < 1e-5, "adam x{members}, parameter {k}: {name} off by {err:.2e}");
            }
        }
    }
}

#[test]
fn column_sums_match_the_reference() {
    emu_runtime::set_execute(true);
    // One pass, and two (more rows than one pass takes: partial sums per chunk, then theirs);
    // columns off the 32 a cube takes.
    for (rows, cols, seed) in [(100, 40, 51), (3_000, 33, 52)] {
        let x = uniform(rows * cols, -1.0, 1.0, seed);
        let want: Vec<f64> = (0..cols).map(|c| (0..rows).map(|r| x[r * cols + c]).sum()).collect();
        let got = read(icl_lab_kernels::column_sum::column_sum(device(&x, [rows, cols])));
        let err = relative_error(&got, &want);
        assert!(err < 1e-5, "column sum [{rows}, {cols}]: off by {err:.2e}");
        // Split in two by the last pass (a split inside a cube's 32 columns too).
        for split in [1, 7, cols - 1] {
            let (head, tail) = icl_lab_kernels::column_sum::column_sums(device(&x, [rows, cols]), split);
            let (head, tail) = (read(head), read(tail));
            assert_eq!((head.len(), tail.len()), (split, cols - split));
            let err = relative_error(&[head, tail].concat(), &want);
            assert!(err < 1e-5, "column sums [{rows}, {cols}] split at {split}: off by {err:.2e}");
        }
    }
}

/// The causal depthwise conv1d of x `[b, l, c]` with w `[c, k]` and bias `[c]`: y and ∂x,
/// ∂w, ∂bias given ∂y.
fn conv_reference(x: &[f64], w: &[f64], bias: &[f64], [b, l, c, k]: [usize; 4], dy: &[f64]) -> (Vec<f64>, [Vec<f64>; 3]) {
    let (mut y, mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; c]);
    for bi in 0..b {
        for t in 0..l {
            for ch in 0..c {
                let at = |t: usize| (bi * l + t) * c + ch;
                let mut out = bias[ch];
                for j in 0..k {
                    // Tap j reads x at t - (k - 1 - j).
                    if let Some(src) = (t + j + 1).checked_sub(k) {
                        out += w[ch * k + j] * x[at(src)];
                        dx[at(src)] += w[ch * k + j] * dy[at(t)];
                        dw[ch * k + j] += x[at(src)] * dy[at(t)];
                    }
                }
                y[at(t)] = out;
                db[ch] += dy[at(t)];
            }
        }
    }
    (y, [dx, dw, db])
}

#[test]
fn the_f64_conv_gradients_match_finite_differences() {
    let dims = [2, 5, 3, 4];
    let inputs = vec![uniform(30, -1.0, 1.0, 61), uniform(12, -1.0, 1.0, 62), uniform(3, -1.0, 1.0, 63)];
    let dy = uniform(30, -1.0, 1.0, 64);
    let (_, grads) = conv_reference(&inputs[0], &inputs[1], &inputs[2], dims, &dy);
    check_by_finite_differences("conv", &inputs, &grads, |v| dot(&conv_reference(&v[0], &v[1], &v[2], dims, &dy).0, &dy));
}

#[test]
fn causal_conv_kernels_match_the_reference() {
    use icl_lab_kernels::conv::CausalConvKernels;
    emu_runtime::set_execute(true);
    // Sequences shorter and longer than a backward piece (128 steps), channels off a cube's 256.
    for (dims, seed) in [([3, 37, 40, 4], 71), ([2, 300, 260, 4], 72), ([1, 9, 5, 2], 73)] {
        let [b, l, c, k] = dims;
        let (x, w, bias) = (uniform(b * l * c, -1.0, 1.0, seed), uniform(c * k, -1.0, 1.0, seed + 1), uniform(c, -1.0, 1.0, seed + 2));
        let dy = uniform(b * l * c, -1.0, 1.0, seed + 3);
        let (want_y, want) = conv_reference(&x, &w, &bias, dims, &dy);
        let y = B::causal_conv_forward(device(&x, [b, l, c]), device(&w, [c, k]), device(&bias, [c]));
        let (dx, dw, db) = B::causal_conv_backward(device(&x, [b, l, c]), device(&w, [c, k]), device(&dy, [b, l, c]));
        for (name, got, want) in [("y", y, &want_y), ("∂x", dx, &want[0]), ("∂w", dw, &want[1]), ("∂bias", db, &want[2])] {
            let err = relative_error(&read(got), want);
            assert!(err < 1e-4, "causal conv {dims:?}: {name} off by {err:.2e}");
        }
    }
}

#[test]
fn stacked_members_convolve_each_with_its_own_filters() {
    use icl_lab_kernels::conv::CausalConvKernels;
    emu_runtime::set_execute(true);
    // K members of `b` sequences each: sequences longer than a backward piece (two pieces a
    // sequence, so a member's partial sums span several rows), and a single short one.
    for (members, dims, seed) in [(3, [2, 150, 40, 4], 91), (2, [1, 9, 5, 2], 92)] {
        let [b, l, c, k] = dims;
        let (x, w, bias) = (uniform(members * b * l * c, -1.0, 1.0, seed), uniform(members * c * k, -1.0, 1.0, seed + 1), uniform(members * c, -1.0, 1.0, seed + 2));
        let dy = uniform(members * b * l * c, -1.0, 1.0, seed + 3);
        // Each member alone through the reference; its parts of every tensor are consecutive.
        let (mut want_y, mut want) = (Vec::new(), [Vec::new(), Vec::new(), Vec::new()]);
        for m in 0..members {
            let part = |v: &[f64], n: usize| v[m * n..(m + 1) * n].to_vec();
            let (y, grads) = conv_reference(&part(&x, b * l * c), &part(&w, c * k), &part(&bias, c), dims, &part(&dy, b * l * c));
            want_y.extend(y);
            for (all, g) in want.iter_mut().zip(grads) {
                all.extend(g);
            }
        }
        let (kb, kc) = (members * b, members * c);
        let y = B::causal_conv_forward(device(&x, [kb, l, c]), device(&w, [kc, k]), device(&bias, [kc]));
        let (dx, dw, db) = B::causal_conv_backward(device(&x, [kb, l, c]), device(&w, [kc, k]), device(&dy, [kb, l, c]));
        for (name, got, want) in [("y", y, &want_y), ("∂x", dx, &want[0]), ("∂w", dw, &want[1]), ("∂bias", db, &want[2])] {
            let err = relative_error(&read(got), want);
            assert!(err < 1e-4, "causal conv x{members} {dims:?}: {name} off by {err:.2e}");
        }
    }
}

#[test]
fn the_conv_reads_a_column_slice_in_place() {
    use icl_lab_kernels::conv::CausalConvKernels;
    emu_runtime::set_execute(true);
    // x as Mamba's conv meets it: the second half of each row of a wider tensor (in_proj's
    // output, x beside z), a view whose steps lie 2c apart. 128 channels: the slice's ends fall
    // on the 512-byte alignment, so burn's slice is a view, not a copy.
    let [b, l, c, k] = [2, 37, 128, 4];
    let wide = uniform(b * l * 2 * c, -1.0, 1.0, 81);
    let x: Vec<f64> = wide.chunks(2 * c).flat_map(|row| row[c..].to_vec()).collect();
    let (w, bias, dy) = (uniform(c * k, -1.0, 1.0, 82), uniform(c, -1.0, 1.0, 83), uniform(b * l * c, -1.0, 1.0, 84));
    let (want_y, want) = conv_reference(&x, &w, &bias, [b, l, c, k], &dy);
    let slice = || {
        let t = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(device(&wide, [b, l, 2 * c]))).slice([0..b, 0..l, c..2 * c]);
        let x = t.into_primitive().tensor();
        assert_eq!(x.meta.strides().to_vec(), vec![l * 2 * c, 2 * c, 1], "the slice is a view");
        x
    };
    let y = B::causal_conv_forward(slice(), device(&w, [c, k]), device(&bias, [c]));
    let (dx, dw, db) = B::causal_conv_backward(slice(), device(&w, [c, k]), device(&dy, [b, l, c]));
    for (name, got, want) in [("y", y, &want_y), ("∂x", dx, &want[0]), ("∂w", dw, &want[1]), ("∂bias", db, &want[2])] {
        let err = relative_error(&read(got), want);
        assert!(err < 1e-4, "causal conv of a column slice: {name} off by {err:.2e}");
    }
}

/// The differentiable op on `A` (autodiff over the emulated backend, with or without fusion):
/// y and the three gradients of Σ y·∂y through burn's autodiff.
fn conv_through_autodiff<A: burn::tensor::backend::AutodiffBackend<Device = EmuDevice> + icl_lab_kernels::conv::FusedCausalConv>(
    x: &[f64],
    w: &[f64],
    bias: &[f64],
    [b, l, c, k]: [usize; 4],
    dy: &[f64],
) -> (Vec<f64>, [Vec<f64>; 3]) {
    let (xt, wt, bt) = (emu_tensor::<A, 3>(x, [b, l, c]).require_grad(), emu_tensor::<A, 2>(w, [c, k]).require_grad(), emu_tensor::<A, 1>(bias, [c]).require_grad());
    let y = icl_lab_kernels::conv::causal_conv1d(xt.clone(), wt.clone(), bt.clone());
    let grads = (y.clone() * emu_tensor::<A, 3>(dy, [b, l, c])).sum().backward();
    (host(y.inner()), [host(xt.grad(&grads).expect("∂x")), host(wt.grad(&grads).expect("∂w")), host(bt.grad(&grads).expect("∂bias"))])
}

#[test]
fn the_fused_conv_through_autodiff_and_fusion_matches_the_reference() {
    emu_runtime::set_execute(true);
    let dims = [2, 21, 36, 4];
    let [b, l, c, k] = dims;
    let (x, w, bias, dy) = (uniform(b * l * c, -1.0, 1.0, 81), uniform(c * k, -1.0, 1.0, 82), uniform(c, -1.0, 1.0, 83), uniform(b * l * c, -1.0, 1.0, 84));
    let (want_y, want) = conv_reference(&x, &w, &bias, dims, &dy);
    type Plain = burn::backend::Autodiff<B>;
    type Fused = burn::backend::Autodiff<emu_runtime::EmuFusion>;
    for (form, (y, grads)) in [("autodiff", conv_through_autodiff::<Plain>(&x, &w, &bias, dims, &dy)), ("autodiff + fusion", conv_through_autodiff::<Fused>(&x, &w, &bias, dims, &dy))] {
        assert!(relative_error(&y, &want_y) < 1e-4, "{form}: y off by {:.2e}", relative_error(&y, &want_y));
        for (name, got, want) in [("∂x", &grads[0], &want[0]), ("∂w", &grads[1], &want[1]), ("∂bias", &grads[2], &want[2])] {
            let err = relative_error(got, want);
            assert!(err < 1e-4, "{form}: {name} off by {err:.2e}");
        }
    }
}

/// Mamba's gated scan through `selective_scan` on autodiff backend `A`: y and the gradients
/// of Σ y ⊙ dout with respect to x, Δ, A, B, C, D and z.
fn gated_scan_through_autodiff<A: burn::tensor::backend::AutodiffBackend<Device = EmuDevice> + icl_lab_kernels::scan::FusedScan>(ops: &Operands, z: &[f64], dout: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let [nb, l, e, n] = ops.dims;
    let rows = ops.members * e;
    let leaf3 = |v: &[f64], width: usize| emu_tensor::<A, 3>(v, [nb, l, width]).require_grad();
    let (x, delta, b, c, zt) = (leaf3(&ops.x, e), leaf3(&ops.delta, e), leaf3(&ops.b, n), leaf3(&ops.c, n), leaf3(z, e));
    let (a, d) = (emu_tensor::<A, 2>(&ops.a, [rows, n]).require_grad(), emu_tensor::<A, 1>(&ops.d, [rows]).require_grad());
    let y = icl_lab_kernels::scan::selective_scan(x.clone(), delta.clone(), a.clone(), b.clone(), c.clone(), d.clone(), Some(zt.clone()), false);
    let grads = (y.clone() * emu_tensor::<A, 3>(dout, [nb, l, e])).sum().backward();
    let g3 = |t: &Tensor<A, 3>| host(t.grad(&grads).expect("a gradient"));
    let all = vec![g3(&x), g3(&delta), host(a.grad(&grads).expect("∂A")), g3(&b), g3(&c), host(d.grad(&grads).expect("∂D")), g3(&zt)];
    (host(y.inner()), all)
}

// The gated scan whole, as the models call it: through burn's autodiff, and through
// burn-fusion too (which declares the forward's outputs before the kernels run): our CUDA
// C++ (per channel from 32,768 batch x channel pairs, N = 16), the per-state kernels (fewer
// pairs) and CubeCL's per-channel kernel (N = 3).
#[test]
fn gated_scans_through_autodiff_and_fusion_match_the_reference() {
    emu_runtime::set_execute(true);
    type Plain = burn::backend::Autodiff<B>;
    type Fused = burn::backend::Autodiff<emu_runtime::EmuFusion>;
    for (dims, seed) in [([256, 5, 128, 16], 41), ([2, 21, 40, 16], 42), ([2, 9, 12, 3], 44)] {
        let ops = Operands::random(dims, 1, seed);
        let [nb, l, e, _] = dims;
        let dout = Operands::random([nb, l, e, 1], 1, seed + 1).x;
        let z: Vec<f64> = Operands::random([nb, l, e, 1], 1, seed + 2).x.iter().map(|v| 4.0 * v).collect();
        let silu = |v: f64| v * sigmoid(v);
        let dy: Vec<f64> = dout.iter().zip(&z).map(|(g, &v)| g * silu(v)).collect();
        let want = ops.reference(&dy);
        let want_y: Vec<f64> = want.y.iter().zip(&z).map(|(y, &v)| y * silu(v)).collect();
        let want_dz: Vec<f64> = (0..dout.len()).map(|i| dout[i] * want.y[i] * sigmoid(z[i]) * (1.0 + z[i] * (1.0 - sigmoid(z[i])))).collect();
        for (form, (y, grads)) in [("autodiff", gated_scan_through_autodiff::<Plain>(&ops, &z, &dout)), ("autodiff + fusion", gated_scan_through_autodiff::<Fused>(&ops, &z, &dout))] {
            let what = format!("{form} {dims:?}");
            assert!(relative_error(&y, &want_y) < 1e-4, "{what}: y off by {:.2e}", relative_error(&y, &want_y));
            for ((name, got), want) in NAMES.iter().chain(["z"].iter()).zip(&grads).zip(want.grads.iter().chain([&want_dz])) {
                let err = relative_error(got, want);
                assert!(err < 1e-4, "{what}: ∂{name} off by {err:.2e}");
            }
        }
    }
}

/// `v` rounded to TF32 as the tensor cores read it (nearest, ties away from zero).
fn tf32(v: f64) -> f64 {
    let bits = (v as f32).to_bits();
    f64::from(f32::from_bits(bits.wrapping_add(0x1000) & 0xffff_e000))
}

/// A `[batches, rows, cols]` operand, stored either as it is or as the transpose of a
/// `[batches, cols, rows]` tensor (a view whose rows are the contiguous dimension).
fn operand(v: &[f64], [batches, rows, cols]: [usize; 3], transposed: bool) -> burn::tensor::ops::FloatTensor<B> {
    if !transposed {
        return device(v, [batches, rows, cols]);
    }
    let stored: Vec<f64> = (0..batches * cols * rows).map(|i| {
        let (bi, c, r) = (i / (cols * rows), i / rows % cols, i % rows);
        v[(bi * rows + r) * cols + c]
    }).collect();
    let t = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(device(&stored, [batches, cols, rows])));
    t.swap_dims(1, 2).into_primitive().tensor()
}

/// Our matmul kernel on `[ab, m, k] @ [bb, k, n]` (a batch of 1 broadcasts), either operand
/// a transposed view, against f64 on the TF32-rounded inputs (so only the order of f32 sums
/// differs) and on the exact ones (what TF32 costs). With `bias` (`[batch_stride,
/// column_stride]`), the kernel also adds `bias[batch · batch_stride + column · column_stride]`.
fn check_gemm(tiling: &str, [ab, m, k]: [usize; 3], a_transposed: bool, [bb, n]: [usize; 2], b_transposed: bool, bias: Option<[usize; 2]>, seed: u64) {
    let tiling = icl_lab_kernels::gemm::Tiling::parse(tiling).expect("a tiling");
    let (a, b) = (uniform(ab * m * k, -1.0, 1.0, seed), uniform(bb * k * n, -1.0, 1.0, seed + 1));
    let batches = ab.max(bb);
    let [bias_batch, bias_col] = bias.unwrap_or([0, 0]);
    let bias_values = uniform((batches - 1) * bias_batch + (n - 1) * bias_col + 1, -1.0, 1.0, seed + 2);
    let product = |round: fn(f64) -> f64| -> Vec<f64> {
        (0..batches * m * n)
            .map(|i| {
                let (bi, r, c) = (i / (m * n), i / n % m, i % n);
                let (ai, bj) = (if ab == 1 { 0 } else { bi }, if bb == 1 { 0 } else { bi });
                let plus = if bias.is_some() { bias_values[bi * bias_batch + c * bias_col] } else { 0.0 };
                plus + (0..k).map(|j| round(a[(ai * m + r) * k + j]) * round(b[(bj * k + j) * n + c])).sum::<f64>()
            })
            .collect()
    };
    let plus = if bias.is_some() { format!(" + bias by {bias_batch}, {bias_col}") } else { String::new() };
    let what = format!("{} [{ab}, {m}, {k}]{} @ [{bb}, {k}, {n}]{}{plus}", tiling.name(), if a_transposed { "ᵀ" } else { "" }, if b_transposed { "ᵀ" } else { "" });
    let bias = bias.map(|[batch_stride, column_stride]| icl_lab_kernels::gemm::Bias { values: device(&bias_values, [bias_values.len()]), batch_stride, column_stride });
    let got = icl_lab_kernels::gemm::matmul_bias(tiling, operand(&a, [ab, m, k], a_transposed), operand(&b, [bb, k, n], b_transposed), bias).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = read(got);
    let err = relative_error(&got, &product(tf32));
    assert!(err < 2e-6, "{what}: off the TF32 product by {err:.2e}");
    let err = relative_error(&got, &product(|v| v));
    assert!(err < 2e-3, "{what}: off the exact product by {err:.2e}");
}

#[test]
fn our_matmul_kernel_matches_the_reference() {
    emu_runtime::set_execute(true);
    let main = icl_lab_kernels::gemm::DEFAULT;
    // x [b, t, in] @ w: rows of two batches folded into one m, partial tiles in m, n and k.
    check_gemm(main, [2, 40, 36], false, [1, 52], false, None, 61);
    // ∂y @ wᵀ: B read through a transposed view.
    check_gemm(main, [2, 40, 52], false, [1, 36], true, None, 62);
    // xᵀ @ ∂y: A transposed, K long enough to be split over two cubes and summed.
    check_gemm(main, [1, 36, 600], true, [1, 20], false, None, 63);
    // Stacked members: a batch of each side, both transposed.
    check_gemm(main, [3, 20, 16], true, [3, 24], true, None, 64);
    // Other tilings: four stages with more tiles of K than stages, four warps.
    check_gemm("gemm-64x64-w2x2-s4", [1, 70, 200], false, [1, 68], false, None, 65);
    check_gemm("gemm-128x64-w2x2-s3", [1, 130, 64], false, [1, 132], true, None, 66);
    // 64 x 64 warp tiles (4 x 8 MMA tiles a warp), the candidates tests/gpu/gemm.sh times.
    check_gemm("gemm-128x128-w2x2-s3", [1, 72, 96], true, [1, 136], false, None, 67);
}

/// The linear layers' bias in the kernel's epilogue, in each way they place it.
#[test]
fn our_matmul_kernel_adds_a_bias() {
    emu_runtime::set_execute(true);
    let main = icl_lab_kernels::gemm::DEFAULT;
    // A plain layer: one bias for every row of the folded batches, n not whole 8-wide MMA tiles.
    check_gemm(main, [2, 40, 36], false, [1, 52], false, Some([0, 1]), 71);
    // Stacked members: member m's bias at m · n.
    check_gemm(main, [3, 20, 16], false, [3, 24], false, Some([24, 1]), 72);
    // The one-output read-out yᵀ = wᵀ xᵀ: member m's one bias across all its columns.
    check_gemm(main, [3, 1, 20], false, [3, 40], true, Some([1, 0]), 73);
    // K split over cubes: the bias goes into one part of the sum only.
    check_gemm(main, [1, 36, 600], true, [1, 20], false, Some([0, 1]), 74);
    // Different weights but one bias for all batches: the batches are not folded together.
    check_gemm(main, [2, 24, 32], false, [2, 16], false, Some([0, 1]), 75);
}

#[test]
fn our_matmul_kernel_refuses_what_it_cannot_read() {
    let tiling = icl_lab_kernels::gemm::Tiling::parse("gemm-128x64-w2x2-s3").expect("a tiling");
    // k = 6: rows of A are not whole 16-byte copies.
    let err = icl_lab_kernels::gemm::matmul(tiling, device(&[0.0; 12], [1, 2, 6]), device(&[0.0; 24], [1, 6, 4])).err().expect("an error");
    assert!(err.contains("lhs") && err.contains("multiples of 4"), "{err}");
    let err = icl_lab_kernels::gemm::matmul(tiling, device(&[0.0; 16], [1, 2, 8]), device(&[0.0; 36], [1, 9, 4])).err().expect("an error");
    assert!(err.contains("8 columns") && err.contains("9 rows"), "{err}");
    // An empty K: the product is zeros (no kernel runs).
    emu_runtime::set_execute(true);
    let empty = icl_lab_kernels::gemm::matmul(tiling, device(&[], [1, 4, 0]), device(&[], [1, 0, 8])).expect("an empty product");
    assert_eq!(read(empty), vec![0.0; 32]);
    // ... and with a bias, the bias alone in every row.
    let bias = |values: &[f64]| icl_lab_kernels::gemm::Bias { values: device(values, [values.len()]), batch_stride: 0, column_stride: 1 };
    let biased = icl_lab_kernels::gemm::matmul_bias(tiling, device(&[], [1, 4, 0]), device(&[], [1, 0, 8]), Some(bias(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]))).expect("a bias alone");
    assert_eq!(read(biased), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0].repeat(4));
    // A bias too short for the product's columns is refused, naming the index it would read.
    let err = icl_lab_kernels::gemm::matmul_bias(tiling, device(&[0.0; 16], [1, 4, 4]), device(&[0.0; 32], [1, 4, 8]), Some(bias(&[0.0; 7]))).err().expect("an error");
    assert!(err.contains("bias") && err.contains("index 7"), "{err}");
}

/// y = x w + b per member and its gradients given ∂y, in f64: x `[k·rows, d_in]`, w `[k·d_in,
/// d_out]`, b `[k·d_out]`.
fn linear_reference(x: &[f64], w: &[f64], bias: &[f64], [k, rows, d_in, d_out]: [usize; 4], dy: &[f64]) -> (Vec<f64>, [Vec<f64>; 3]) {
    let (mut y, mut dx, mut dw, mut db) = (vec![0.0; k * rows * d_out], vec![0.0; k * rows * d_in], vec![0.0; k * d_in * d_out], vec![0.0; k * d_out]);
    for m in 0..k {
        for r in 0..rows {
            let row = m * rows + r;
            for o in 0..d_out {
                let g = dy[row * d_out + o];
                y[row * d_out + o] = bias[m * d_out + o] + (0..d_in).map(|i| x[row * d_in + i] * w[(m * d_in + i) * d_out + o]).sum::<f64>();
                db[m * d_out + o] += g;
                for i in 0..d_in {
                    dx[row * d_in + i] += g * w[(m * d_in + i) * d_out + o];
                    dw[(m * d_in + i) * d_out + o] += g * x[row * d_in + i];
                }
            }
        }
    }
    (y, [dx, dw, db])
}

/// The linear layer's kernels (`icl_lab_kernels::linear`: our matmul where it takes the
/// operands) through autodiff and fusion against the f64 reference, within TF32's rounding:
/// plain and stacked layers, and the one-output read-out, which takes its own path; with a
/// width of 10, which our kernel refuses (rows not whole 16-byte copies), burn's matmul runs and
/// the bias is added after it.
#[test]
fn linear_layers_match_the_reference() {
    emu_runtime::set_execute(true);
    type Fused = burn::backend::Autodiff<emu_runtime::EmuFusion>;
    fn tensor<const D: usize>(v: &[f64], shape: [usize; D]) -> Tensor<Fused, D> {
        emu_tensor::<Fused, D>(v, shape).require_grad()
    }
    // [members, b, t, d_in, d_out]: b·t rows a member.
    let shapes = [[1, 2, 10, 20, 24], [3, 2, 10, 20, 24], [1, 2, 10, 20, 1], [3, 2, 10, 20, 1], [1, 2, 10, 10, 24], [3, 2, 10, 10, 24]];
    for (seed, [k, b, t, d_in, d_out]) in shapes.into_iter().enumerate() {
        let seed = 90 + 4 * seed as u64;
        let rows = b * t;
        let (x, w, bias, dy) = (uniform(k * rows * d_in, -1.0, 1.0, seed), uniform(k * d_in * d_out, -1.0, 1.0, seed + 1), uniform(k * d_out, -1.0, 1.0, seed + 2), uniform(k * rows * d_out, -1.0, 1.0, seed + 3));
        let (want_y, want) = linear_reference(&x, &w, &bias, [k, rows, d_in, d_out], &dy);
        let (xt, wt, bt) = (tensor(&x, [k * b, t, d_in]), tensor(&w, [k * d_in, d_out]), tensor(&bias, [k * d_out]));
        let y = icl_lab_kernels::linear::linear(xt.clone(), wt.clone(), Some(bt.clone()));
        let grads = (y.clone() * emu_tensor::<Fused, 3>(&dy, [k * b, t, d_out])).sum().backward();
        let what = format!("{k} member(s), [{b}, {t}, {d_in}] -> {d_out}");
        let got = [host(xt.grad(&grads).expect("∂x")), host(wt.grad(&grads).expect("∂w")), host(bt.grad(&grads).expect("∂b"))];
        let err = relative_error(&host(y.inner()), &want_y);
        assert!(err < 2e-3, "{what}: y off by {err:.2e}");
        for (name, got, want) in [("∂x", &got[0], &want[0]), ("∂w", &got[1], &want[1]), ("∂b", &got[2], &want[2])] {
            let err = relative_error(got, want);
            assert!(err < 2e-3, "{what}: {name} off by {err:.2e}");
        }
    }
}

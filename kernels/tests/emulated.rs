//! The fused scan kernels, as compiled for an sm_90 GPU, run on the CPU (`emu_runtime`) and
//! checked against a plain f64 scan whose gradients are themselves checked by finite
//! differences. On a GPU the same comparison is `icl-lab bench scan --check`; here it runs in
//! CI, with no GPU: the kernels' indexing, chunking, warp sums and idle lanes, exactly as
//! CubeCL generates them (timing and memory ordering aside).
#![cfg(feature = "cuda")]
// Index loops mirror the kernels' own indexing.
#![allow(clippy::needless_range_loop)]

mod emu_runtime;

use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use emu_runtime::{EmuBackend as B, EmuDevice};
use icl_lab_kernels::scan::{Layout, Scan, ScanKernels};
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
        fn raw<const D: usize>(v: &[f64], shape: [usize; D]) -> burn::tensor::ops::FloatTensor<B> {
            let data = TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), shape);
            Tensor::<B, D>::from_data(data, &EmuDevice).into_primitive().tensor()
        }
        Scan {
            x: raw(&self.x, [nb, l, e]),
            delta: raw(&self.delta, [nb, l, e]),
            a: raw(&self.a, [self.members * e, n]),
            b: raw(&self.b, [nb, l, n]),
            c: raw(&self.c, [nb, l, n]),
            d: raw(&self.d, [self.members * e]),
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
    emu_runtime::set_execute(true);
    let ops = Operands::random(dims, members, seed);
    let [nb, l, e, _] = dims;
    let dy = Operands::random([nb, l, e, 1], 1, seed + 1).x;
    let want = ops.reference(&dy);
    let inp = ops.tensors();
    let (y, states) = B::scan_forward(inp.clone(), true, layout);
    let dy_t = Tensor::<B, 3>::from_data(TensorData::new(dy.iter().map(|&v| v as f32).collect::<Vec<f32>>(), [nb, l, e]), &EmuDevice);
    let grads = B::scan_backward(inp, states.expect("saved states"), dy_t.into_primitive().tensor());
    let err = relative_error(&read(y), &want.y);
    assert!(err < 1e-4, "{layout} {dims:?} x{members}: y off by {err:.2e}");
    for ((name, got), want) in NAMES.iter().zip(grads.into_array()).zip(&want.grads) {
        let err = relative_error(&read(got), want);
        assert!(err < 1e-4, "{layout} {dims:?} x{members}: ∂{name} off by {err:.2e}");
    }
}

#[test]
fn the_f64_reference_gradients_match_finite_differences() {
    let ops = Operands::random([2, 5, 3, 4], 1, 7);
    let dy = Operands::random([2, 5, 3, 1], 1, 8).x;
    let loss = |o: &Operands| o.reference(&dy).y.iter().zip(&dy).map(|(y, g)| y * g).sum::<f64>();
    let grads = ops.reference(&dy).grads;
    for (k, name) in NAMES.iter().enumerate() {
        for i in 0..grads[k].len() {
            let (mut up, mut down) = (ops.clone(), ops.clone());
            up.fields_mut()[k][i] += 1e-6;
            down.fields_mut()[k][i] -= 1e-6;
            let numeric = (loss(&up) - loss(&down)) / 2e-6;
            assert!((numeric - grads[k][i]).abs() < 1e-6 * (1.0 + numeric.abs()), "∂{name}[{i}]: adjoint {} vs finite difference {numeric}", grads[k][i]);
        }
    }
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
}

#[test]
fn per_state_kernels_match_the_reference() {
    check([2, 37, 40, 16], 1, Layout::PerState, 5);
    check([4, 19, 33, 16], 2, Layout::PerState, 6);
    check([2, 21, 20, 8], 1, Layout::PerState, 7);
}

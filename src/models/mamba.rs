//! Mamba (Gu & Dao 2023) exactly as `mamba_ssm` v1.1.1's `Mamba` class, which the paper's code
//! uses unchanged (paper-spec §6). Numbers in comments are the steps of §6.2.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use super::dense::dense;
use super::fused::on_fused_backend;
use super::init::{Dist, Init};
use super::members::{channels_of, members_of};
use super::pointwise::silu;
use super::scan::{gated_scan_of_raw_delta, ScanInputs, ScanMode};
use super::split::split_last;

/// Sizes of one Mamba mixer (defaults of `mamba_ssm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MambaDims {
    /// D: model width.
    pub d_model: usize,
    /// N: state size per channel (16).
    pub d_state: usize,
    /// K: causal conv width (4).
    pub d_conv: usize,
    /// E / D (2).
    pub expand: usize,
    /// R: rank of the Δ projection (ceil(D / 16)).
    pub dt_rank: usize,
}

impl MambaDims {
    pub fn new(d_model: usize, d_state: usize, d_conv: usize, expand: usize, dt_rank: Option<usize>) -> Self {
        MambaDims { d_model, d_state, d_conv, expand, dt_rank: dt_rank.unwrap_or(d_model.div_ceil(16)) }
    }

    /// E = expand · D.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }
}

/// Δ init range (dt_min, dt_max) and floor of `mamba_ssm`.
const DT_MIN: f32 = 1e-3;
const DT_MAX: f32 = 1e-1;
const DT_FLOOR: f32 = 1e-4;

/// Causal depthwise conv1d over time with left zero padding (PyTorch `Conv1d(groups=E,
/// padding=K-1)` keeping the first L outputs).
#[derive(Module, Debug)]
pub struct CausalConv1d<B: Backend> {
    /// `[E, K]`: weight[c, k] multiplies x[t - K + 1 + k, c].
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> CausalConv1d<B> {
    pub fn new(init: &mut Init<B>, channels: usize, width: usize) -> Self {
        // PyTorch Conv1d default: fan_in = (in_channels / groups) · K = K.
        let dist = Dist::torch_default(width);
        CausalConv1d { weight: init.param([channels, width], dist), bias: init.param([channels], dist) }
    }

    /// # Shapes
    /// - x: `[b, l, c]` -> `[b, l, c]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_with(x, fused_conv_allowed())
    }

    /// [`Self::forward`], on the fused kernels only where `fused` is set (and `B` has them).
    pub fn forward_with(&self, x: Tensor<B, 3>, fused: bool) -> Tensor<B, 3> {
        let [kb, l, c] = x.dims();
        let members = super::members::count(self.weight.dims()[0], c);
        // The fused kernels take a stacked model's members as they come (sequence r with its
        // member's filters).
        let x = if fused {
            match fused_conv(x, self.weight.val(), self.bias.val()) {
                Ok(y) => return y,
                Err(x) => x,
            }
        } else {
            x
        };
        if members > 1 {
            // Depthwise: in tensor ops a stacked model's members are K·c channels over b
            // sequences.
            return members_of(self.forward_with(channels_of(x, members), false), members);
        }
        let b = kb;
        let k = self.weight.dims()[1];
        // The zeros in x's own float type (the device's default may differ: an f64 reference).
        let padded = Tensor::cat(vec![Tensor::zeros([b, k - 1, c], (&x.device(), x.dtype())), x], 1);
        let w = self.weight.val();
        let mut out = self.bias.val().reshape([1, 1, c]).expand([b, l, c]);
        for j in 0..k {
            let tap = w.clone().slice([0..c, j..j + 1]).reshape([1, 1, c]);
            out = out + padded.clone().slice([0..b, j..j + l, 0..c]) * tap;
        }
        out
    }
}

/// Whether the conv may take the fused kernels (`ICL_LAB_CONV=tensor` keeps the tensor ops).
fn fused_conv_allowed() -> bool {
    crate::runtime::fast_path_on!("ICL_LAB_CONV", off: "tensor")
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn conv_on<B: Backend, K: icl_lab_kernels::conv::FusedCausalConv>((x, w, bias): (Tensor<B, 3>, Tensor<B, 2>, Tensor<B, 1>)) -> Result<Tensor<B, 3>, (Tensor<B, 3>, Tensor<B, 2>, Tensor<B, 1>)> {
    use super::fused::cast;
    let x: Tensor<K, 3> = match cast(x) {
        Ok(x) => x,
        Err(x) => return Err((x, w, bias)),
    };
    let (w, bias): (Tensor<K, 2>, Tensor<K, 1>) = (cast(w).unwrap_or_else(|_| unreachable!("B is K")), cast(bias).unwrap_or_else(|_| unreachable!("B is K")));
    Ok(cast(icl_lab_kernels::conv::causal_conv1d(x, w, bias)).unwrap_or_else(|_| unreachable!("B is K")))
}

/// The fused causal conv (`icl_lab_kernels::conv`: one kernel each way, against a `cat`, `k`
/// slices and their autodiff's zero tensors and slice-assigns) when `B` is the CUDA backend
/// (or its emulator) and the filter width suits it, else `x` back.
fn fused_conv<B: Backend>(x: Tensor<B, 3>, w: Tensor<B, 2>, bias: Tensor<B, 1>) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    if !icl_lab_kernels::conv::supports_width(w.dims()[1]) {
        return Err(x);
    }
    on_fused_backend!(conv_on::<B>((x, w, bias))).map_err(|(x, _, _)| x)
}

/// One Mamba mixer (no norm, no residual).
#[derive(Module, Debug)]
pub struct Mamba<B: Backend> {
    pub in_proj: Linear<B>,
    pub conv1d: CausalConv1d<B>,
    pub x_proj: Linear<B>,
    pub dt_proj: Linear<B>,
    /// `[E, N]`; A = -exp(A_log).
    pub a_log: Param<Tensor<B, 2>>,
    /// `[E]`: skip connection.
    pub d: Param<Tensor<B, 1>>,
    pub out_proj: Linear<B>,
    pub d_state: usize,
    pub dt_rank: usize,
    #[module(skip)]
    pub scan: ScanMode,
}

impl<B: Backend> Mamba<B> {
    /// `n_layer` is the count that rescales `out_proj` (paper-spec §3.2, §7 item 8).
    pub fn new(init: &mut Init<B>, dims: MambaDims, n_layer: usize) -> Self {
        let (dm, e, n, r) = (dims.d_model, dims.d_inner(), dims.d_state, dims.dt_rank);
        let in_proj = init.linear(dm, 2 * e, Dist::torch_default(dm), None);
        let conv1d = CausalConv1d::new(init, e, dims.d_conv);
        let x_proj = init.linear(e, r + 2 * n, Dist::torch_default(e), None);
        // dt_proj: weight U(±R^-1/2); bias = softplus⁻¹(dt), dt log-uniform in [1e-3, 1e-1].
        let dt_weight = init.param([r, e], Dist::Uniform((r as f32).powf(-0.5)));
        let dt_bias: Vec<f32> = init
            .values(e, Dist::Range(0.0, 1.0))
            .into_iter()
            .map(|u| {
                let dt = (u * (DT_MAX.ln() - DT_MIN.ln()) + DT_MIN.ln()).exp().max(DT_FLOOR);
                dt + (-(-dt).exp_m1()).ln()
            })
            .collect();
        let dt_proj = Linear {
            weight: dt_weight,
            bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(dt_bias, [e]), init.device()))),
        };
        // S4D-Real: A[c, n] = -(n + 1).
        let a_log: Vec<f32> = (0..e).flat_map(|_| (1..=n).map(|v| (v as f32).ln())).collect();
        let a_log = Param::from_tensor(Tensor::from_data(TensorData::new(a_log, [e, n]), init.device()));
        let out_bound = 1.0 / (e as f32).sqrt() / (n_layer as f32).sqrt();
        Mamba {
            in_proj,
            conv1d,
            x_proj,
            dt_proj,
            a_log,
            d: init.param([e], Dist::Ones),
            out_proj: init.linear(e, dm, Dist::Uniform(out_bound), None),
            d_state: n,
            dt_rank: r,
            scan: ScanMode::for_backend::<B>(init.device()),
        }
    }

    /// # Shapes
    /// - u: `[b, l, D]` -> `[b, l, D]`
    pub fn forward(&self, u: Tensor<B, 3>) -> Tensor<B, 3> {
        let (n, r) = (self.d_state, self.dt_rank);
        let xz = dense(&self.in_proj, u); // 1. (b, l, 2E)
        let e = xz.dims()[2] / 2;
        let [x, z] = split_last(xz, [e, e]);
        let x = silu(self.conv1d.forward(x)); // 2.
        let x_dbl = dense(&self.x_proj, x.clone()); // 3. (b, l, R + 2N)
        let [dt, b_in, c] = split_last(x_dbl, [r, n, n]);
        // 4. Δ before its softplus (the bias inside it): the scan applies softplus (the fused
        // kernels as they read Δ).
        let delta = dense(&self.dt_proj, dt);
        let a = self.a_log.val().exp().neg(); // 5.
        // 6–9: the fused kernels gate y as they write it, reading z in place.
        let y = gated_scan_of_raw_delta(ScanInputs { x, delta, a, b_in, c, d: self.d.val() }, z, self.scan);
        dense(&self.out_proj, y) // 10.
    }
}

/// Shapes `compare_causal_conv` is checked at: (members, `[b, l, c]` of each member, taps).
/// Lengths shorter and longer than the backward kernel's 128-step piece, and off it; channel
/// counts off a cube; the widths the kernels take; a stacked model of 16 Mamba e128 members.
pub const CONV_CHECK_SHAPES: [(usize, [usize; 3], usize); 7] =
    [(1, [1, 1, 8], 4), (1, [3, 37, 96], 4), (1, [2, 82, 256], 4), (1, [2, 300, 33], 2), (1, [1, 1024, 512], 4), (3, [2, 129, 64], 3), (16, [4, 82, 256], 4)];

/// The values `compare_causal_conv` reports, in order.
pub const CONV_COMPARED: [&str; 4] = ["y", "dx", "dw", "dbias"];

/// Largest relative errors ([`super::scan::max_relative_error`]) of [`CausalConv1d`] on
/// backend `B` (`fused`: the kernels where `B` has them) against the tensor-op conv in f64 on
/// the CPU, on random x ~ U(-2, 2), w and bias ~ U(-1, 1): y and the gradients of a fixed
/// random projection of y. `members` stacks that many convs (`models::members`): x
/// `[members·b, l, c]`, w `[members·c, k]`.
pub fn compare_causal_conv<B: burn::tensor::backend::AutodiffBackend>(members: usize, [b, l, c]: [usize; 3], k: usize, seed: u64, device: &B::Device, fused: bool) -> [f64; 4] {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = |n: usize, r: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-r..r)).collect() };
    let (kb, kc) = (members * b, members * c);
    let (x, w, bias, proj) = (uniform(kb * l * c, 2.0), uniform(kc * k, 1.0), uniform(kc, 1.0), uniform(kb * l * c, 1.0));
    fn run<K: burn::tensor::backend::AutodiffBackend>(data: [&[f32]; 4], [kb, l, c, kc, k]: [usize; 5], device: &K::Device, fused: bool) -> [Vec<f64>; 4] {
        let dtype = <K::FloatElem as burn::tensor::Element>::dtype();
        let vector = |v: &[f32]| Tensor::<K, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), (device, dtype));
        let conv = CausalConv1d { weight: Param::from_tensor(vector(data[1]).reshape([kc, k]).require_grad()), bias: Param::from_tensor(vector(data[2]).require_grad()) };
        let x: Tensor<K, 3> = vector(data[0]).reshape([kb, l, c]).require_grad();
        let y = conv.forward_with(x.clone(), fused);
        let grads = (y.clone() * vector(data[3]).reshape([kb, l, c])).sum().backward();
        let host = |d: TensorData| -> Vec<f64> { d.convert::<f64>().iter::<f64>().collect() };
        let grad_of = |g: Option<TensorData>, n: usize| g.map_or_else(|| vec![0.0; n], host);
        [
            host(y.into_data()),
            grad_of(x.grad(&grads).map(|g| g.into_data()), kb * l * c),
            grad_of(conv.weight.val().grad(&grads).map(|g| g.into_data()), kc * k),
            grad_of(conv.bias.val().grad(&grads).map(|g| g.into_data()), kc),
        ]
    }
    let data = [&x[..], &w[..], &bias[..], &proj[..]];
    let dims = [kb, l, c, kc, k];
    let want = run::<burn::backend::Autodiff<burn::backend::NdArray<f64>>>(data, dims, &Default::default(), false);
    let got = run::<B>(data, dims, device, fused);
    std::array::from_fn(|i| super::scan::max_relative_error(&got[i], &want[i]))
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};

    use super::*;

    #[test]
    fn the_conv_comparison_sees_rounding_and_nothing_else() {
        // Same backend and precision: exactly equal.
        assert_eq!(compare_causal_conv::<Autodiff<NdArray<f64>>>(1, [2, 9, 8], 4, 0, &NdArrayDevice::Cpu, true), [0.0; 4]);
        // f32 against f64: rounding only, and it is seen (stacked members too).
        for members in [1, 3] {
            let errors = compare_causal_conv::<Autodiff<NdArray<f32>>>(members, [2, 9, 8], 3, 1, &NdArrayDevice::Cpu, true);
            assert!(errors.iter().all(|&e| e > 0.0 && e < 1e-5), "{members} members: {errors:?}");
        }
    }

    #[test]
    fn the_conv_is_causal_and_each_member_uses_its_own_filter() {
        type B = NdArray<f64>;
        let device = NdArrayDevice::Cpu;
        let (members, [b, l, c], k) = (2, [1, 6, 3], 3);
        let w = Tensor::<B, 2>::random([members * c, k], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
        let bias = Tensor::<B, 1>::random([members * c], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
        let conv = CausalConv1d { weight: Param::from_tensor(w.clone()), bias: Param::from_tensor(bias.clone()) };
        let x = Tensor::<B, 3>::random([members * b, l, c], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
        let y: Vec<f64> = conv.forward_with(x.clone(), false).into_data().to_vec().unwrap();
        let (x, w, bias): (Vec<f64>, Vec<f64>, Vec<f64>) = (x.into_data().to_vec().unwrap(), w.into_data().to_vec().unwrap(), bias.into_data().to_vec().unwrap());
        for m in 0..members {
            for t in 0..l {
                for ch in 0..c {
                    let mut want = bias[m * c + ch];
                    for j in 0..k {
                        // Tap j reads x[t - k + 1 + j]; before the sequence it reads zero.
                        if let Some(src) = (t + j + 1).checked_sub(k) {
                            want += w[(m * c + ch) * k + j] * x[(m * l + src) * c + ch];
                        }
                    }
                    let got = y[(m * l + t) * c + ch];
                    assert!((got - want).abs() < 1e-12, "member {m}, t {t}, channel {ch}: {got} != {want}");
                }
            }
        }
    }

    /// The fused CUDA kernels against the tensor-op conv in f64, forward and gradients, on the
    /// GPU. Skips (with a notice on stderr) where there is no CUDA device, as on CI.
    #[cfg(feature = "cuda")]
    #[test]
    fn fused_conv_equals_the_tensor_ops_on_cuda() {
        let Some(device) = crate::runtime::device::gpu_or_skip("fused_conv_equals_the_tensor_ops_on_cuda") else { return };
        for (seed, (members, dims, k)) in CONV_CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_causal_conv::<crate::runtime::CudaBackend>(members, dims, k, seed as u64, &device, true);
            for (name, err) in CONV_COMPARED.iter().zip(errors) {
                assert!(err <= 1e-4, "{name} at {members} x [b, l, c] = {dims:?}, k = {k}: relative error {err:.2e}");
            }
        }
    }
}

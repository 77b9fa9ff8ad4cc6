//! Mamba (Gu & Dao 2023) exactly as `mamba_ssm` v1.1.1's `Mamba` class, which the paper's code
//! uses unchanged (paper-spec §6). Numbers in comments are the steps of §6.2.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::silu;

use super::dense::dense;
use super::init::{Dist, Init};
use super::members::{channels_of, members_of};
use super::scan::{selective_scan, ScanInputs, ScanMode};

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
        let [kb, l, c] = x.dims();
        let members = super::members::count(self.weight.dims()[0], c);
        if members > 1 {
            // Depthwise: a stacked model's members are K·c channels over b sequences.
            return members_of(self.forward(channels_of(x, members)), members);
        }
        let b = kb;
        let k = self.weight.dims()[1];
        let x = match fused_conv(x, self.weight.val(), self.bias.val()) {
            Ok(y) => return y,
            Err(x) => x,
        };
        let padded = Tensor::cat(vec![Tensor::zeros([b, k - 1, c], &x.device()), x], 1);
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
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var("ICL_LAB_CONV").map_or(true, |v| v.trim() != "tensor"))
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn conv_on<B: Backend, K: icl_lab_kernels::conv::FusedCausalConv>(x: Tensor<B, 3>, w: Tensor<B, 2>, bias: Tensor<B, 1>) -> Result<Tensor<B, 3>, (Tensor<B, 3>, Tensor<B, 2>, Tensor<B, 1>)> {
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
    if !fused_conv_allowed() || !icl_lab_kernels::conv::supports_width(w.dims()[1]) {
        return Err(x);
    }
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::backend::AutodiffBackend;
        type Ad = crate::runtime::CudaBackend;
        let (x, w, bias) = match conv_on::<B, Ad>(x, w, bias) {
            Ok(y) => return Ok(y),
            Err(back) => back,
        };
        let (x, w, bias) = match conv_on::<B, <Ad as AutodiffBackend>::InnerBackend>(x, w, bias) {
            Ok(y) => return Ok(y),
            Err(back) => back,
        };
        #[cfg(feature = "emulator")]
        {
            type Emu = crate::runtime::EmuBackend;
            let (x, w, bias) = match conv_on::<B, Emu>(x, w, bias) {
                Ok(y) => return Ok(y),
                Err(back) => back,
            };
            return conv_on::<B, <Emu as AutodiffBackend>::InnerBackend>(x, w, bias).map_err(|(x, _, _)| x);
        }
        #[cfg(not(feature = "emulator"))]
        {
            let _ = (w, bias);
            return Err(x);
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = (w, bias);
        Err(x)
    }
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
        let [b, l, _] = u.dims();
        let (n, r) = (self.d_state, self.dt_rank);
        let xz = dense(&self.in_proj, u); // 1. (b, l, 2E)
        let e = xz.dims()[2] / 2;
        let x = xz.clone().slice([0..b, 0..l, 0..e]);
        let z = xz.slice([0..b, 0..l, e..2 * e]);
        let x = silu(self.conv1d.forward(x)); // 2.
        let x_dbl = dense(&self.x_proj, x.clone()); // 3. (b, l, R + 2N)
        let dt = x_dbl.clone().slice([0..b, 0..l, 0..r]);
        let b_in = x_dbl.clone().slice([0..b, 0..l, r..r + n]);
        let c = x_dbl.slice([0..b, 0..l, r + n..r + 2 * n]);
        let delta = softplus(dense(&self.dt_proj, dt)); // 4. bias inside the softplus
        let a = self.a_log.val().exp().neg(); // 5.
        let y = selective_scan(ScanInputs { x, delta, a, b_in, c, d: self.d.val() }, self.scan); // 6–8.
        dense(&self.out_proj, y * silu(z)) // 9–10.
    }
}

/// softplus(v) = log(1 + eᵛ), written as max(v, 0) + log1p(e^-|v|) so large v cannot overflow
/// (burn's `softplus` forms eᵛ directly).
pub fn softplus<B: Backend, const D: usize>(v: Tensor<B, D>) -> Tensor<B, D> {
    v.clone().clamp_min(0.0) + v.abs().neg().exp().log1p()
}

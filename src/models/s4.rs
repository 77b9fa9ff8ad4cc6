//! S4D (Gu et al. 2022, diagonal S4) as the paper's code builds it (paper-spec §3.3, §3.4, §6.4):
//! a complex diagonal SSM, discretised with ZOH, turned into a real convolution kernel and
//! applied causally. Complex numbers are carried as (real, imaginary) tensor pairs.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid};

use super::dense::dense;
use super::init::{Dist, Init};
use super::mamba::CausalConv1d;
use super::members::{channels_of, members_of, scale_channels};
use super::pointwise::silu;
use super::split::split_last;

/// The S4D convolution kernel of H channels with N/2 complex modes.
#[derive(Module, Debug)]
pub struct S4dKernel<B: Backend> {
    /// `[H]`: log Δ, U(ln 1e-3, ln 1e-1).
    pub log_dt: Param<Tensor<B, 1>>,
    /// `[H, N/2]`: real and imaginary parts of C, each N(0, 1/2).
    pub c_re: Param<Tensor<B, 2>>,
    pub c_im: Param<Tensor<B, 2>>,
    /// `[H, N/2]`: A = -exp(log_A_real) + i·A_imag; init ln 0.5 and π·n.
    pub log_a_real: Param<Tensor<B, 2>>,
    pub a_imag: Param<Tensor<B, 2>>,
}

impl<B: Backend> S4dKernel<B> {
    pub fn new(init: &mut Init<B>, channels: usize, d_state: usize) -> Self {
        let modes = d_state / 2;
        let half = std::f32::consts::FRAC_1_SQRT_2;
        let a_imag: Vec<f32> =
            (0..channels).flat_map(|_| (0..modes).map(|n| std::f32::consts::PI * n as f32)).collect();
        S4dKernel {
            log_dt: init.param([channels], Dist::Range(1e-3f32.ln(), 1e-1f32.ln())),
            c_re: init.param([channels, modes], Dist::Normal(half)),
            c_im: init.param([channels, modes], Dist::Normal(half)),
            log_a_real: init.param([channels, modes], Dist::Const(0.5f32.ln())),
            a_imag: Param::from_tensor(Tensor::from_data(TensorData::new(a_imag, [channels, modes]), init.device())),
        }
    }

    /// `K[h, l] = 2 Re Σ_n C̃[h, n] exp(Δ A[h, n] l)` with `C̃ = C (exp(ΔA) − 1) / A`.
    ///
    /// # Shapes
    /// - returns `[H, len]`
    pub fn kernel(&self, len: usize) -> Tensor<B, 2> {
        let dt = self.log_dt.val().exp().unsqueeze_dim::<2>(1); // (H, 1)
        let a_re = self.log_a_real.val().exp().neg(); // (H, M)
        let a_im = self.a_imag.val();
        let (dta_re, dta_im) = (a_re.clone() * dt.clone(), a_im.clone() * dt); // ΔA
        // exp(ΔA) − 1
        let mag = dta_re.clone().exp();
        let (num_re, num_im) = (mag.clone() * dta_im.clone().cos() - 1.0, mag * dta_im.clone().sin());
        // (exp(ΔA) − 1) / A = num · conj(A) / |A|²
        let norm = a_re.clone().powf_scalar(2.0) + a_im.clone().powf_scalar(2.0);
        let q_re = (num_re.clone() * a_re.clone() + num_im.clone() * a_im.clone()) / norm.clone();
        let q_im = (num_im * a_re - num_re * a_im) / norm;
        let (c_re, c_im) = (self.c_re.val(), self.c_im.val());
        let ct_re = c_re.clone() * q_re.clone() - c_im.clone() * q_im.clone(); // C̃
        let ct_im = c_re * q_im + c_im * q_re;
        // exp(ΔA l) for l = 0..len: (H, M, len)
        let device = self.log_dt.val().device();
        let l = Tensor::<B, 1, Int>::arange(0..len as i64, &device).float().reshape([1, 1, len]);
        let decay = (dta_re.unsqueeze_dim::<3>(2) * l.clone()).exp();
        let phase = dta_im.unsqueeze_dim::<3>(2) * l;
        let re = ct_re.unsqueeze_dim::<3>(2) * decay.clone() * phase.clone().cos()
            - ct_im.unsqueeze_dim::<3>(2) * decay * phase.sin();
        re.sum_dim(1).squeeze_dim::<2>(1) * 2.0
    }
}

/// Causal convolution `y[b, t, h] = Σ_{s≤t} k[h, t−s] u[b, s, h]` as a Toeplitz matmul
/// (burn has no FFT; at ICL lengths the matmul is cheap).
///
/// # Shapes
/// - u: `[b, l, h]`, k: `[h, l]` -> `[b, l, h]`
pub fn causal_conv<B: Backend>(u: Tensor<B, 3>, k: Tensor<B, 2>) -> Tensor<B, 3> {
    let [_, l, h] = u.dims();
    let members = super::members::count(k.dims()[0], h);
    if members > 1 {
        // Per channel: a stacked model's members are K·h channels over b sequences.
        return members_of(causal_conv(channels_of(u, members), k), members);
    }
    let device = u.device();
    // index of k for (t, s): t − s, clamped at 0 where s > t (then masked).
    let idx: Vec<i64> = (0..l).flat_map(|t| (0..l).map(move |s| t.saturating_sub(s) as i64)).collect();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [l * l]), &device);
    let future = Tensor::<B, 2, Bool>::tril_mask([l, l], 0, &device).unsqueeze::<3>().expand([h, l, l]);
    let toeplitz = k.select(1, idx).reshape([h, l, l]).mask_fill(future, 0.0); // (h, t, s)
    let u = u.permute([2, 1, 0]); // (h, s, b)
    toeplitz.matmul(u).permute([2, 1, 0]) // (b, t, h)
}

/// The S4 mixer (`s4d.S4D`): SSM convolution + D skip, GELU, then a 1x1 conv to 2H and a GLU.
#[derive(Module, Debug)]
pub struct S4<B: Backend> {
    pub kernel: S4dKernel<B>,
    /// `[H]`, N(0, 1).
    pub d: Param<Tensor<B, 1>>,
    /// Conv1d(H, 2H, kernel 1) = a Linear, PyTorch default init.
    pub output_linear: Linear<B>,
}

impl<B: Backend> S4<B> {
    pub fn new(init: &mut Init<B>, width: usize, d_state: usize) -> Self {
        S4 {
            kernel: S4dKernel::new(init, width, d_state),
            d: init.param([width], Dist::Normal(1.0)),
            output_linear: init.torch_linear(width, 2 * width, true),
        }
    }

    /// # Shapes
    /// - u: `[b, l, H]` -> `[b, l, H]`
    pub fn forward(&self, u: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, l, h] = u.dims();
        let y = causal_conv(u.clone(), self.kernel.kernel(l)) + scale_channels(u, self.d.val());
        let y = dense(&self.output_linear, gelu(y)); // (b, l, 2H)
        let [value, gate] = split_last(y, [h, h]);
        value * sigmoid(gate) // GLU
    }
}

/// S4-Mamba (`mamba_simple.S4Mamba`): Mamba's block with the selective scan replaced by a
/// time-invariant S4D convolution, and the gate using the raw z (no SiLU; paper-spec §3.4).
#[derive(Module, Debug)]
pub struct S4Mamba<B: Backend> {
    pub in_proj: Linear<B>,
    pub conv1d: CausalConv1d<B>,
    pub kernel: S4dKernel<B>,
    /// `[E]`, N(0, 1).
    pub d: Param<Tensor<B, 1>>,
    pub out_proj: Linear<B>,
    /// Channel dropout, one mask per sequence (`DropoutNd`), active in training only.
    pub dropout: f64,
}

impl<B: Backend> S4Mamba<B> {
    pub fn new(init: &mut Init<B>, d_model: usize, expand: usize, d_state: usize, d_conv: usize, dropout: f64, n_layer: usize) -> Self {
        let e = expand * d_model;
        let out_bound = 1.0 / (e as f32).sqrt() / (n_layer as f32).sqrt();
        S4Mamba {
            in_proj: init.linear(d_model, 2 * e, Dist::torch_default(d_model), None),
            conv1d: CausalConv1d::new(init, e, d_conv),
            kernel: S4dKernel::new(init, e, d_state),
            d: init.param([e], Dist::Normal(1.0)),
            out_proj: init.linear(e, d_model, Dist::Uniform(out_bound), None),
            dropout,
        }
    }

    /// # Shapes
    /// - u: `[b, l, D]` -> `[b, l, D]`
    pub fn forward(&self, u: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, l, _] = u.dims();
        let xz = dense(&self.in_proj, u);
        let e = xz.dims()[2] / 2;
        let [x, z] = split_last(xz, [e, e]);
        let x = silu(self.conv1d.forward(x));
        let mut y = causal_conv(x.clone(), self.kernel.kernel(l)) + scale_channels(x, self.d.val());
        if B::ad_enabled(&y.device()) && self.dropout > 0.0 {
            let keep = 1.0 - self.dropout;
            let mask = Tensor::<B, 3>::random([b, 1, e], burn::tensor::Distribution::Bernoulli(keep), &y.device());
            y = y * (mask / keep);
        }
        dense(&self.out_proj, y * z)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::NdArray;

    use super::*;

    type B = NdArray<f32>;

    fn host(t: Tensor<B, 2>) -> Vec<f64> {
        t.into_data().iter::<f32>().map(f64::from).collect()
    }

    /// The kernel convolution equals the discretised complex recurrence it comes from:
    /// `s_t = exp(ΔA) s_{t-1} + (exp(ΔA) − 1)/A · u_t`, `y_t = 2 Re(C · s_t)`.
    #[test]
    fn s4d_convolution_equals_its_recurrence() {
        let dev = NdArrayDevice::Cpu;
        let (h, n, l) = (3, 8, 20);
        let mut init = Init::<B>::new(5, &dev);
        let k = S4dKernel::<B>::new(&mut init, h, n);
        let u = Tensor::<B, 3>::random([1, l, h], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let y: Vec<f64> = causal_conv(u.clone(), k.kernel(l)).into_data().iter::<f32>().map(f64::from).collect();
        let u: Vec<f64> = u.into_data().iter::<f32>().map(f64::from).collect();

        let dt: Vec<f64> = k.log_dt.val().exp().into_data().iter::<f32>().map(f64::from).collect();
        let (c_re, c_im) = (host(k.c_re.val()), host(k.c_im.val()));
        let (a_re, a_im) = (host(k.log_a_real.val().exp().neg()), host(k.a_imag.val()));
        let m = n / 2;
        for ch in 0..h {
            let mut s = vec![(0.0f64, 0.0f64); m];
            for t in 0..l {
                let mut out = 0.0;
                for j in 0..m {
                    let (ar, ai) = (a_re[ch * m + j], a_im[ch * m + j]);
                    let (zr, zi) = (ar * dt[ch], ai * dt[ch]);
                    let (er, ei) = (zr.exp() * zi.cos(), zr.exp() * zi.sin()); // exp(ΔA)
                    let nrm = ar * ar + ai * ai;
                    let (br, bi) = (((er - 1.0) * ar + ei * ai) / nrm, (ei * ar - (er - 1.0) * ai) / nrm);
                    let ut = u[t * h + ch];
                    let (sr, si) = s[j];
                    s[j] = (er * sr - ei * si + br * ut, er * si + ei * sr + bi * ut);
                    out += 2.0 * (c_re[ch * m + j] * s[j].0 - c_im[ch * m + j] * s[j].1);
                }
                let got = y[t * h + ch];
                assert!((got - out).abs() < 1e-4 * (1.0 + out.abs()), "channel {ch} t {t}: {got} vs {out}");
            }
        }
    }
}

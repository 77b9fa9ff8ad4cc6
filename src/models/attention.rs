//! Causal self-attention over the packed q, k, v projection (HF `c_attn`'s output): the
//! tensor-op form, which runs on every backend and is the reference, and the dispatch to the
//! fused CUDA kernels (`icl_lab_kernels::attention`), which never write the `[b, h, t, t]`
//! scores or probabilities.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};

use super::fused::{cast, fused_available, on_fused_backend};
use super::scan::max_relative_error;

/// How to evaluate attention: both give the same result (checked on the GPU against an f64
/// reference by `icl-lab bench attention --check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionMode {
    /// Matmul, causal mask, softmax, matmul: every backend.
    Tensor,
    /// The fused CubeCL kernels (CUDA, head sizes of `icl_lab_kernels::attention::HEAD_SIZES`);
    /// elsewhere the tensor-op form.
    Fused,
}

impl AttentionMode {
    /// Fused on CUDA, else tensor ops. `ICL_LAB_ATTENTION=tensor|fused` overrides it (for
    /// benchmarks; `fused` without the kernels still runs tensor ops).
    pub fn for_backend<B: Backend>() -> Self {
        match std::env::var("ICL_LAB_ATTENTION").ok().and_then(|v| Self::parse(&v)) {
            Some(AttentionMode::Tensor) => AttentionMode::Tensor,
            _ if fused_available::<B>() => AttentionMode::Fused,
            _ => AttentionMode::Tensor,
        }
    }

    /// `tensor` or `fused`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "tensor" => Some(AttentionMode::Tensor),
            "fused" => Some(AttentionMode::Fused),
            _ => None,
        }
    }
}

/// Causal attention of `heads` heads over `qkv` `[b, t, 3e]` (q, k, v side by side); y
/// `[b, t, e]`, heads side by side.
pub fn causal_attention<B: Backend>(qkv: Tensor<B, 3>, heads: usize, mode: AttentionMode) -> Tensor<B, 3> {
    let [_, _, e3] = qkv.dims();
    if mode == AttentionMode::Fused && icl_lab_kernels::attention::supports_head_size(e3 / 3 / heads) {
        match fused_attention(qkv, heads) {
            Ok(y) => y,
            Err(qkv) => tensor_attention(qkv, heads),
        }
    } else {
        tensor_attention(qkv, heads)
    }
}

/// Scores, causal mask, softmax and weighted sum as tensor ops.
pub fn tensor_attention<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
    let [b, t, e3] = qkv.dims();
    let e = e3 / 3;
    let hd = e / heads;
    let head_view = |i: usize| {
        qkv.clone()
            .slice([0..b, 0..t, i * e..(i + 1) * e])
            .reshape([b, t, heads, hd])
            .swap_dims(1, 2) // (b, h, t, hd)
    };
    let (q, k, v) = (head_view(0), head_view(1), head_view(2));
    let scores = q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt(); // (b, h, t, t)
    // burn's tril_mask is true *outside* the lower triangle: exactly the future keys.
    let future = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, &scores.device())
        .unsqueeze::<4>()
        .expand([b, heads, t, t]);
    let attn = softmax(scores.mask_fill(future, -1e9), 3);
    attn.matmul(v).swap_dims(1, 2).reshape([b, t, e]) // (b, t, e)
}

/// The fused attention, when `B` is the backend `K` that has it.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn fused_on<B: Backend, K: icl_lab_kernels::attention::FusedAttention>(qkv: Tensor<B, 3>, heads: usize) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    let qkv: Tensor<K, 3> = cast(qkv)?;
    let y = icl_lab_kernels::attention::causal_attention(qkv, heads);
    Ok(cast(y).unwrap_or_else(|_| unreachable!("B is K")))
}

/// The fused attention, or `qkv` back when `B` has none.
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
fn fused_attention<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    on_fused_backend!(fused_on::<B>(qkv, heads))
}

/// Shapes `[b, t, e, heads]` on which the fused attention is checked against the tensor ops:
/// every head size the kernels take, lengths off the 64-row tile (one row, one tile and a bit,
/// several tiles), and the bench's GPT-2 sizes. A shape's seed is its index.
pub const CHECK_SHAPES: [[usize; 4]; 6] = [[2, 1, 32, 4], [3, 70, 64, 8], [2, 82, 128, 8], [4, 200, 128, 4], [2, 280, 256, 8], [1, 131, 256, 4]];

/// The values `compare_attention` reports, in order.
pub const COMPARED: [&str; 2] = ["y", "dqkv"];

/// y and ∂(Σ y ⊙ proj)/∂qkv of attention in `mode` on backend `B`, as host vectors.
fn attention_with_grad<B: AutodiffBackend>(qkv: &[f32], proj: &[f32], [b, t, e, heads]: [usize; 4], device: &B::Device, mode: AttentionMode) -> [Vec<f64>; 2] {
    let dtype = <B::FloatElem as burn::tensor::Element>::dtype();
    let qkv = Tensor::<B, 3>::from_data(TensorData::new(qkv.to_vec(), [b, t, 3 * e]), (device, dtype)).require_grad();
    let proj = Tensor::<B, 3>::from_data(TensorData::new(proj.to_vec(), [b, t, e]), (device, dtype));
    let y = causal_attention(qkv.clone(), heads, mode);
    let grads = (y.clone() * proj).sum().backward();
    let host = |data: TensorData| -> Vec<f64> { data.convert::<f64>().iter::<f64>().collect() };
    let dqkv = qkv.grad(&grads).map_or_else(|| vec![0.0; b * t * 3 * e], |g| host(g.into_data()));
    [host(y.into_data()), dqkv]
}

/// Largest relative errors ([`max_relative_error`]) of attention in `mode` on backend `B`
/// against the tensor-op form in f64 on the CPU, on random `qkv` ~ U(-1.5, 1.5) of shape
/// `[b, t, 3e]`: y, and the gradient of a fixed random projection of y with respect to qkv.
/// (Not against tensor ops on the same GPU: CubeCL runs f32 matmuls on tensor cores in TF32,
/// whose ~1e-3 relative rounding is far above the kernels' own error.)
pub fn compare_attention<B: AutodiffBackend>(dims @ [b, t, e, _]: [usize; 4], seed: u64, device: &B::Device, mode: AttentionMode) -> [f64; 2] {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-scale..scale)).collect() };
    let (qkv, proj) = (draw(b * t * 3 * e, 1.5), draw(b * t * e, 1.0));
    type Exact = burn::backend::Autodiff<burn::backend::NdArray<f64>>;
    let want = attention_with_grad::<Exact>(&qkv, &proj, dims, &Default::default(), AttentionMode::Tensor);
    let got = attention_with_grad::<B>(&qkv, &proj, dims, device, mode);
    std::array::from_fn(|i| max_relative_error(&got[i], &want[i]))
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};

    use super::*;

    type Ad = Autodiff<NdArray<f64>>;

    /// Attention written out with plain loops: softmax over keys j <= i of q_i.k_j / sqrt(d).
    fn by_hand(qkv: &[f64], [b, t, e, heads]: [usize; 4]) -> Vec<f64> {
        let d = e / heads;
        let at = |bi: usize, row: usize, part: usize, hh: usize, c: usize| qkv[(bi * t + row) * 3 * e + part * e + hh * d + c];
        let mut y = vec![0.0; b * t * e];
        for bi in 0..b {
            for hh in 0..heads {
                for i in 0..t {
                    let s: Vec<f64> = (0..=i).map(|j| (0..d).map(|c| at(bi, i, 0, hh, c) * at(bi, j, 1, hh, c)).sum::<f64>() / (d as f64).sqrt()).collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                    for c in 0..d {
                        y[(bi * t + i) * e + hh * d + c] = (0..=i).map(|j| (s[j] - m).exp() / z * at(bi, j, 2, hh, c)).sum();
                    }
                }
            }
        }
        y
    }

    #[test]
    fn tensor_attention_matches_the_definition() {
        let dims @ [b, t, e, heads] = [2, 7, 12, 3];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let values: Vec<f64> = (0..b * t * 3 * e).map(|_| rng.random_range(-2.0..2.0)).collect();
        let qkv = Tensor::<NdArray<f64>, 3>::from_data(TensorData::new(values.clone(), [b, t, 3 * e]), &NdArrayDevice::Cpu);
        let got: Vec<f64> = tensor_attention(qkv, heads).into_data().iter::<f64>().collect();
        assert!(max_relative_error(&got, &by_hand(&values, dims)) < 1e-12);
        // The first row sees only itself: y_0 = v_0.
        assert!((got[0] - values[2 * e]).abs() < 1e-12);
    }

    #[test]
    fn without_the_kernels_fused_mode_is_the_tensor_form() {
        assert_eq!(AttentionMode::for_backend::<Ad>(), AttentionMode::Tensor);
        assert_eq!(AttentionMode::parse(" fused "), Some(AttentionMode::Fused));
        assert_eq!(AttentionMode::parse("flash"), None);
        let errors = compare_attention::<Ad>([2, 9, 16, 4], 1, &NdArrayDevice::Cpu, AttentionMode::Fused);
        assert_eq!(errors, [0.0, 0.0], "NdArray<f64> against itself");
        // f32 against the f64 reference: close, not equal. How close depends on the host's
        // SIMD: burn-ndarray's f32 path leaves ~1e-5 absolute on the gradient on some CPUs, but
        // up to 2.6e-4 (1.4e-4 of the largest entry, 1.39e-2 by this measure, on entries that
        // are exactly 0 in f64) on an AVX2 host without AVX-512.
        let errors = compare_attention::<Autodiff<NdArray<f32>>>([2, 9, 16, 4], 1, &NdArrayDevice::Cpu, AttentionMode::Fused);
        assert!(errors.iter().all(|&e| e > 0.0 && e < 3e-2), "{errors:?}");
    }

    /// The fused CUDA kernels against the tensor-op attention, forward and gradient, on the
    /// GPU. Skips (with a notice on stderr) where there is no CUDA device, as on CI.
    #[cfg(feature = "cuda")]
    #[test]
    fn fused_attention_equals_the_tensor_form_on_cuda() {
        let Some(device) = crate::runtime::device::gpu_or_skip("fused_attention_equals_the_tensor_form_on_cuda") else { return };
        for (seed, dims) in CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_attention::<crate::runtime::CudaBackend>(dims, seed as u64, &device, AttentionMode::Fused);
            for (name, err) in COMPARED.iter().zip(errors) {
                assert!(err <= 1e-4, "{name} at [b, t, e, heads] = {dims:?}: relative error {err:.2e}");
            }
        }
    }
}

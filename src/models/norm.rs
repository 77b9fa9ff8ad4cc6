//! LayerNorm for the models: burn's `LayerNorm` module (tensor ops: every backend, and the
//! reference), or on CUDA the fused kernels (`icl_lab_kernels::layer_norm`), one launch each way
//! instead of burn's reductions and element-wise ops.

use burn::nn::LayerNorm;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};

use super::fused::{cast, fused_available, on_fused_backend};
use super::init::LAYER_NORM_EPS;
use super::scan::max_relative_error;

/// Whether the fused kernels may run: `ICL_LAB_LAYER_NORM=tensor` turns them off (for
/// benchmarks and checks); read once per process.
fn fused_allowed() -> bool {
    crate::runtime::fast_path_on!("ICL_LAB_LAYER_NORM", off: "tensor")
}

/// `ln` applied to `x` over its last dimension: the fused kernels when `B` is the CUDA
/// backend and the width suits them (and `fused` is set), else burn's tensor ops. `ln` must
/// come from `Init::layer_norm` (epsilon [`LAYER_NORM_EPS`], with a bias). A stacked model's
/// norm (`models::members`: γ and β `[K·e]`, x `[K·b, ..., e]`) takes the same kernels, which
/// read each member's γ and β for its rows.
pub fn layer_norm<B: Backend, const D: usize>(ln: &LayerNorm<B>, x: Tensor<B, D>, fused: bool) -> Tensor<B, D> {
    let e = x.dims()[D - 1];
    let members = super::members::count(ln.gamma.dims()[0], e);
    match &ln.beta {
        Some(beta) if fused && fused_available::<B>() && icl_lab_kernels::layer_norm::supports_width(e) => {
            match fused_layer_norm(x, ln.gamma.val(), beta.val()) {
                Ok(y) => y,
                Err(x) => tensor_layer_norm(ln, x, members),
            }
        }
        _ => tensor_layer_norm(ln, x, members),
    }
}

/// burn's LayerNorm, or for `members > 1` its stacked form.
fn tensor_layer_norm<B: Backend, const D: usize>(ln: &LayerNorm<B>, x: Tensor<B, D>, members: usize) -> Tensor<B, D> {
    if members > 1 {
        stacked_layer_norm(ln, x, members)
    } else {
        ln.forward(x)
    }
}

/// The LayerNorms of a stacked model's members (`models::members`) in tensor ops: x
/// `[K·b, ..., e]` with γ and β `[K·e]`.
fn stacked_layer_norm<B: Backend, const D: usize>(ln: &LayerNorm<B>, x: Tensor<B, D>, members: usize) -> Tensor<B, D> {
    let dims = x.dims();
    let e = dims[D - 1];
    let x = super::members::view_by_member(x, members);
    let (var, mean) = x.clone().var_mean_bias(3);
    let y = (x - mean) / (var + LAYER_NORM_EPS).sqrt() * ln.gamma.val().reshape([members, 1, 1, e]);
    let y = match &ln.beta {
        Some(beta) => y + beta.val().reshape([members, 1, 1, e]),
        None => y,
    };
    y.reshape(dims)
}

/// [`layer_norm`] with the process's choice (`ICL_LAB_LAYER_NORM`).
pub fn norm<B: Backend, const D: usize>(ln: &LayerNorm<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    layer_norm(ln, x, fused_allowed())
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn fused_on<B: Backend, K: icl_lab_kernels::layer_norm::FusedLayerNorm, const D: usize>(
    (x, gamma, beta): (Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>),
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>)> {
    let x: Tensor<K, D> = match cast(x) {
        Ok(x) => x,
        Err(x) => return Err((x, gamma, beta)),
    };
    let (gamma, beta): (Tensor<K, 1>, Tensor<K, 1>) = (cast(gamma).unwrap_or_else(|_| unreachable!("B is K")), cast(beta).unwrap_or_else(|_| unreachable!("B is K")));
    let y = icl_lab_kernels::layer_norm::layer_norm(x, gamma, beta, LAYER_NORM_EPS as f32);
    Ok(cast(y).unwrap_or_else(|_| unreachable!("B is K")))
}

/// The fused LayerNorm, or `x` back when `B` has none.
fn fused_layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>, gamma: Tensor<B, 1>, beta: Tensor<B, 1>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    on_fused_backend!(fused_on::<B, D>((x, gamma, beta))).map_err(|(x, _, _)| x)
}

/// Shapes `[b, t, e]` on which the fused LayerNorm is checked: widths of one to eight warps a
/// lane, row counts off the backward's 64-row cube. A shape's seed is its index.
pub const CHECK_SHAPES: [[usize; 3]; 5] = [[1, 1, 32], [3, 37, 64], [2, 82, 128], [4, 70, 256], [1, 131, 1024]];

/// Stacked models' norms checked the same way: (members, `[b, t, e]` of each member). Rows
/// per member off the backward's 64-row cube, so its cubes end inside a member.
pub const STACKED_CHECK_SHAPES: [(usize, [usize; 3]); 2] = [(3, [2, 37, 64]), (16, [4, 82, 128])];

/// The values `compare_layer_norm` reports, in order.
pub const COMPARED: [&str; 4] = ["y", "dx", "dgamma", "dbeta"];

/// Largest relative errors ([`max_relative_error`]) of LayerNorm on backend `B` (`fused`:
/// the kernels where `B` has them) against burn's LayerNorm in f64 on the CPU, on random x ~
/// U(-2, 2) + a per-row offset, γ ~ U(0.5, 1.5), β ~ U(-0.5, 0.5): y and the gradients of a
/// fixed random projection of y. `members` stacks that many norms (`models::members`): x
/// `[members·b, t, e]`, γ and β `[members·e]`.
pub fn compare_layer_norm<B: AutodiffBackend>(members: usize, [b, t, e]: [usize; 3], seed: u64, device: &B::Device, fused: bool) -> [f64; 4] {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let b = members * b;
    let offsets: Vec<f32> = (0..b * t).map(|_| rng.random_range(-3.0..3.0)).collect();
    let x: Vec<f32> = (0..b * t * e).map(|i| offsets[i / e] + rng.random_range(-2.0..2.0)).collect();
    let gamma: Vec<f32> = (0..members * e).map(|_| rng.random_range(0.5..1.5)).collect();
    let beta: Vec<f32> = (0..members * e).map(|_| rng.random_range(-0.5..0.5)).collect();
    let proj: Vec<f32> = (0..b * t * e).map(|_| rng.random_range(-1.0..1.0)).collect();
    fn run<K: AutodiffBackend>(data: [&[f32]; 4], [b, t, e]: [usize; 3], device: &K::Device, fused: bool) -> [Vec<f64>; 4] {
        let dtype = <K::FloatElem as burn::tensor::Element>::dtype();
        let vector = |v: &[f32]| Tensor::<K, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), (device, dtype));
        let mut ln = burn::nn::LayerNormConfig::new(e).with_epsilon(LAYER_NORM_EPS).init::<K>(device);
        ln.gamma = burn::module::Param::from_tensor(vector(data[1]).require_grad());
        ln.beta = Some(burn::module::Param::from_tensor(vector(data[2]).require_grad()));
        let x: Tensor<K, 3> = vector(data[0]).reshape([b, t, e]).require_grad();
        let proj: Tensor<K, 3> = vector(data[3]).reshape([b, t, e]);
        let y = layer_norm(&ln, x.clone(), fused);
        let grads = (y.clone() * proj).sum().backward();
        let host = |d: TensorData| -> Vec<f64> { d.convert::<f64>().iter::<f64>().collect() };
        let grad_of = |g: Option<TensorData>, n: usize| g.map_or_else(|| vec![0.0; n], host);
        [
            host(y.into_data()),
            grad_of(x.grad(&grads).map(|g| g.into_data()), b * t * e),
            grad_of(ln.gamma.val().grad(&grads).map(|g| g.into_data()), data[1].len()),
            grad_of(ln.beta.as_ref().and_then(|p| p.val().grad(&grads)).map(|g| g.into_data()), data[2].len()),
        ]
    }
    let data = [&x[..], &gamma[..], &beta[..], &proj[..]];
    let want = run::<burn::backend::Autodiff<burn::backend::NdArray<f64>>>(data, [b, t, e], &Default::default(), false);
    assert!(want[2].iter().chain(&want[3]).any(|&g| g != 0.0), "the reference has no gamma/beta gradient");
    let got = run::<B>(data, [b, t, e], device, fused);
    std::array::from_fn(|i| max_relative_error(&got[i], &want[i]))
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};

    use super::*;

    #[test]
    fn off_cuda_the_layer_norm_is_burns_and_the_comparison_sees_f32_rounding() {
        // f64 against itself: the same ops, exactly.
        assert_eq!(compare_layer_norm::<Autodiff<NdArray<f64>>>(1, [2, 5, 64], 0, &NdArrayDevice::Cpu, true), [0.0; 4]);
        // f32 against f64: rounding only, and it is seen.
        let errors = compare_layer_norm::<Autodiff<NdArray<f32>>>(1, [2, 5, 64], 0, &NdArrayDevice::Cpu, true);
        assert!(errors.iter().all(|&e| e > 0.0 && e < 1e-4), "{errors:?}");
        let errors = compare_layer_norm::<Autodiff<NdArray<f32>>>(3, [2, 5, 64], 0, &NdArrayDevice::Cpu, true);
        assert!(errors.iter().all(|&e| e > 0.0 && e < 1e-4), "stacked: {errors:?}");
    }

    #[test]
    fn a_stacked_norm_normalises_each_member_with_its_own_gamma_and_beta() {
        type B = Autodiff<NdArray<f64>>;
        let device = NdArrayDevice::Cpu;
        let (members, [b, t, e]) = (3, [2, 5, 32]);
        let init = super::super::init::Init::<B>::new(7, &device);
        let x = Tensor::<B, 3>::random([members * b, t, e], burn::tensor::Distribution::Uniform(-2.0, 2.0), &device);
        let gamma = Tensor::<B, 1>::random([members * e], burn::tensor::Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<B, 1>::random([members * e], burn::tensor::Distribution::Uniform(-0.5, 0.5), &device);
        let mut stacked = init.layer_norm(e);
        stacked.gamma = burn::module::Param::from_tensor(gamma.clone());
        stacked.beta = Some(burn::module::Param::from_tensor(beta.clone()));
        let y = layer_norm(&stacked, x.clone(), true);
        for k in 0..members {
            let mut one = init.layer_norm(e);
            one.gamma = burn::module::Param::from_tensor(gamma.clone().slice([k * e..(k + 1) * e]));
            one.beta = Some(burn::module::Param::from_tensor(beta.clone().slice([k * e..(k + 1) * e])));
            let want = one.forward(x.clone().slice([k * b..(k + 1) * b]));
            let got = y.clone().slice([k * b..(k + 1) * b]);
            let err = (got - want).abs().max().into_scalar();
            assert!(err < 1e-12, "member {k}: {err}");
        }
    }

    /// The fused CUDA kernels against burn's LayerNorm in f64, forward and gradients, on the
    /// GPU. Skips (with a notice on stderr) where there is no CUDA device, as on CI.
    #[cfg(feature = "cuda")]
    #[test]
    fn fused_layer_norm_equals_burns_on_cuda() {
        let Some(device) = crate::runtime::device::gpu_or_skip("fused_layer_norm_equals_burns_on_cuda") else { return };
        let shapes = CHECK_SHAPES.into_iter().map(|dims| (1, dims)).chain(STACKED_CHECK_SHAPES);
        for (seed, (members, dims)) in shapes.enumerate() {
            let errors = compare_layer_norm::<crate::runtime::CudaBackend>(members, dims, seed as u64, &device, true);
            for (name, err) in COMPARED.iter().zip(errors) {
                assert!(err <= 1e-4, "{name} at {members} x [b, t, e] = {dims:?}: relative error {err:.2e}");
            }
        }
    }
}

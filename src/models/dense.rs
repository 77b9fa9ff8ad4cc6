//! Linear layers for the models: burn's `Linear` (tensor ops: every backend, and the
//! reference), or on CUDA `icl_lab_kernels::linear`, which runs each of a layer's three
//! matmuls with the strategy `bench matmul` measured fastest for it instead of burn's one
//! default (all six bench configs faster in one lease, GPT-2 e256 67.5 → 57.5 ms a step;
//! docs/performance.md, session 8). `ICL_LAB_MATMUL=burn` keeps burn's.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};

use super::fused::{cast, fused_available, on_fused_backend};

/// Whether the chosen strategies may run: `ICL_LAB_MATMUL=burn` keeps burn's matmuls (for
/// benchmarks and checks); read once per process.
fn chosen_allowed() -> bool {
    crate::runtime::fast_path_on!("ICL_LAB_MATMUL", off: "burn")
}

/// `lin` applied to `x`: with the chosen matmul strategies when `B` is the CUDA backend (and
/// `chosen` is set), else burn's `Linear::forward`. The same map either way.
pub fn linear_with<B: Backend, const D: usize>(lin: &Linear<B>, x: Tensor<B, D>, chosen: bool) -> Tensor<B, D> {
    let members = super::members::count(lin.weight.dims()[0], x.dims()[D - 1]);
    let plain = |x: Tensor<B, D>| if members > 1 { stacked_linear(lin, x, members) } else { lin.forward(x) };
    if !(chosen && fused_available::<B>()) {
        return plain(x);
    }
    // The kernels take a stacked layer's weights as they are (one matmul batched by member).
    match chosen_linear(x, lin.weight.val(), lin.bias.as_ref().map(|b| b.val())) {
        Ok(y) => y,
        Err(x) => plain(x),
    }
}

/// The linear maps of a stacked model's members (`models::members`) as one batched matmul:
/// x `[K·b, ..., in]` with weight `[K·in, out]` and bias `[K·out]`.
fn stacked_linear<B: Backend, const D: usize>(lin: &Linear<B>, x: Tensor<B, D>, members: usize) -> Tensor<B, D> {
    let dims = x.dims();
    let [d_in, d_out] = [dims[D - 1], lin.weight.dims()[1]];
    let rows = dims.iter().product::<usize>() / d_in / members;
    let y = x.reshape([members, rows, d_in]).matmul(lin.weight.val().reshape([members, d_in, d_out]));
    let mut out = dims;
    out[D - 1] = d_out;
    let y = y.reshape(out);
    match &lin.bias {
        // Broadcast over [K, b, l, d_out] (`members::view_by_member`: ∂b in two cheap sums).
        Some(b) => (super::members::view_by_member(y, members) + b.val().reshape([members, 1, 1, d_out])).reshape(out),
        None => y,
    }
}

/// [`linear_with`] with the process's choice (`ICL_LAB_MATMUL`).
pub fn dense<B: Backend, const D: usize>(lin: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    linear_with(lin, x, chosen_allowed())
}

/// The kernel's linear map on `K` when `B` is `K`, else the inputs back.
type Operands<B, const D: usize> = (Tensor<B, D>, Tensor<B, 2>, Option<Tensor<B, 1>>);

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn chosen_on<B: Backend, K: icl_lab_kernels::linear::FusedLinear, const D: usize>((x, w, b): Operands<B, D>) -> Result<Tensor<B, D>, Operands<B, D>> {
    let x: Tensor<K, D> = match cast(x) {
        Ok(x) => x,
        Err(x) => return Err((x, w, b)),
    };
    fn same<T, U>(_: T) -> U {
        unreachable!("B is K")
    }
    let w: Tensor<K, 2> = cast(w).unwrap_or_else(same);
    let b: Option<Tensor<K, 1>> = b.map(|b| cast(b).unwrap_or_else(same));
    Ok(cast(icl_lab_kernels::linear::linear(x, w, b)).unwrap_or_else(same))
}

/// `x w + b` with the chosen strategies (∂b by the kernels' column sum), or `x` back when `B`
/// has none.
fn chosen_linear<B: Backend, const D: usize>(x: Tensor<B, D>, w: Tensor<B, 2>, b: Option<Tensor<B, 1>>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    on_fused_backend!(chosen_on::<B, D>((x, w, b))).map_err(|(x, _, _)| x)
}

/// `max |got − want| / max |want|`: TF32 rounding is relative to a dot product's terms, not to
/// its (possibly cancelling) sum, so errors are scaled by the tensor's largest value.
pub fn max_scaled_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "compared tensors differ in size");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((g - w).abs())) / scale
}

/// Largest relative error accepted from a TF32 matmul against f64 (TF32 keeps 10 mantissa
/// bits; burn's own default matmul measured 3e-4 on the H200).
pub const TF32_TOLERANCE: f64 = 2e-3;

/// Shapes `[members, b, t, d_in, d_out]` on which the chosen matmuls are checked: GPT-2's and
/// Mamba's layers, a width TMA cannot take (the fallback), one full GPT-2 e256 activation,
/// stacked layers of 4 and 16 members (`models::members`; `b` rows a member), and the
/// one-output read-out, plain and stacked (its own transposed path).
pub const CHECK_SHAPES: [[usize; 5]; 9] = [
    [1, 2, 82, 128, 384],
    [1, 4, 70, 256, 1024],
    [1, 3, 37, 1024, 256],
    [1, 2, 11, 21, 128],
    [1, 64, 280, 256, 768],
    [4, 2, 82, 128, 384],
    [16, 3, 37, 128, 512],
    [1, 64, 82, 128, 1],
    [16, 4, 82, 128, 1],
];

/// The values `compare_linear` reports, in order.
pub const COMPARED: [&str; 4] = ["y", "dx", "dw", "db"];

/// Largest errors relative to the reference's largest value ([`max_scaled_error`]) of a linear
/// layer of `members` stacked members (1: a plain layer) on backend `B` (`chosen`: the chosen
/// strategies where `B` has them) against burn's `Linear` (a stacked layer: the tensor-op
/// [`stacked_linear`]) in f64 on the CPU, on x, w, b ~ U(-1, 1): y and the gradients of a fixed
/// random projection of y. `b` is the batch rows a member.
pub fn compare_linear<B: AutodiffBackend>([members, b, t, d_in, d_out]: [usize; 5], seed: u64, device: &B::Device, chosen: bool) -> [f64; 4] {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (b, d_rows, d_bias) = (members * b, members * d_in, members * d_out);
    let (x, w, bias, proj) = (draw(b * t * d_in), draw(d_rows * d_out), draw(d_bias), draw(b * t * d_out));
    fn run<K: AutodiffBackend>(data: [&[f32]; 4], [b, t, d_in, d_out, d_rows]: [usize; 5], device: &K::Device, chosen: bool) -> [Vec<f64>; 4] {
        let dtype = <K::FloatElem as burn::tensor::Element>::dtype();
        let vector = |v: &[f32]| Tensor::<K, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), (device, dtype));
        let lin = Linear {
            weight: burn::module::Param::from_tensor(vector(data[1]).reshape([d_rows, d_out]).require_grad()),
            bias: Some(burn::module::Param::from_tensor(vector(data[2]).require_grad())),
        };
        let x: Tensor<K, 3> = vector(data[0]).reshape([b, t, d_in]).require_grad();
        let proj: Tensor<K, 3> = vector(data[3]).reshape([b, t, d_out]);
        let y = linear_with(&lin, x.clone(), chosen);
        let grads = (y.clone() * proj).sum().backward();
        let host = |d: TensorData| -> Vec<f64> { d.convert::<f64>().iter::<f64>().collect() };
        let grad_of = |g: Option<TensorData>, n: usize| g.map_or_else(|| vec![0.0; n], host);
        [
            host(y.into_data()),
            grad_of(x.grad(&grads).map(|g| g.into_data()), b * t * d_in),
            grad_of(lin.weight.val().grad(&grads).map(|g| g.into_data()), d_rows * d_out),
            grad_of(lin.bias.as_ref().and_then(|p| p.val().grad(&grads)).map(|g| g.into_data()), data[2].len()),
        ]
    }
    let data = [&x[..], &w[..], &bias[..], &proj[..]];
    let dims = [b, t, d_in, d_out, d_rows];
    let want = run::<burn::backend::Autodiff<burn::backend::NdArray<f64>>>(data, dims, &Default::default(), false);
    let got = run::<B>(data, dims, device, chosen);
    std::array::from_fn(|i| max_scaled_error(&got[i], &want[i]))
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};

    use super::*;

    #[test]
    fn off_cuda_the_linear_is_burns_and_the_comparison_sees_f32_rounding() {
        assert_eq!(compare_linear::<Autodiff<NdArray<f64>>>([1, 2, 5, 16, 24], 0, &NdArrayDevice::Cpu, true), [0.0; 4]);
        assert_eq!(compare_linear::<Autodiff<NdArray<f64>>>([3, 2, 5, 16, 24], 0, &NdArrayDevice::Cpu, true), [0.0; 4]);
        let errors = compare_linear::<Autodiff<NdArray<f32>>>([1, 2, 5, 16, 24], 0, &NdArrayDevice::Cpu, true);
        // db sums ten products of f32 values, which can come out exact.
        assert!(errors.iter().all(|&e| e < 1e-6) && errors[..3].iter().all(|&e| e > 0.0), "{errors:?}");
        assert_eq!(max_scaled_error(&[1.0, -2.5], &[1.0, -2.0]), 0.25);
    }

    /// The chosen CUDA matmuls against burn's `Linear` in f64, output and gradients, on the
    /// GPU, within TF32's rounding (the tensor-core strategies, burn's default included, round
    /// their inputs to TF32). Skips where there is no CUDA device, as on CI.
    #[cfg(feature = "cuda")]
    #[test]
    fn chosen_matmuls_equal_burns_linear_on_cuda() {
        let Some(device) = crate::runtime::device::gpu_or_skip("chosen_matmuls_equal_burns_linear_on_cuda") else { return };
        for (seed, dims) in CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_linear::<crate::runtime::CudaBackend>(dims, seed as u64, &device, true);
            for (name, err) in COMPARED.iter().zip(errors) {
                assert!(err <= TF32_TOLERANCE, "{name} at {dims:?}: relative error {err:.2e}");
            }
        }
    }
}

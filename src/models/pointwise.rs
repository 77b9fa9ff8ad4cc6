//! Element-wise activations (GELU, SiLU, softplus) as one autodiff step each.
//!
//! Written in tensor ops, an activation is a chain of steps for burn's autodiff, each keeping
//! what its own gradient needs: `gelu_new` keeps x², tanh(·) and 1 + tanh(·) besides x, so its
//! forward writes four tensors where one would do, and its backward reads them all back. On
//! CUDA the fused kernel's time is those passes: 16 GPT-2 e128 members spent ~1.7 ms a step
//! on the MLP's hidden activations, a fifth of the step's kernels (docs/performance.md,
//! session 27). Here the step keeps x alone and its gradient is `grad · f'(x)`, f' recomputed
//! from x: one read and one write forward, two reads and one write backward, each one fused
//! kernel on CUDA.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorPrimitive;

use super::fused::{cast, on_autodiff_backend};

/// An element-wise map `f` and its derivative, in tensor ops on any backend.
pub trait Pointwise: std::fmt::Debug + Send + Sync + 'static {
    fn value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D>;
    /// f'(x).
    fn slope<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D>;
}

/// √(2/π), of `gelu_new`'s tanh.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic term's weight in `gelu_new`.
const GELU_CUBIC: f64 = 0.044715;

/// HF's `gelu_new` (GPT-2's activation): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), burn's
/// `gelu_approximate`.
#[derive(Debug, Clone, Copy)]
pub struct GeluNew;

impl GeluNew {
    /// tanh(√(2/π)·(x + 0.044715·x³)), x³ as two multiplies (`powf` is a tenth of a CPU step).
    fn tanh_of<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
        let cube = x.clone() * x.clone() * x.clone();
        ((x + cube * GELU_CUBIC) * SQRT_2_OVER_PI).tanh()
    }
}

impl Pointwise for GeluNew {
    fn value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
        x.clone() * (Self::tanh_of(x) + 1.0) * 0.5
    }

    /// 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t the tanh above.
    fn slope<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
        let t = Self::tanh_of(x.clone());
        let inner_slope = (x.clone() * x.clone() * (3.0 * GELU_CUBIC) + 1.0) * SQRT_2_OVER_PI;
        (t.clone() + 1.0) * 0.5 + x * (t.clone() * t).neg().add_scalar(1.0) * inner_slope * 0.5
    }
}

/// σ(x) = 1 / (1 + e⁻ˣ): e⁻ˣ overflows to ∞ for very negative x, which still gives 0. burn's
/// `sigmoid` takes a log and a second exp and rounds through f32 (f64 references included).
fn sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.neg().exp().add_scalar(1.0).recip()
}

/// SiLU: x·σ(x).
#[derive(Debug, Clone, Copy)]
pub struct Silu;

impl Pointwise for Silu {
    fn value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
        x.clone() * sigmoid(x)
    }

    /// σ(x)·(1 + x·(1 − σ(x))).
    fn slope<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
        let s = sigmoid(x.clone());
        s.clone() * (x * s.neg().add_scalar(1.0)).add_scalar(1.0)
    }
}

/// softplus(v) = log(1 + eᵛ), as max(v, 0) + log1p(e^-|v|) so large v cannot overflow (burn's
/// `softplus` forms eᵛ directly).
#[derive(Debug, Clone, Copy)]
pub struct Softplus;

impl Pointwise for Softplus {
    fn value<B: Backend, const D: usize>(v: Tensor<B, D>) -> Tensor<B, D> {
        v.clone().clamp_min(0.0) + v.abs().neg().exp().log1p()
    }

    /// σ(v).
    fn slope<B: Backend, const D: usize>(v: Tensor<B, D>) -> Tensor<B, D> {
        sigmoid(v)
    }
}

/// `F` applied to `x`: on the training backends (CPU, CUDA and its emulator, with autodiff)
/// as one autodiff step that keeps x alone; elsewhere `F`'s tensor ops as they are.
pub fn apply<F: Pointwise, B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    on_autodiff_backend!(apply_on::<B, F, D>(x)).unwrap_or_else(F::value)
}

/// GPT-2's `gelu_new` as one step ([`GeluNew`]).
pub fn gelu_new<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    apply::<GeluNew, B, D>(x)
}

/// SiLU as one step ([`Silu`]).
pub fn silu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    apply::<Silu, B, D>(x)
}

/// Softplus as one step ([`Softplus`]).
pub fn softplus<B: Backend, const D: usize>(v: Tensor<B, D>) -> Tensor<B, D> {
    apply::<Softplus, B, D>(v)
}

/// [`apply`] when `B` is `Autodiff<I>`, else `x` back.
fn apply_on<B: Backend, I: Backend, F: Pointwise, const D: usize>(x: Tensor<B, D>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let x: Tensor<Autodiff<I>, D> = cast(x)?;
    Ok(cast(apply_autodiff::<I, _, F, D>(x)).unwrap_or_else(|_| unreachable!("B is Autodiff<I>")))
}

fn apply_autodiff<I: Backend, C: CheckpointStrategy, F: Pointwise, const D: usize>(x: Tensor<Autodiff<I, C>, D>) -> Tensor<Autodiff<I, C>, D> {
    let x = x.into_primitive().tensor();
    let y = float_of(F::value(tensor_of::<I, D>(x.primitive.clone())));
    let out = match (Step::<F, D>(std::marker::PhantomData)).prepare::<C>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(x.primitive, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

fn tensor_of<I: Backend, const D: usize>(t: FloatTensor<I>) -> Tensor<I, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn float_of<I: Backend, const D: usize>(t: Tensor<I, D>) -> FloatTensor<I> {
    t.into_primitive().tensor()
}

/// The backward step of `F` at rank `D`: grad · f'(x).
#[derive(Debug)]
struct Step<F, const D: usize>(std::marker::PhantomData<F>);

impl<I: Backend, F: Pointwise, const D: usize> Backward<I, 1> for Step<F, D> {
    type State = FloatTensor<I>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<I>(&ops.node);
        let [parent] = ops.parents;
        if let Some(parent) = parent {
            let slope = F::slope(tensor_of::<I, D>(ops.state));
            grads.register::<I>(parent.id, float_of(tensor_of::<I, D>(grad) * slope));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::DType;

    use super::*;

    type Ad = Autodiff<NdArray<f64>>;

    /// x over [-12, 12] (softplus's and SiLU's tails included) and the weights of the loss.
    fn inputs() -> (Tensor<Ad, 2>, Tensor<Ad, 2>) {
        // Off 0, where burn's gradients of softplus's `abs` and `clamp_min` are 0 (subgradients).
        let n = 240;
        let x: Vec<f64> = (0..n).map(|i| -12.0 + 24.0 * (i as f64 + 0.5) / n as f64).collect();
        let w: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        // The dtype named: the device's default may be another test's f32.
        let device = (&NdArrayDevice::Cpu, DType::F64);
        (Tensor::from_data(TensorData::new(x, [1, n]), device), Tensor::from_data(TensorData::new(w, [1, n]), device))
    }

    /// f(x) and ∂(Σ w·f(x))/∂x with `f` as given.
    fn value_and_grad(f: impl Fn(Tensor<Ad, 2>) -> Tensor<Ad, 2>) -> (Vec<f64>, Vec<f64>) {
        let (x, w) = inputs();
        let x = x.require_grad();
        let y = f(x.clone() * 1.0);
        let grads = (y.clone() * w).sum().backward();
        let host = |t: Tensor<NdArray<f64>, 2>| t.into_data().convert::<f64>().to_vec::<f64>().unwrap();
        (host(y.inner()), host(x.grad(&grads).expect("x has a gradient")))
    }

    fn worst(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
    }

    /// One step's value and gradient against burn's autodiff of the same tensor ops.
    fn check<F: Pointwise>() {
        let (value, grad) = value_and_grad(apply::<F, Ad, 2>);
        let (want_value, want_grad) = value_and_grad(F::value);
        assert_eq!(value, want_value, "{}", std::any::type_name::<F>());
        assert!(worst(&grad, &want_grad) < 1e-12, "{}: gradients differ by {}", std::any::type_name::<F>(), worst(&grad, &want_grad));
        assert!(grad.iter().any(|g| g.abs() > 0.1));
    }

    #[test]
    fn each_step_equals_burns_autodiff_of_its_tensor_ops() {
        check::<GeluNew>();
        check::<Silu>();
        check::<Softplus>();
    }

    #[test]
    fn the_slopes_are_the_finite_differences_of_the_values() {
        fn slope_against_differences<F: Pointwise>() {
            let (x, _) = inputs();
            let x = x.inner();
            let h = 1e-6;
            let diff = (F::value(x.clone().add_scalar(h)) - F::value(x.clone().sub_scalar(h))) / (2.0 * h);
            let host = |t: Tensor<NdArray<f64>, 2>| t.into_data().convert::<f64>().to_vec::<f64>().unwrap();
            let gap = worst(&host(F::slope(x)), &host(diff));
            assert!(gap < 1e-7, "{}: slope off the differences by {gap}", std::any::type_name::<F>());
        }
        slope_against_differences::<GeluNew>();
        slope_against_differences::<Silu>();
        slope_against_differences::<Softplus>();
    }

    #[test]
    fn without_autodiff_the_values_are_the_tensor_ops() {
        let x = Tensor::<NdArray<f32>, 1>::from_data(TensorData::new(vec![-3.0f32, -0.5, 0.0, 0.5, 3.0], [5]), (&NdArrayDevice::Cpu, DType::F32));
        let got = apply::<Silu, _, 1>(x.clone()).into_data().to_vec::<f32>().unwrap();
        let want: Vec<f32> = [-3.0f32, -0.5, 0.0, 0.5, 3.0].iter().map(|x| x / (1.0 + (-x).exp())).collect();
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} against {want:?}");
    }
}

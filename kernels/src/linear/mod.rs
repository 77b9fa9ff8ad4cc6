//! A linear layer (`y = x w + b`) with a `cubek-matmul` strategy chosen per
//! matmul, in place of the one strategy burn uses for all of them when autotune is off.
//!
//! `icl-lab bench matmul` on the H200 (GPT-2 e256 on 280 tokens, batch 64) timed every
//! strategy on the three matmuls of a training step; the fastest of each is fixed here, so no
//! run pays autotune's minutes: a TMA kernel forward, a specialised TMA kernel for ∂x, the
//! multi-row MMA kernel for the batched ∂w. A strategy that cannot take some operands (an
//! alignment TMA needs, say) falls back to burn's default.
//!
//! Layering as in [`crate::layer_norm`]: [`LinearKernels`] are the raw matmuls on
//! `CubeBackend` ([`cube`]) and `Fusion<CubeBackend>` ([`fusion`]); [`FusedLinear`] is the
//! differentiable op, implemented for those (forward only) and for `Autodiff` over either.

mod cube;
mod fusion;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, TensorMetadata, TensorPrimitive};

/// The strategy of each matmul (names from [`crate::matmul::STRATEGIES`]).
pub const FORWARD: &str = "simple-tma-cmma";
/// ∂x = ∂y wᵀ.
pub const INPUT_GRAD: &str = "specialized-tma-cmma";
/// ∂w = Σ_b xᵀ ∂y.
pub const WEIGHT_GRAD: &str = "simple-rows-mma";

/// The raw matmuls on a backend's primitives; `x` is `[b, t, d_in]`, `w` is `[d_in, d_out]`.
pub trait LinearKernels: Backend {
    /// `x w`: `[b, t, d_out]`.
    /// A stacked `w` (`[K·d_in, d_out]`, see [`linear`]) maps each member's rows by its own.
    fn linear_forward(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;

    /// ∂x (`[b, t, d_in]`), ∂w (`[d_in, d_out]`) and, when `bias`, ∂b (`[d_out]`, ∂y summed
    /// over its b·t rows) given ∂y; for a stacked `w`, ∂w `[K·d_in, d_out]` and ∂b `[K·d_out]`.
    fn linear_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, dy: FloatTensor<Self>, bias: bool) -> (FloatTensor<Self>, FloatTensor<Self>, Option<FloatTensor<Self>>);
}

/// Backends with the differentiable linear map.
pub trait FusedLinear: Backend {
    /// `x w + b` (`x` `[b, t, d_in]`, `b` `[d_out]`).
    fn fused_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: Option<FloatTensor<Self>>) -> FloatTensor<Self>;
}

/// `x w (+ b)` over the last dimension of `x` (any rank ≥ 2); `w` is `[d_in, d_out]`, `b` is
/// `[d_out]`. A stacked layer of K members (the models' `members`: K layers' weights one
/// above the other) has `w` `[K·d_in, d_out]` and `b` `[K·d_out]`, and `x`'s leading
/// dimensions hold the members' rows in order: member m's rows meet member m's weights.
pub fn linear<B: FusedLinear, const D: usize>(x: Tensor<B, D>, w: Tensor<B, 2>, b: Option<Tensor<B, 1>>) -> Tensor<B, D> {
    let dims = x.dims();
    let [w_rows, d_out] = w.dims();
    assert!(D >= 2, "linear: x needs a token and a feature dimension");
    let d_in = dims[D - 1];
    let k = w_rows / d_in.max(1);
    assert!(k >= 1 && k * d_in == w_rows, "linear: x's last dimension {d_in} must divide w's {w_rows} rows");
    let (t, nb) = (dims[D - 2], dims[..D - 2].iter().product::<usize>());
    assert!(nb.is_multiple_of(k), "linear: {k} members cannot split x's {nb} batch rows");
    if let Some(b) = &b {
        assert_eq!(b.dims(), [k * d_out], "linear: the bias must have w's {d_out} outputs a member");
    }
    let x3: Tensor<B, 3> = x.reshape([nb, t, d_in]);
    let y = B::fused_linear(x3.into_primitive().tensor(), w.into_primitive().tensor(), b.map(|b| b.into_primitive().tensor()));
    let mut out = dims;
    out[D - 1] = d_out;
    Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(y)).reshape(out)
}

/// `y + b` with `b` (`[d_out]`) broadcast over `y`'s `[b, t]` rows: an ordinary tensor op, so
/// burn-fusion fuses it with the element-wise operations after it. A stacked layer's bias
/// (`[K·d_out]`) adds member m's part to member m's share of the `b` rows.
pub(crate) fn add_bias<B: Backend>(y: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    let [nb, t, d_out] = y.shape().dims();
    let k = b.shape()[0] / d_out;
    if k == 1 {
        return B::float_add(y, B::float_reshape(b, Shape::new([1, 1, d_out])));
    }
    let y = B::float_reshape(y, Shape::new([k, nb / k, t, d_out]));
    let y = B::float_add(y, B::float_reshape(b, Shape::new([k, 1, 1, d_out])));
    B::float_reshape(y, Shape::new([nb, t, d_out]))
}

impl<B: LinearKernels, C: CheckpointStrategy> FusedLinear for Autodiff<B, C> {
    fn fused_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: Option<FloatTensor<Self>>) -> FloatTensor<Self> {
        let Some(b) = b else {
            return match LinearBackward::<2>.prepare::<C>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let (x, w) = (x.primitive, w.primitive);
                    let y = B::linear_forward(x.clone(), w.clone());
                    prep.finish((x, w), y)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::linear_forward(x.primitive, w.primitive)),
            };
        };
        match LinearBackward::<3>.prepare::<C>([x.node.clone(), w.node.clone(), b.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.primitive, w.primitive);
                let y = add_bias::<B>(B::linear_forward(x.clone(), w.clone()), b.primitive);
                prep.finish((x, w), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(add_bias::<B>(B::linear_forward(x.primitive, w.primitive), b.primitive)),
        }
    }
}

/// The backward step of `x w` (`N` = 2 parents) or `x w + b` (`N` = 3) in burn's autodiff
/// graph. ∂b comes from the same operation as ∂x and ∂w, summed by [`crate::column_sum`]
/// instead of autodiff's reduction per broadcast dimension.
#[derive(Debug)]
struct LinearBackward<const N: usize>;

impl<B: LinearKernels, const N: usize> Backward<B, N> for LinearBackward<N> {
    /// x and w.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, w) = ops.state;
        let (dx, dw, db) = B::linear_backward(x, w, dy, N == 3);
        for (parent, grad) in ops.parents.into_iter().zip([Some(dx), Some(dw), db]) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chosen_strategies_exist() {
        for name in [super::FORWARD, super::INPUT_GRAD, super::WEIGHT_GRAD] {
            assert!(crate::matmul::strategy(name).is_some(), "{name}");
        }
    }
}

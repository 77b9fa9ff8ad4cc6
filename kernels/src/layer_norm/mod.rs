//! Fused LayerNorm over the last dimension (with bias): one kernel forward, one backward
//! ([`kernel`]), in place of burn's generic LayerNorm, whose tensor ops launch two mean
//! reductions forward and, through autodiff, several reductions backward for every norm.
//!
//! Layering as in [`crate::scan`]: [`LayerNormKernels`] are the raw kernels, implemented for
//! `CubeBackend` ([`cube`]) and `Fusion<CubeBackend>` ([`fusion`]); [`FusedLayerNorm`] is the
//! differentiable op, implemented for those (forward only) and for `Autodiff` over either.

mod cube;
mod fusion;
mod kernel;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorPrimitive;

/// Whether the kernels take rows of `e` values: a warp per row with `e / 32` values a lane in
/// registers, so `e` a multiple of 32 up to 1,024.
pub fn supports_width(e: usize) -> bool {
    e > 0 && e % 32 == 0 && e <= 1024
}

/// The raw kernels on a backend's primitives. `x` is any rank, normalised over its last
/// dimension; `eps` is added to the (biased) variance.
pub trait LayerNormKernels: Backend {
    /// y (x's shape) and each row's mean and 1/σ (`[rows]` each).
    fn layer_norm_forward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f32) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// ∂x, ∂γ, ∂β given the forward's row statistics and ∂L/∂y.
    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Backends with a fused, differentiable LayerNorm.
pub trait FusedLayerNorm: Backend {
    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;
}

/// `(x − mean) / sqrt(var + eps) · γ + β` over the last dimension of `x` (`var` biased, as
/// PyTorch and burn). The last dimension must satisfy [`supports_width`].
pub fn layer_norm<B: FusedLayerNorm, const D: usize>(x: Tensor<B, D>, gamma: Tensor<B, 1>, beta: Tensor<B, 1>, eps: f32) -> Tensor<B, D> {
    let e = x.dims()[D - 1];
    assert!(supports_width(e), "layer norm: no kernel for width {e} (a multiple of 32 up to 1,024)");
    assert_eq!(gamma.dims(), [e], "layer norm: gamma must be [{e}]");
    assert_eq!(beta.dims(), [e], "layer norm: beta must be [{e}]");
    let prim = |t: TensorPrimitive<B>| t.tensor();
    let y = B::fused_layer_norm(prim(x.into_primitive()), prim(gamma.into_primitive()), prim(beta.into_primitive()), eps);
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

impl<B: LayerNormKernels, C: CheckpointStrategy> FusedLayerNorm for Autodiff<B, C> {
    fn fused_layer_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
        match LayerNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.primitive, gamma.primitive);
                let (y, mean, rstd) = B::layer_norm_forward(x.clone(), gamma.clone(), beta.primitive, eps);
                prep.finish((x, gamma, mean, rstd), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_forward(x.primitive, gamma.primitive, beta.primitive, eps).0),
        }
    }
}

/// The backward step of the fused LayerNorm in burn's autodiff graph.
#[derive(Debug)]
struct LayerNormBackward;

impl<B: LayerNormKernels> Backward<B, 3> for LayerNormBackward {
    /// x, γ and the rows' mean and 1/σ.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, mean, rstd) = ops.state;
        let (dx, dgamma, dbeta) = B::layer_norm_backward(x, gamma, mean, rstd, dy);
        for (parent, grad) in ops.parents.into_iter().zip([dx, dgamma, dbeta]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_whole_warps_that_fit_in_registers() {
        for e in [32, 64, 128, 256, 512, 1024] {
            assert!(supports_width(e), "{e}");
        }
        for e in [0, 16, 20, 100, 1056, 2048] {
            assert!(!supports_width(e), "{e}");
        }
        // The backward's column sums cover a row with whole rounds of a cube's threads.
        assert_eq!(kernel::WARPS * 32, 256);
    }
}

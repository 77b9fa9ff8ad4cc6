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

/// Members γ and β hold for `x` of `rows` rows of `e`: γ has `K·e` values, and x's rows come
/// in `K` equal blocks, block k normalised with γ's and β's k-th `e` values (several runs
/// stacked as one model). Panics when γ is not whole rows of `e` or K does not divide `rows`.
pub fn members(rows: usize, e: usize, gamma_len: usize) -> usize {
    assert!(e > 0 && gamma_len > 0 && gamma_len.is_multiple_of(e), "layer norm: gamma of {gamma_len} values is not whole rows of {e}");
    let k = gamma_len / e;
    assert!(rows.is_multiple_of(k), "layer norm: {rows} rows do not split into {k} members");
    k
}

/// The raw kernels on a backend's primitives. `x` is any rank, normalised over its last
/// dimension; `eps` is added to the (biased) variance. γ and β are `[K·e]` for `K` members
/// ([`members`]), `[e]` for one.
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
/// PyTorch and burn). The last dimension must satisfy [`supports_width`]. γ and β are `[e]`,
/// or `[K·e]` for `K` members whose rows split x's first dimension into `K` equal blocks
/// ([`members`]).
pub fn layer_norm<B: FusedLayerNorm, const D: usize>(x: Tensor<B, D>, gamma: Tensor<B, 1>, beta: Tensor<B, 1>, eps: f32) -> Tensor<B, D> {
    let dims = x.dims();
    let e = dims[D - 1];
    assert!(supports_width(e), "layer norm: no kernel for width {e} (a multiple of 32 up to 1,024)");
    // Members split the first dimension, so they split the rows into blocks too.
    members(dims[0], e, gamma.dims()[0]);
    assert_eq!(beta.dims(), gamma.dims(), "layer norm: beta must have gamma's shape");
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

    #[test]
    fn members_are_whole_rows_of_gamma_that_split_the_rows() {
        assert_eq!(members(5248, 128, 128), 1);
        assert_eq!(members(16 * 5248, 128, 16 * 128), 16);
        assert_eq!(members(0, 64, 3 * 64), 3);
        for (rows, e, len) in [(10, 64, 100), (10, 64, 3 * 64), (10, 64, 0)] {
            assert!(std::panic::catch_unwind(|| members(rows, e, len)).is_err(), "{rows} {e} {len}");
        }
    }
}

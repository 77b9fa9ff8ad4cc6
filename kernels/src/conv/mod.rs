//! Fused causal depthwise conv1d (Mamba's, paper-spec §6.2 step 2): `y[b, t, c] = bias[c] +
//! Σ_j w[c, j] · x[b, t − k + 1 + j, c]`, x zero before the sequence. One kernel forward; one
//! backward for ∂x and per-piece partial sums of ∂w and ∂bias, summed by a column sum. In
//! tensor ops the conv is a `cat` with zeros and `k` shifted slices, and its autodiff a zero
//! tensor and a slice-assign for every slice, plus the adds where they meet: ~60 of the 470
//! kernel launches of a Mamba e128 step (`icl-lab bench host --kernels`), which are what bound
//! the small configs' steps on a GPU.
//!
//! Layering as in [`crate::layer_norm`]: [`CausalConvKernels`] are the raw kernels, for
//! `CubeBackend` ([`cube`]) and `Fusion<CubeBackend>` ([`fusion`]); [`FusedCausalConv`] is the
//! differentiable op, for those (forward only) and for `Autodiff` over either.

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

/// Filter widths the kernels are compiled for (the tap loop is unrolled).
pub const WIDTHS: [usize; 4] = [2, 3, 4, 5];

/// Whether the kernels take filters of `k` taps.
pub fn supports_width(k: usize) -> bool {
    WIDTHS.contains(&k)
}

/// The raw kernels on a backend's primitives: x `[b, l, c]`, w `[c, k]`, bias `[c]`; or, for
/// K stacked members, w `[K·c, k]` and bias `[K·c]` with sequence r member `r / (b / K)`'s
/// (no copies into a channel layout and back).
pub trait CausalConvKernels: Backend {
    /// y `[b, l, c]`.
    fn causal_conv_forward(x: FloatTensor<Self>, w: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;

    /// ∂x, ∂w, ∂bias given ∂L/∂y.
    fn causal_conv_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, dy: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Backends with a fused, differentiable causal conv.
pub trait FusedCausalConv: Backend {
    fn fused_causal_conv(x: FloatTensor<Self>, w: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The causal depthwise conv1d of x `[b, l, c]` with w `[c, k]` (`k` one of [`WIDTHS`]) and
/// bias `[c]`: y `[b, l, c]`. K stacked members: w `[K·c, k]`, bias `[K·c]`, sequence r
/// member `r / (b / K)`'s.
pub fn causal_conv1d<B: FusedCausalConv>(x: Tensor<B, 3>, w: Tensor<B, 2>, bias: Tensor<B, 1>) -> Tensor<B, 3> {
    let [b, _, c] = x.dims();
    let [wc, k] = w.dims();
    assert!(wc.is_multiple_of(c) && b.is_multiple_of(wc / c), "causal conv: w's {wc} channels are not whole members of x's {c} over {b} sequences");
    assert!(supports_width(k), "causal conv: no kernel for {k} taps (one of {WIDTHS:?})");
    assert_eq!(bias.dims(), [wc], "causal conv: bias must be [{wc}]");
    let prim = |t: TensorPrimitive<B>| t.tensor();
    Tensor::from_primitive(TensorPrimitive::Float(B::fused_causal_conv(prim(x.into_primitive()), prim(w.into_primitive()), prim(bias.into_primitive()))))
}

impl<B: CausalConvKernels, C: CheckpointStrategy> FusedCausalConv for Autodiff<B, C> {
    fn fused_causal_conv(x: FloatTensor<Self>, w: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [x.node.clone(), w.node.clone(), bias.node.clone()];
        match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.primitive, w.primitive);
                let y = B::causal_conv_forward(x.clone(), w.clone(), bias.primitive);
                prep.finish((x, w), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::causal_conv_forward(x.primitive, w.primitive, bias.primitive)),
        }
    }
}

/// The backward step of the fused conv in burn's autodiff graph.
#[derive(Debug)]
struct ConvBackward;

impl<B: CausalConvKernels> Backward<B, 3> for ConvBackward {
    /// x and w.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, w) = ops.state;
        let (dx, dw, dbias) = B::causal_conv_backward(x, w, dy);
        for (parent, grad) in ops.parents.into_iter().zip([dx, dw, dbias]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

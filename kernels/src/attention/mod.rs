//! Fused causal softmax attention.
//!
//! `y_i = Σ_{j ≤ i} softmax_j(q_i · k_j / √d) v_j` per batch row and head, read straight from
//! the packed projection `qkv` `[b, t, 3e]` (q, k, v side by side, `h` heads of `d = e / h`
//! columns each) and written as `[b, t, e]`, the layout the output projection reads: no head
//! reshapes, no `[b, h, t, t]` scores, probabilities or mask in memory. Forward: one kernel
//! (online softmax, saves one log-sum-exp per row). Backward: two kernels, ∂q by query rows
//! then ∂k, ∂v by key rows, recomputing the probabilities from the saved log-sum-exp.
//!
//! Layering as in [`crate::scan`]: [`AttentionKernels`] are the raw kernels, implemented for
//! `CubeBackend` ([`cube`]) and for `Fusion<CubeBackend>` ([`fusion`]); [`FusedAttention`]
//! is the differentiable op, implemented for those (forward only) and for `Autodiff` over
//! either. The tensor-op attention in `icl_lab::models::transformer` is the reference.

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

/// Head sizes the kernels are compiled for (a thread keeps up to four rows of `d / lanes` floats in
/// registers). Other sizes take the tensor-op attention.
pub const HEAD_SIZES: [usize; 4] = [8, 16, 32, 64];

/// Threads per row the kernels may use (`ICL_LAB_ATTENTION_LANES`); each divides every head
/// size, and a row's threads stay within one warp.
pub const LANES: [usize; 3] = [1, 2, 4];

/// `ICL_LAB_ATTENTION_LANES`: threads per row, 1, 2 or 4.
pub const LANES_ENV: &str = "ICL_LAB_ATTENTION_LANES";

/// Threads per row by default: two halve a thread's registers against one (which spilled in
/// the key-side backward at head size 32).
pub const DEFAULT_LANES: usize = 2;

/// The process's threads per row: `ICL_LAB_ATTENTION_LANES` (another value is reported once
/// on stderr and ignored), else [`DEFAULT_LANES`].
pub fn chosen_lanes() -> usize {
    static LANES_CHOSEN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LANES_CHOSEN.get_or_init(|| {
        crate::env_choice(LANES_ENV, DEFAULT_LANES, |v| match v.trim().parse::<usize>() {
            Ok(n) if LANES.contains(&n) => Ok(n),
            _ => Err(format!("not one of {LANES:?}")),
        })
    })
}

/// Whether the fused kernels take heads of `d` columns.
pub fn supports_head_size(d: usize) -> bool {
    HEAD_SIZES.contains(&d)
}

/// The raw kernels on a backend's primitives.
pub trait AttentionKernels: Backend {
    /// y `[b, t, e]` and the per-row log-sum-exp `[b, heads, t]` from `qkv` `[b, t, 3e]`.
    fn attention_forward(qkv: FloatTensor<Self>, heads: usize) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// ∂qkv `[b, t, 3e]` given the forward's y and log-sum-exp and ∂L/∂y.
    fn attention_backward(qkv: FloatTensor<Self>, y: FloatTensor<Self>, lse: FloatTensor<Self>, dy: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;
}

/// Backends with a fused, differentiable causal attention.
pub trait FusedAttention: Backend {
    fn fused_attention(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;
}

/// Causal attention of `heads` heads over the packed projection `qkv` `[b, t, 3e]`; y
/// `[b, t, e]`. `e / heads` must be one of [`HEAD_SIZES`].
pub fn causal_attention<B: FusedAttention>(qkv: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
    let [_, t, e3] = qkv.dims();
    assert!(heads > 0 && e3 % (3 * heads) == 0, "causal attention: qkv's last dim {e3} is not 3 x heads ({heads}) x d");
    assert!(supports_head_size(e3 / 3 / heads), "causal attention: head size {} is not one of {HEAD_SIZES:?}", e3 / 3 / heads);
    assert!(t > 0, "causal attention: empty sequence");
    let y = B::fused_attention(qkv.into_primitive().tensor(), heads);
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

impl<B: AttentionKernels, C: CheckpointStrategy> FusedAttention for Autodiff<B, C> {
    fn fused_attention(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        let step = AttentionBackward { heads };
        match step.prepare::<C>([qkv.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.primitive;
                let (y, lse) = B::attention_forward(qkv.clone(), heads);
                prep.finish((qkv, y.clone(), lse), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::attention_forward(qkv.primitive, heads).0),
        }
    }
}

/// The backward step of the fused attention in burn's autodiff graph.
#[derive(Debug)]
struct AttentionBackward {
    heads: usize,
}

impl<B: AttentionKernels> Backward<B, 1> for AttentionBackward {
    /// qkv, y and the per-row log-sum-exp.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (qkv, y, lse) = ops.state;
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::attention_backward(qkv, y, lse, dy, self.heads));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_sizes_fit_the_tile_loads() {
        for d in HEAD_SIZES {
            assert!(supports_head_size(d));
        }
        // A cube is whole warps (its threads are the tile's rows, `lanes` a row), a row's
        // threads split every head size evenly and sit in one warp.
        assert_eq!(kernel::BLOCK % 32, 0);
        for lanes in LANES {
            assert!(HEAD_SIZES.iter().all(|d| d % lanes == 0) && 32 % lanes == 0, "lanes {lanes}");
        }
        assert!(LANES.contains(&DEFAULT_LANES));
        assert!(!supports_head_size(12) && !supports_head_size(128) && !supports_head_size(0));
    }
}

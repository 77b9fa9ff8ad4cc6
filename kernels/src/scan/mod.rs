//! The fused selective scan.
//!
//! `h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t`,  `y_t = C_t · h_t + D ⊙ x_t`  (per batch b,
//! channel e, state entry n).
//!
//! One GPU thread per (batch, channel) runs over time with its `N` state entries in registers
//! ([`kernel`]). The forward saves the state entering every chunk of [`CHUNK`] steps; the
//! backward walks the chunks last to first, recomputes the chunk's states from its saved start
//! (into a per-thread scratch that stays in L2), and runs the adjoint recurrence
//! `g_t = C_t ∂y_t + exp(Δ_{t+1} A) g_{t+1}` back through the chunk. Sums over channels
//! (∂B, ∂C) are warp reductions; sums over batch (∂A, ∂D) are per-thread accumulators
//! reduced with one tensor op afterwards.
//!
//! Layering: [`ScanKernels`] is the pair of raw kernels (inputs in, outputs out), implemented
//! for `CubeBackend` ([`cube`]) and for `Fusion<CubeBackend>` ([`fusion`], a custom fusion
//! operation). [`FusedScan`] is the differentiable op a model calls, implemented for those two
//! (forward only) and for `Autodiff` over either (forward kernel + backward kernel).

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

/// Steps between the states the forward saves for the backward. The backward's scratch is
/// `b·E·N·CHUNK` floats and the saved states `b·E·N·⌈L/CHUNK⌉`.
pub const CHUNK: usize = 16;

/// The six operands of a scan (or their six gradients), in this order everywhere.
///
/// # Shapes
/// - x, delta: `[b, l, e]` (delta after softplus)
/// - a: `[e, n]`
/// - b, c: `[b, l, n]`
/// - d: `[e]`
#[derive(Debug, Clone)]
pub struct Scan<T> {
    pub x: T,
    pub delta: T,
    pub a: T,
    pub b: T,
    pub c: T,
    pub d: T,
}

impl<T> Scan<T> {
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Scan<U> {
        Scan { x: f(self.x), delta: f(self.delta), a: f(self.a), b: f(self.b), c: f(self.c), d: f(self.d) }
    }

    pub fn into_array(self) -> [T; 6] {
        [self.x, self.delta, self.a, self.b, self.c, self.d]
    }

    pub fn from_array([x, delta, a, b, c, d]: [T; 6]) -> Self {
        Scan { x, delta, a, b, c, d }
    }
}

/// The raw kernels on a backend's primitives.
pub trait ScanKernels: Backend {
    /// Returns y `[b, l, e]` and, when `save`, the states entering each chunk (an opaque
    /// tensor for [`ScanKernels::scan_backward`]).
    fn scan_forward(inp: Scan<FloatTensor<Self>>, save: bool) -> (FloatTensor<Self>, Option<FloatTensor<Self>>);

    /// Gradients of the six operands given ∂L/∂y `dy` and the forward's saved states.
    fn scan_backward(inp: Scan<FloatTensor<Self>>, states: FloatTensor<Self>, dy: FloatTensor<Self>) -> Scan<FloatTensor<Self>>;
}

/// Backends with a fused, differentiable selective scan.
pub trait FusedScan: Backend {
    fn fused_scan(inp: Scan<FloatTensor<Self>>) -> FloatTensor<Self>;
}

/// The fused selective scan; y `[b, l, e]`. Shapes as in [`Scan`].
pub fn selective_scan<B: FusedScan>(
    x: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    a: Tensor<B, 2>,
    b: Tensor<B, 3>,
    c: Tensor<B, 3>,
    d: Tensor<B, 1>,
) -> Tensor<B, 3> {
    let [nb, l, e] = x.dims();
    let n = a.dims()[1];
    assert_eq!(delta.dims(), [nb, l, e], "selective scan: delta must have x's shape");
    assert_eq!(a.dims(), [e, n], "selective scan: A must be [e, n] = [{e}, {n}]");
    assert_eq!(b.dims(), [nb, l, n], "selective scan: B must be [b, l, n] = [{nb}, {l}, {n}]");
    assert_eq!(c.dims(), [nb, l, n], "selective scan: C must be [b, l, n] = [{nb}, {l}, {n}]");
    assert_eq!(d.dims(), [e], "selective scan: D must be [e] = [{e}]");
    let prim = |t: TensorPrimitive<B>| t.tensor();
    let inp = Scan {
        x: prim(x.into_primitive()),
        delta: prim(delta.into_primitive()),
        a: prim(a.into_primitive()),
        b: prim(b.into_primitive()),
        c: prim(c.into_primitive()),
        d: prim(d.into_primitive()),
    };
    Tensor::from_primitive(TensorPrimitive::Float(B::fused_scan(inp)))
}

impl<B: ScanKernels, C: CheckpointStrategy> FusedScan for Autodiff<B, C> {
    fn fused_scan(inp: Scan<FloatTensor<Self>>) -> FloatTensor<Self> {
        let nodes = [&inp.x, &inp.delta, &inp.a, &inp.b, &inp.c, &inp.d].map(|t| t.node.clone());
        match ScanBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let prims = inp.map(|t| t.primitive);
                let (y, states) = B::scan_forward(prims.clone(), true);
                let states = states.expect("scan_forward(save = true) returns the states");
                prep.finish((prims, states), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::scan_forward(inp.map(|t| t.primitive), false).0),
        }
    }
}

/// The backward step of the fused scan in burn's autodiff graph.
#[derive(Debug)]
struct ScanBackward;

impl<B: ScanKernels> Backward<B, 6> for ScanBackward {
    /// The operands and the saved chunk states.
    type State = (Scan<FloatTensor<B>>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (inp, states) = ops.state;
        let g = B::scan_backward(inp, states, dy);
        for (parent, grad) in ops.parents.into_iter().zip(g.into_array()) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

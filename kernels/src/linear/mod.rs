//! A linear layer (`y = x w + b`) with a `cubek-matmul` strategy chosen per
//! matmul, in place of the one strategy burn uses for all of them when autotune is off.
//!
//! `icl-lab bench matmul` timed cubek's strategies on the three matmuls of a training step
//! (the H200, session 8; an H100, sessions 18 and 20) and tilings of our own
//! ([`crate::matmul::Tiles`]); the fastest of each is fixed here, so no run pays autotune's
//! minutes: our 128 x 64 x 32 TMA stages forward and for ∂x, the multi-row MMA kernel for the
//! batched ∂w. A strategy that cannot take some operands (an alignment TMA needs, say) falls
//! back to burn's default. `ICL_LAB_LINEAR_STRATEGIES` names others for A/B runs.
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
use burn::tensor::TensorPrimitive;

/// The strategy of each matmul ([`crate::matmul::choice`] names): all three on our own kernel
/// ([`crate::gemm`], 128 x 128 tiles of C, eight warps, three stages of K in flight), timed by
/// `bench matmul` on an H100 against every cubek strategy and tiling on our shapes
/// (docs/performance.md, "Session 21"). Before it: the forward and ∂x on a cubek tiling of our
/// own (`tile-tma-m4x2-n4-k4-s`), ∂w on `simple-rows-mma` (session 20).
pub const FORWARD: &str = crate::gemm::DEFAULT;
/// ∂x = ∂y wᵀ.
pub const INPUT_GRAD: &str = crate::gemm::DEFAULT;
/// ∂w = Σ_b xᵀ ∂y (one matmul over all b·t rows on our kernel).
pub const WEIGHT_GRAD: &str = crate::gemm::DEFAULT;

/// `ICL_LAB_LINEAR_STRATEGIES=<forward>,<dx>,<dw>`: other strategies for the three matmuls
/// (for A/B runs; a bad list is reported once and the defaults kept).
pub const STRATEGIES_ENV: &str = "ICL_LAB_LINEAR_STRATEGIES";

/// The strategies of a linear layer's three matmuls, by name (see [`crate::matmul::choice`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strategies {
    /// `y = x w`.
    pub forward: &'static str,
    /// `∂x = ∂y wᵀ`.
    pub input_grad: &'static str,
    /// `∂w = Σ_b xᵀ ∂y`.
    pub weight_grad: &'static str,
}

impl Strategies {
    pub const DEFAULT: Strategies = Strategies { forward: FORWARD, input_grad: INPUT_GRAD, weight_grad: WEIGHT_GRAD };

    /// Three strategy names, `forward,dx,dw`, each one [`crate::matmul::choice`] knows.
    pub fn parse(list: &str) -> Result<Strategies, String> {
        let names: Vec<&str> = list.split(',').map(str::trim).collect();
        let [forward, dx, dw] = names[..] else {
            return Err("expected three strategies: forward,dx,dw".to_string());
        };
        let known = |name: &str| -> Result<&'static str, String> {
            crate::matmul::choice(name).ok_or_else(|| format!("unknown strategy {name:?}"))?;
            // Once a process: the names live as long as the process's choice.
            Ok(Box::leak(name.to_string().into_boxed_str()))
        };
        Ok(Strategies { forward: known(forward)?, input_grad: known(dx)?, weight_grad: known(dw)? })
    }

    /// The process's strategies: [`STRATEGIES_ENV`]'s, else [`Strategies::DEFAULT`].
    pub fn chosen() -> Strategies {
        static CHOSEN: std::sync::OnceLock<Strategies> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let defaults = Strategies::DEFAULT;
            match std::env::var(STRATEGIES_ENV) {
                Ok(list) => Strategies::parse(&list).unwrap_or_else(|why| {
                    eprintln!("{STRATEGIES_ENV}={list:?}: {why}; using {},{},{}", defaults.forward, defaults.input_grad, defaults.weight_grad);
                    defaults
                }),
                Err(_) => defaults,
            }
        })
    }
}

/// The raw matmuls on a backend's primitives; `x` is `[b, t, d_in]`, `w` is `[d_in, d_out]`.
pub trait LinearKernels: Backend {
    /// `x w (+ b)`: `[b, t, d_out]`, the bias added as our matmul writes the product.
    /// A stacked `w` (`[K·d_in, d_out]`, see [`linear`]) maps each member's rows by its own,
    /// and adds its own bias (`b` `[K·d_out]`).
    fn linear_forward(x: FloatTensor<Self>, w: FloatTensor<Self>, b: Option<FloatTensor<Self>>) -> FloatTensor<Self>;

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

impl<B: LinearKernels, C: CheckpointStrategy> FusedLinear for Autodiff<B, C> {
    fn fused_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: Option<FloatTensor<Self>>) -> FloatTensor<Self> {
        let Some(b) = b else {
            return match LinearBackward::<2>.prepare::<C>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let (x, w) = (x.primitive, w.primitive);
                    let y = B::linear_forward(x.clone(), w.clone(), None);
                    prep.finish((x, w), y)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::linear_forward(x.primitive, w.primitive, None)),
            };
        };
        match LinearBackward::<3>.prepare::<C>([x.node.clone(), w.node.clone(), b.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.primitive, w.primitive);
                let y = B::linear_forward(x.clone(), w.clone(), Some(b.primitive));
                prep.finish((x, w), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::linear_forward(x.primitive, w.primitive, Some(b.primitive))),
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
    fn default_strategies_exist() {
        let chosen = super::Strategies::DEFAULT;
        for name in [chosen.forward, chosen.input_grad, chosen.weight_grad] {
            assert!(crate::matmul::choice(name).is_some(), "{name}");
        }
    }

    #[test]
    fn strategy_lists_name_three_known_strategies() {
        use super::Strategies;
        let three = |forward, input_grad, weight_grad| Ok(Strategies { forward, input_grad, weight_grad });
        assert_eq!(Strategies::parse(" simple-tma-cmma, specialized-tma-cmma,simple-rows-mma "), three("simple-tma-cmma", "specialized-tma-cmma", "simple-rows-mma"));
        assert_eq!(Strategies::parse("tile-tma-m4x2-n4-k4-s,auto,unit"), three("tile-tma-m4x2-n4-k4-s", "auto", "unit"));
        assert!(Strategies::parse("auto,unit").unwrap_err().contains("three"));
        assert!(Strategies::parse("auto,unit,fastest").unwrap_err().contains("\"fastest\""));
    }
}

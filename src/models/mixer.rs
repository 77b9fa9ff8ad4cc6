//! `mamba_ssm`'s `MixerModel` as the paper's code extends it (paper-spec §3.2–§3.6): a stack of
//! pre-LN residual blocks `h += mixer(LN(h))` with no MLPs, then a final LayerNorm. The mixer
//! of each block is Mamba, S4, S4-Mamba or causal attention; the block order is the
//! architecture (Mamba, S4, S4-Mamba, MambaFormer, Standard Hybrid).

use burn::module::Param;
use burn::nn::LayerNorm;
use burn::prelude::*;

use super::init::{Dist, Init};
use super::members::add_positions;
use super::norm::norm;
use super::mamba::{Mamba, MambaDims};
use super::s4::{S4Mamba, S4};
use super::transformer::CausalSelfAttention;

#[derive(Module, Debug)]
pub enum Mixer<B: Backend> {
    Mamba(Mamba<B>),
    S4(S4<B>),
    S4Mamba(S4Mamba<B>),
    Attention(CausalSelfAttention<B>),
}

impl<B: Backend> Mixer<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Mixer::Mamba(m) => m.forward(x),
            Mixer::S4(m) => m.forward(x),
            Mixer::S4Mamba(m) => m.forward(x),
            Mixer::Attention(m) => m.forward(x),
        }
    }

    /// The attention mixer of the hybrids (`mamba_simple.CausalSelfAttention`): PyTorch default
    /// weights, zeroed biases (`_init_weights`), `c_proj` not rescaled.
    pub fn attention(init: &mut Init<B>, n_embd: usize, n_head: usize) -> Self {
        let w = Dist::torch_default(n_embd);
        Mixer::Attention(CausalSelfAttention::new(init, n_embd, n_head, w, w, Dist::Zeros))
    }

    pub fn mamba(init: &mut Init<B>, dims: MambaDims, n_layer: usize) -> Self {
        Mixer::Mamba(Mamba::new(init, dims, n_layer))
    }
}

#[derive(Module, Debug)]
pub struct MixerBlock<B: Backend> {
    pub norm: LayerNorm<B>,
    pub mixer: Mixer<B>,
}

/// The backbone of every non-GPT-2 architecture.
#[derive(Module, Debug)]
pub struct MixerModel<B: Backend> {
    /// Learned positions, `[n_positions, e]` in tokens (Standard Hybrid only; N(0, 1)).
    pub wpe: Option<Param<Tensor<B, 2>>>,
    pub blocks: Vec<MixerBlock<B>>,
    pub norm_f: LayerNorm<B>,
}

impl<B: Backend> MixerModel<B> {
    pub fn new(init: &mut Init<B>, n_embd: usize, mixers: Vec<Mixer<B>>, wpe_rows: Option<usize>) -> Self {
        MixerModel {
            wpe: wpe_rows.map(|rows| init.param([rows, n_embd], Dist::Normal(1.0))),
            blocks: mixers.into_iter().map(|mixer| MixerBlock { norm: init.layer_norm(n_embd), mixer }).collect(),
            norm_f: init.layer_norm(n_embd),
        }
    }

    /// # Shapes
    /// - x: `[b, t, e]` -> `[b, t, e]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let members = super::members::count(self.norm_f.gamma.dims()[0], x.dims()[2]);
        let mut h = match &self.wpe {
            Some(wpe) => add_positions(x, wpe.val(), members),
            None => x,
        };
        for block in &self.blocks {
            h = h.clone() + block.mixer.forward(norm(&block.norm, h));
        }
        norm(&self.norm_f, h)
    }
}

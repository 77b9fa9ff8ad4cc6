//! GPT-2 as HF `GPT2Model` builds it for the paper (paper-spec §3.1): learned absolute
//! positions, pre-LN blocks `h += Attn(LN1(h)); h += MLP(LN2(h))`, GELU-tanh MLP of width 4e,
//! causal softmax attention, final LayerNorm. No token embedding: inputs arrive as embeddings.

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use super::attention::{causal_attention, AttentionMode};
use super::dense::dense;
use super::init::{Dist, Init};
use super::members::add_positions;
use super::norm::norm;
use super::pointwise::gelu_new;

/// HF `initializer_range`.
const INIT_STD: f32 = 0.02;

/// Causal multi-head self-attention with fused q, k, v projection (HF `c_attn`).
#[derive(Module, Debug)]
pub struct CausalSelfAttention<B: Backend> {
    pub c_attn: Linear<B>,
    pub c_proj: Linear<B>,
    pub n_head: usize,
    #[module(skip)]
    pub mode: AttentionMode,
}

impl<B: Backend> CausalSelfAttention<B> {
    /// Weights from `weight`, `c_proj` from `proj`, biases from `bias`.
    pub fn new(init: &mut Init<B>, n_embd: usize, n_head: usize, weight: Dist, proj: Dist, bias: Dist) -> Self {
        Self {
            c_attn: init.linear(n_embd, 3 * n_embd, weight, Some(bias)),
            c_proj: init.linear(n_embd, n_embd, proj, Some(bias)),
            n_head,
            mode: AttentionMode::for_backend::<B>(),
        }
    }

    /// # Shapes
    /// - x: `[b, t, e]` -> `[b, t, e]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let qkv = dense(&self.c_attn, x); // (b, t, 3e)
        dense(&self.c_proj, causal_attention(qkv, self.n_head, self.mode))
    }
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub c_fc: Linear<B>,
    pub c_proj: Linear<B>,
}

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub ln_1: LayerNorm<B>,
    pub attn: CausalSelfAttention<B>,
    pub ln_2: LayerNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    fn new(init: &mut Init<B>, n_embd: usize, n_head: usize, n_layer: usize) -> Self {
        let w = Dist::Normal(INIT_STD);
        // GPT-2's residual projections are scaled by 1/sqrt(2L) (two per block).
        let proj = Dist::Normal(INIT_STD / ((2 * n_layer) as f32).sqrt());
        Self {
            ln_1: init.layer_norm(n_embd),
            attn: CausalSelfAttention::new(init, n_embd, n_head, w, proj, Dist::Zeros),
            ln_2: init.layer_norm(n_embd),
            mlp: Mlp {
                c_fc: init.linear(n_embd, 4 * n_embd, w, Some(Dist::Zeros)),
                c_proj: init.linear(4 * n_embd, n_embd, proj, Some(Dist::Zeros)),
            },
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(norm(&self.ln_1, x));
        let hidden = gelu_new(dense(&self.mlp.c_fc, norm(&self.ln_2, x.clone())));
        x + dense(&self.mlp.c_proj, hidden)
    }
}

/// The GPT-2 backbone: embeddings in, normalised hidden states out.
#[derive(Module, Debug)]
pub struct Gpt2<B: Backend> {
    /// Learned positions, `[2 * n_positions, e]` (one per x or y token).
    pub wpe: Param<Tensor<B, 2>>,
    pub blocks: Vec<Block<B>>,
    pub ln_f: LayerNorm<B>,
}

impl<B: Backend> Gpt2<B> {
    pub fn new(init: &mut Init<B>, n_embd: usize, n_layer: usize, n_head: usize, n_positions: usize) -> Self {
        Self {
            wpe: init.param([2 * n_positions, n_embd], Dist::Normal(INIT_STD)),
            blocks: (0..n_layer).map(|_| Block::new(init, n_embd, n_head, n_layer)).collect(),
            ln_f: init.layer_norm(n_embd),
        }
    }

    /// # Shapes
    /// - x: `[b, t, e]` with t <= 2 * n_positions -> `[b, t, e]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let members = super::members::count(self.ln_f.gamma.dims()[0], x.dims()[2]);
        let mut h = add_positions(x, self.wpe.val(), members);
        for block in &self.blocks {
            h = block.forward(h);
        }
        norm(&self.ln_f, h)
    }
}


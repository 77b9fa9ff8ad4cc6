//! Sequence models for ICL, generic over the burn backend.
//!
//! Every model is `read_in -> backbone -> read_out` (paper-spec §1.1): one shared
//! `Linear(d, e)` read-in for x and zero-padded y tokens, a backbone that maps `(b, t, e)` to
//! `(b, t, e)` causally, and a `Linear(e, 1)` read-out applied at the x-token positions.

pub mod init;
pub mod transformer;

use burn::nn::Linear;
use burn::prelude::*;

use crate::spec::ModelSpec;
use init::Init;
pub use transformer::Gpt2;

/// The architecture-specific middle of a model.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    Gpt2(Gpt2<B>),
}

impl<B: Backend> Backbone<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Backbone::Gpt2(m) => m.forward(x),
        }
    }
}

/// A full ICL model.
#[derive(Module, Debug)]
pub struct IclModel<B: Backend> {
    pub read_in: Linear<B>,
    pub backbone: Backbone<B>,
    pub read_out: Linear<B>,
}

impl<B: Backend> IclModel<B> {
    /// Builds the model of `spec` for tokens of width `n_dims`, drawing weights from `seed`.
    pub fn new(spec: &ModelSpec, n_dims: usize, seed: u64, device: &B::Device) -> Self {
        let mut init = Init::<B>::new(seed, device);
        match spec {
            ModelSpec::Gpt2 { n_embd, n_layer, n_head, n_positions } => {
                // Read-in and read-out keep PyTorch's default Linear init (outside GPT2Model).
                let read_in = init.torch_linear(n_dims, *n_embd, true);
                let backbone = Backbone::Gpt2(Gpt2::new(&mut init, *n_embd, *n_layer, *n_head, *n_positions));
                let read_out = init.torch_linear(*n_embd, 1, true);
                IclModel { read_in, backbone, read_out }
            }
        }
    }

    /// Per-token outputs of the read-out.
    ///
    /// # Shapes
    /// - tokens: `[b, t, d]` -> `[b, t, 1]`
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.backbone.forward(self.read_in.forward(tokens));
        self.read_out.forward(h)
    }

    /// Predictions at the x tokens of interleaved prompts (paper-spec §1.1 step 6); the
    /// read-out only runs where it is read.
    ///
    /// # Shapes
    /// - tokens: `[b, 2n, d]` -> `[b, n]`
    pub fn predict_at_x(&self, tokens: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, t, _] = tokens.dims();
        let n = t / 2;
        let h = self.backbone.forward(self.read_in.forward(tokens));
        let e = h.dims()[2];
        let at_x = h.reshape([b, n, 2, e]).slice([0..b, 0..n, 0..1, 0..e]).reshape([b, n, e]);
        self.read_out.forward(at_x).reshape([b, n])
    }
}

/// Size and cost of a model, reported with every run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelStats {
    pub params: usize,
    /// Forward FLOPs per token at the given sequence length (multiply-add = 2 FLOPs).
    pub flops_per_token: f64,
}

/// Forward FLOPs per token for a model of `params` parameters at sequence length `t`:
/// 2 per weight, plus attention's scores and weighted sum (2·2·t·e per layer, averaged over
/// causal positions as t/2).
pub fn flops_per_token(spec: &ModelSpec, params: usize, t: usize) -> f64 {
    let dense = 2.0 * params as f64;
    match spec {
        ModelSpec::Gpt2 { n_embd, n_layer, .. } => {
            dense + (*n_layer as f64) * 2.0 * 2.0 * (t as f64 / 2.0) * *n_embd as f64
        }
    }
}

#[cfg(test)]
mod tests;

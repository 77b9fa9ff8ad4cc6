//! Sequence models for ICL, generic over the burn backend.
//!
//! Every model is `read_in -> backbone -> read_out` (paper-spec §1.1): one shared
//! `Linear(d_in, e)` read-in for every token, a backbone that maps `(b, t, e)` to `(b, t, e)`
//! causally, and a `Linear(e, d_out)` read-out at every token. The widths come from the task's
//! layout (d and 1 for the Garg-style tasks: zero-padded y tokens, a scalar read at x tokens).

pub mod attention;
pub mod dense;
mod fused;
#[cfg_attr(not(feature = "cuda"), allow(unused_imports))]
pub(crate) use fused::cast;
pub use fused::fused_available;
pub mod init;
pub mod mamba;
pub mod members;
pub mod mixer;
pub mod norm;
pub mod pointwise;
pub mod s4;
pub mod scan;
pub mod split;
pub mod transformer;

use burn::nn::Linear;
use burn::prelude::*;

use crate::spec::ModelSpec;
use init::Init;
use mamba::MambaDims;
use mixer::{Mixer, MixerModel};
pub use transformer::Gpt2;

/// The architecture-specific middle of a model.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    Gpt2(Gpt2<B>),
    Mixer(MixerModel<B>),
}

impl<B: Backend> Backbone<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Backbone::Gpt2(m) => m.forward(x),
            Backbone::Mixer(m) => m.forward(x),
        }
    }

    fn new(init: &mut Init<B>, spec: &ModelSpec) -> Self {
        let e = spec.n_embd();
        match *spec {
            ModelSpec::Gpt2 { n_embd, n_layer, n_head, n_positions } => {
                Backbone::Gpt2(Gpt2::new(init, n_embd, n_layer, n_head, n_positions))
            }
            ModelSpec::Mamba { n_layer, d_state, d_conv, expand, dt_rank, .. } => {
                let dims = MambaDims::new(e, d_state, d_conv, expand, dt_rank);
                let mixers = (0..n_layer).map(|_| Mixer::mamba(init, dims, n_layer)).collect();
                Backbone::Mixer(MixerModel::new(init, e, mixers, None))
            }
            ModelSpec::S4 { n_layer, d_state, .. } => {
                let mixers = (0..n_layer).map(|_| Mixer::S4(s4::S4::new(init, e, d_state))).collect();
                Backbone::Mixer(MixerModel::new(init, e, mixers, None))
            }
            ModelSpec::S4Mamba { n_layer, d_state, d_conv, expand, dropout, .. } => {
                let mixers = (0..n_layer)
                    .map(|_| Mixer::S4Mamba(s4::S4Mamba::new(init, e, expand, d_state, d_conv, dropout, n_layer)))
                    .collect();
                Backbone::Mixer(MixerModel::new(init, e, mixers, None))
            }
            ModelSpec::Mambaformer { n_layer, n_head, d_state, d_conv, expand, dt_rank, .. } => {
                // The first Mamba stands in for positions; `n_layer` counts the rest (§7 item 8).
                let dims = MambaDims::new(e, d_state, d_conv, expand, dt_rank);
                let mut mixers = vec![Mixer::mamba(init, dims, n_layer)];
                for i in 0..n_layer {
                    mixers.push(if i % 2 == 0 { Mixer::attention(init, e, n_head) } else { Mixer::mamba(init, dims, n_layer) });
                }
                Backbone::Mixer(MixerModel::new(init, e, mixers, None))
            }
            ModelSpec::Hybrid { n_layer, n_head, n_positions, d_state, d_conv, expand, dt_rank, .. } => {
                let dims = MambaDims::new(e, d_state, d_conv, expand, dt_rank);
                let mixers = (0..n_layer)
                    .map(|i| if i % 2 == 0 { Mixer::attention(init, e, n_head) } else { Mixer::mamba(init, dims, n_layer) })
                    .collect();
                Backbone::Mixer(MixerModel::new(init, e, mixers, Some(n_positions)))
            }
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
    /// Builds the model of `spec` for tokens of width `d_in` and `d_out` outputs per token
    /// (the task's layout), drawing weights from `seed`.
    pub fn new(spec: &ModelSpec, d_in: usize, d_out: usize, seed: u64, device: &B::Device) -> Self {
        let mut init = Init::<B>::new(seed, device);
        // Read-in and read-out keep PyTorch's default Linear init (outside the backbone).
        let read_in = init.torch_linear(d_in, spec.n_embd(), true);
        let backbone = Backbone::new(&mut init, spec);
        let read_out = init.torch_linear(spec.n_embd(), d_out, true);
        IclModel { read_in, backbone, read_out }
    }

    /// Per-token outputs of the read-out; the task says which are read (paper-spec §1.1
    /// step 6: the x tokens of interleaved prompts).
    ///
    /// # Shapes
    /// - tokens: `[b, t, d_in]` -> `[b, t, d_out]`
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        if self.members() > 1 {
            let h = self.backbone.forward(dense::dense(&self.read_in, tokens));
            return dense::dense(&self.read_out, h);
        }
        // A plain model keeps burn's `Linear` here. Through `dense` a 10-wide read-in (the e256
        // configs) is no whole 16-byte rows for our matmul, whose fallback takes ∂w as one
        // matmul over all b·t rows; timed, such a Mamba e256 step was unchanged in one call and
        // 85-89 ms against 63-89 in another (docs/performance.md, session 27).
        let h = self.backbone.forward(self.read_in.forward(tokens));
        self.read_out.forward(h)
    }

    /// The models of `spec` drawn from `seeds`, stacked into one ([`members`]): `forward`
    /// takes their batches one after another, `[K·b, t, d_in]` -> `[K·b, t, d_out]`.
    pub fn stacked(spec: &ModelSpec, d_in: usize, d_out: usize, seeds: &[u64], device: &B::Device) -> Self {
        let models = seeds.iter().map(|&seed| Self::new(spec, d_in, d_out, seed, device)).collect();
        members::stack(models, device)
    }

    /// How many models this one stacks (1 for a plain model).
    pub fn members(&self) -> usize {
        members::count(self.read_out.weight.dims()[0], self.read_in.weight.dims()[1])
    }

    /// Member `k` of a stacked model, as a plain model.
    pub fn member(&self, k: usize) -> Self {
        members::member(self, k, self.members())
    }
}

/// Size and cost of a model, reported with every run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelStats {
    pub params: usize,
    /// Forward FLOPs per token at the given sequence length (multiply-add = 2 FLOPs).
    pub flops_per_token: f64,
}

/// Forward FLOPs per token at sequence length `t`, counting a multiply-add as 2: every weight
/// of the model once (an upper bound for the tables and S4 parameters), plus attention's
/// scores and weighted sum (4·e per attended key, t/2 keys on average under the causal mask),
/// plus the selective scan's ~9 operations per state entry (E·N per Mamba layer), plus S4's
/// Toeplitz convolution (2·H per key, t/2 on average).
pub fn flops_per_token(spec: &ModelSpec, params: usize, t: usize) -> f64 {
    let (e, l) = (spec.n_embd() as f64, spec.n_layer() as f64);
    let keys = t as f64 / 2.0;
    let attention = |layers: f64| layers * 4.0 * e * keys;
    let scan = |layers: f64, expand: usize, d_state: usize| layers * 9.0 * expand as f64 * e * d_state as f64;
    let extra = match *spec {
        ModelSpec::Gpt2 { .. } => attention(l),
        ModelSpec::Mamba { expand, d_state, .. } => scan(l, expand, d_state),
        ModelSpec::S4 { .. } => l * 2.0 * e * keys,
        ModelSpec::S4Mamba { expand, .. } => l * 2.0 * expand as f64 * e * keys,
        ModelSpec::Mambaformer { n_layer, expand, d_state, .. } => {
            let attn = n_layer.div_ceil(2) as f64;
            attention(attn) + scan(n_layer as f64 + 1.0 - attn, expand, d_state)
        }
        ModelSpec::Hybrid { n_layer, expand, d_state, .. } => {
            let attn = n_layer.div_ceil(2) as f64;
            attention(attn) + scan(n_layer as f64 - attn, expand, d_state)
        }
    };
    2.0 * params as f64 + extra
}

#[cfg(test)]
mod tests;

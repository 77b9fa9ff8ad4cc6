//! Parameter initialisation from the run's own seeded RNG.
//!
//! Drawing on the host (not the backend's global RNG) makes a seed give the same weights on
//! every backend, and keeps concurrent runs in one process independent.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Normal, StandardNormal, Uniform};

/// Epsilon of every LayerNorm (PyTorch's default); the fused kernels are launched with it.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// A distribution to draw a parameter from.
#[derive(Debug, Clone, Copy)]
pub enum Dist {
    Zeros,
    Ones,
    Const(f32),
    /// N(0, std²).
    Normal(f32),
    /// U(-bound, bound).
    Uniform(f32),
    /// U(lo, hi).
    Range(f32, f32),
}

impl Dist {
    /// PyTorch's default for `nn.Linear` and `nn.Conv1d`: U(±1/sqrt(fan_in)).
    pub fn torch_default(fan_in: usize) -> Self {
        Dist::Uniform(1.0 / (fan_in as f32).sqrt())
    }
}

/// Draws parameters on the host and uploads them to `device`.
pub struct Init<'a, B: Backend> {
    rng: ChaCha8Rng,
    device: &'a B::Device,
}

impl<'a, B: Backend> Init<'a, B> {
    pub fn new(seed: u64, device: &'a B::Device) -> Self {
        // Separate stream from data sampling, which also derives from the run seed.
        Init { rng: ChaCha8Rng::seed_from_u64(seed ^ 0x1a17_1a17_0000_0001), device }
    }

    pub fn device(&self) -> &'a B::Device {
        self.device
    }

    pub fn values(&mut self, len: usize, dist: Dist) -> Vec<f32> {
        let rng = &mut self.rng;
        match dist {
            Dist::Zeros => vec![0.0; len],
            Dist::Ones => vec![1.0; len],
            Dist::Const(c) => vec![c; len],
            Dist::Normal(std) => {
                let n = Normal::new(0.0f32, std).expect("std is finite and >= 0");
                (0..len).map(|_| rng.sample(n)).collect()
            }
            Dist::Uniform(bound) => uniform(rng, len, -bound, bound),
            Dist::Range(lo, hi) => uniform(rng, len, lo, hi),
        }
    }

    pub fn tensor<const D: usize>(&mut self, shape: [usize; D], dist: Dist) -> Tensor<B, D> {
        let len = shape.iter().product();
        let values = self.values(len, dist);
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    pub fn param<const D: usize>(&mut self, shape: [usize; D], dist: Dist) -> Param<Tensor<B, D>> {
        Param::from_tensor(self.tensor(shape, dist))
    }

    /// A `Linear` (weight stored `[d_in, d_out]`), bias drawn from `bias` if given.
    pub fn linear(&mut self, d_in: usize, d_out: usize, weight: Dist, bias: Option<Dist>) -> Linear<B> {
        Linear {
            weight: self.param([d_in, d_out], weight),
            bias: bias.map(|b| self.param([d_out], b)),
        }
    }

    /// PyTorch's default `nn.Linear(d_in, d_out)`.
    pub fn torch_linear(&mut self, d_in: usize, d_out: usize, bias: bool) -> Linear<B> {
        let dist = Dist::torch_default(d_in);
        self.linear(d_in, d_out, dist, bias.then_some(dist))
    }

    /// LayerNorm with weight 1, bias 0, eps 1e-5 (PyTorch and HF defaults).
    pub fn layer_norm(&self, width: usize) -> LayerNorm<B> {
        LayerNormConfig::new(width).with_epsilon(LAYER_NORM_EPS).init(self.device)
    }

    pub fn standard_normal(&mut self) -> f32 {
        self.rng.sample(StandardNormal)
    }
}

fn uniform(rng: &mut ChaCha8Rng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    if lo >= hi {
        return vec![lo; len];
    }
    let u = Uniform::new(lo, hi).expect("lo < hi");
    (0..len).map(|_| rng.sample(u)).collect()
}

//! ICL tasks: each samples batches of prompts `(x_1, y_1, ..., x_n, y_n)` (paper-spec §1.1).
//!
//! Sampling runs on the host with a seeded ChaCha RNG, so a seed gives the same data on every
//! backend and machine; the trainer uploads the finished batch in one copy.

pub mod baselines;
mod decision_tree;
mod linear_regression;
mod relu_2nn_regression;
mod sparse_linear_regression;

pub use decision_tree::{DecisionTree, Tree};
pub use linear_regression::LinearRegression;
pub use relu_2nn_regression::Relu2nnRegression;
pub use sparse_linear_regression::SparseLinearRegression;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::spec::TaskSpec;

/// A batch of prompts, row-major on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Prompts in the batch.
    pub b: usize,
    /// (x, y) pairs per prompt.
    pub n: usize,
    /// x width.
    pub d: usize,
    /// x values, shape (b, n, d).
    pub xs: Vec<f32>,
    /// y values, shape (b, n).
    pub ys: Vec<f32>,
}

impl Batch {
    pub fn x(&self, prompt: usize, point: usize) -> &[f32] {
        let start = (prompt * self.n + point) * self.d;
        &self.xs[start..start + self.d]
    }

    pub fn y(&self, prompt: usize, point: usize) -> f32 {
        self.ys[prompt * self.n + point]
    }

    /// The model input: x tokens and zero-padded y tokens interleaved, shape (b, 2n, d)
    /// (paper-spec §1.1 steps 3–4).
    pub fn tokens(&self) -> Vec<f32> {
        let (n, d) = (self.n, self.d);
        let mut out = vec![0.0f32; self.b * 2 * n * d];
        for p in 0..self.b {
            for i in 0..n {
                let base = (p * 2 * n + 2 * i) * d;
                out[base..base + d].copy_from_slice(self.x(p, i));
                out[base + d] = self.y(p, i);
            }
        }
        out
    }
}

/// A family of functions to learn in context.
pub trait Task: Send + Sync {
    /// Stable name, as in the spec's `task.kind`.
    fn kind(&self) -> &'static str;

    /// x width d.
    fn n_dims(&self) -> usize;

    /// Samples `b` prompts of `n` points; x coordinates `>= active_dims` are zero
    /// (curriculum truncation, paper-spec §1.2).
    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Batch;

    /// Divisor that makes the zero predictor score about 1 (paper-spec §1.4).
    fn error_scale(&self) -> f32;
}

/// Builds the task a spec describes.
pub fn build(spec: &TaskSpec) -> Box<dyn Task> {
    match spec {
        TaskSpec::LinearRegression { n_dims } => Box::new(LinearRegression { n_dims: *n_dims }),
        TaskSpec::SparseLinearRegression { n_dims, sparsity } => {
            Box::new(SparseLinearRegression { n_dims: *n_dims, sparsity: *sparsity })
        }
        TaskSpec::Relu2nnRegression { n_dims, hidden } => Box::new(Relu2nnRegression { n_dims: *n_dims, hidden: *hidden }),
        TaskSpec::DecisionTree { n_dims, depth } => Box::new(DecisionTree { n_dims: *n_dims, depth: *depth }),
    }
}

/// A regression batch: Gaussian xs (truncated to `active_dims`), then for each prompt a fresh
/// function from `draw`, applied to that prompt's xs. Every regression task samples this way.
pub fn regression_batch<F: Fn(&[f32]) -> f32>(
    rng: &mut ChaCha8Rng,
    (b, n, d): (usize, usize, usize),
    active_dims: usize,
    mut draw: impl FnMut(&mut ChaCha8Rng) -> F,
) -> Batch {
    let xs = gaussian_xs(rng, b, n, d, active_dims);
    let mut ys = Vec::with_capacity(b * n);
    for prompt in xs.chunks(n * d) {
        let f = draw(rng);
        ys.extend(prompt.chunks(d).map(&f));
    }
    Batch { b, n, d, xs, ys }
}

/// x ~ N(0, I_d) with coordinates `>= active_dims` zeroed, shape (b, n, d).
pub fn gaussian_xs(rng: &mut ChaCha8Rng, b: usize, n: usize, d: usize, active_dims: usize) -> Vec<f32> {
    let mut xs = vec![0.0f32; b * n * d];
    for row in xs.chunks_mut(d) {
        for v in row.iter_mut().take(active_dims.min(d)) {
            *v = rng.sample(StandardNormal);
        }
    }
    xs
}

/// A vector of `len` standard normal draws.
pub fn normal_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.sample(StandardNormal)).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests;

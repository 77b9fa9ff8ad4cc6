//! ICL tasks: each samples batches of prompts on the host and says how a model's outputs on
//! them are trained (the loss targets) and scored (per-position errors), paper-spec §1–§2.
//!
//! Sampling runs on the host with a seeded ChaCha RNG, so a seed gives the same data on every
//! backend and machine; the trainer uploads the finished batch in one copy.
//!
//! Every task is `tokens -> model -> outputs`, with a per-task token layout:
//! - the Garg-style tasks (regression, outliers, parity) interleave `x_1, y_1, ..., x_n, y_n`
//!   with y zero-padded to the width of x, and read a scalar at the x tokens;
//! - chain-of-thought I/O has `x, s, y` tokens per example (separate read-ins, see `cot_io`);
//! - the MQAR tasks have key/value tokens, then queries, read at the query tokens.
//!
//! The loss is a weighted sum over `(prompt, token, output)` entries (`Target`), so masking
//! (outliers, query positions) and per-task normalisation are data, not code in the trainer.

pub mod baselines;
mod cot_io;
mod decision_tree;
mod linear_regression;
mod many_outlier;
mod mqar;
mod orthogonal_outlier;
mod relu_2nn_regression;
mod sparse_linear_regression;
mod sparse_parity;

pub use baselines::Baseline;
pub use cot_io::ChainOfThought;
pub use decision_tree::{DecisionTree, Tree};
pub use linear_regression::LinearRegression;
pub use many_outlier::ManyOutlierRegression;
pub use mqar::{TokenMqar, VectorMqar};
pub use orthogonal_outlier::OrthogonalOutlierRegression;
pub use relu_2nn_regression::Relu2nnRegression;
pub use sparse_linear_regression::SparseLinearRegression;
pub use sparse_parity::SparseParity;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::spec::TaskSpec;

/// Prompts as (x, y) examples, row-major on the host: what the baselines see and what the
/// errors are measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Prompts in the batch.
    pub b: usize,
    /// Examples per prompt.
    pub n: usize,
    /// x width.
    pub d: usize,
    /// x values, shape (b, n, d).
    pub xs: Vec<f32>,
    /// y values, shape (b, n).
    pub ys: Vec<f32>,
    /// `false` at outlier examples (shape (b, n)): they are not scored, not trained on, and
    /// baselines do not use them as context. `None`: every example is clean.
    pub clean: Option<Vec<bool>>,
}

impl Batch {
    pub fn x(&self, prompt: usize, point: usize) -> &[f32] {
        let start = (prompt * self.n + point) * self.d;
        &self.xs[start..start + self.d]
    }

    pub fn y(&self, prompt: usize, point: usize) -> f32 {
        self.ys[prompt * self.n + point]
    }

    pub fn is_clean(&self, prompt: usize, point: usize) -> bool {
        self.clean.as_ref().is_none_or(|c| c[prompt * self.n + point])
    }

    /// The clean examples before `point`: a baseline's context for predicting it.
    pub fn context(&self, prompt: usize, point: usize) -> impl Iterator<Item = usize> + '_ {
        (0..point).filter(move |&j| self.is_clean(prompt, j))
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

/// How the outputs are compared with the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// (output − value)².
    SquaredError,
    /// BCE of sigmoid(output) against a value in {0, 1} (computed from logits, stably).
    BinaryCrossEntropy,
    /// Cross-entropy of softmax(outputs over d_out) against a class index.
    CrossEntropy,
}

/// The network's input and output widths for a task, and its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub d_in: usize,
    pub d_out: usize,
    pub loss: Loss,
}

/// What the loss is computed against: `loss = Σ weights · ℓ(...)`, the weights already
/// holding the task's normalisation (zero where nothing is trained).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Values and weights of shape (b, t, d_out), for `SquaredError` and `BinaryCrossEntropy`.
    Dense { values: Vec<f32>, weights: Vec<f32> },
    /// Class indices and weights of shape (b, t), for `CrossEntropy`.
    Classes { classes: Vec<i64>, weights: Vec<f32> },
}

/// Task data that scoring needs beyond the (x, y) examples.
#[derive(Debug, Clone, PartialEq)]
pub enum Extra {
    None,
    /// Chain-of-thought: the hidden vectors s, shape (b, n, k).
    Cot { s: Vec<f32>, k: usize },
    /// MQAR: for each prompt and query, the index of the key it asks for, shape (b, q); the
    /// keys are `Batch::xs`. Vector MQAR keeps the values (b, n, d) here.
    Mqar { query_of: Vec<usize>, queries: usize, values: Vec<f32> },
}

/// One batch of prompts: the model's tokens, the loss targets and the examples behind them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Tokens per prompt.
    pub t: usize,
    /// Model input, shape (b, t, d_in).
    pub tokens: Vec<f32>,
    pub target: Target,
    pub batch: Batch,
    pub extra: Extra,
    /// Whether `tokens` are exactly `batch.tokens()` (each example an x token, then its y
    /// padded with zeros to x's width): the training loop then uploads the examples alone,
    /// about half the bytes, and builds the tokens on the device (`train::HostTokens`).
    pub interleaved: bool,
}

impl Sample {
    pub fn b(&self) -> usize {
        self.batch.b
    }

    /// A Garg-style sample: interleaved tokens, loss at the clean x tokens, mean over them.
    pub fn interleaved(batch: Batch) -> Self {
        Self::interleaved_with(batch, |y| y)
    }

    /// As `interleaved`, training towards `target(y)` instead of y.
    pub fn interleaved_with(batch: Batch, target: impl Fn(f32) -> f32) -> Self {
        let tokens = batch.tokens();
        let target = x_token_targets(&batch, |p, i| target(batch.y(p, i)));
        Sample { t: 2 * batch.n, tokens, target, batch, extra: Extra::None, interleaved: true }
    }
}

/// Targets at the x tokens of interleaved prompts (d_out = 1), weighted equally over the clean
/// examples so the loss is their mean.
fn x_token_targets(batch: &Batch, value: impl Fn(usize, usize) -> f32) -> Target {
    let (b, n) = (batch.b, batch.n);
    let mut values = vec![0.0f32; b * 2 * n];
    let mut weights = vec![0.0f32; b * 2 * n];
    let clean = (0..b).map(|p| (0..n).filter(|&i| batch.is_clean(p, i)).count()).sum::<usize>();
    let w = 1.0 / clean.max(1) as f32;
    for p in 0..b {
        for i in 0..n {
            if batch.is_clean(p, i) {
                values[p * 2 * n + 2 * i] = value(p, i);
                weights[p * 2 * n + 2 * i] = w;
            }
        }
    }
    Target::Dense { values, weights }
}

/// How a task's errors are reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// What one error value is, for axis labels ("squared error / 20", "error rate").
    pub label: String,
    /// Squared errors are divided by this (paper-spec §1.4); 1 for rates.
    pub scale: f32,
    /// The single number a run is judged by.
    pub summary: Summary,
}

impl Metric {
    /// Squared error divided by `scale`, judged at the last position.
    pub fn squared_error(scale: f32) -> Self {
        let label = if scale == 1.0 { "squared error".to_string() } else { format!("squared error / {scale}") };
        Metric { label, scale, summary: Summary::LastPosition }
    }
}

/// Which part of the ICL curve summarises a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    /// The error with the most in-context examples (the curve's last scored position).
    #[default]
    LastPosition,
    /// The mean over positions (MQAR: the curve is over which key is asked for).
    MeanOverPositions,
}

/// A family of functions to learn in context.
pub trait Task: Send + Sync {
    /// Stable name, as in the spec's `task.kind`.
    fn kind(&self) -> &'static str;

    /// x width d: the curriculum's dims count up to this.
    fn n_dims(&self) -> usize;

    /// Network input/output widths and loss. Default: interleaved Garg prompts, one scalar out.
    fn layout(&self) -> Layout {
        Layout { d_in: self.n_dims(), d_out: 1, loss: Loss::SquaredError }
    }

    /// Samples `b` prompts of `n` examples (pairs for MQAR); x coordinates `>= active_dims`
    /// are zero (curriculum truncation, paper-spec §1.2).
    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample;

    fn metric(&self) -> Metric;

    /// Per-prompt, per-position errors of model outputs `(b, t, d_out)`, shape (b, n); NaN
    /// where a position is not scored (outliers, MQAR keys not asked for).
    fn errors(&self, s: &Sample, outputs: &[f32]) -> Vec<f32> {
        let pred = read_x_tokens(s, outputs);
        self.score(&s.batch, &pred)
    }

    /// Errors of scalar predictions of y, shape (b, n) (the baselines' output).
    /// Default: squared error / scale at clean examples.
    fn score(&self, batch: &Batch, pred: &[f32]) -> Vec<f32> {
        let scale = self.metric().scale;
        squared_errors(batch, pred, scale)
    }

    /// The classical learners drawn beside the model (besides the zero predictor, which every
    /// task gets by scoring all-zero outputs).
    fn baselines(&self) -> Vec<Baseline>;

    /// Tokens for a second evaluation pass that feeds the model's own intermediate outputs
    /// back (chain-of-thought), with the name of that curve.
    fn feedback(&self, _s: &Sample, _outputs: &[f32]) -> Option<(&'static str, Vec<f32>)> {
        None
    }
}

/// The scalar outputs at the x tokens of interleaved prompts, shape (b, n).
pub fn read_x_tokens(s: &Sample, outputs: &[f32]) -> Vec<f32> {
    let (b, n) = (s.batch.b, s.batch.n);
    (0..b).flat_map(|p| (0..n).map(move |i| outputs[p * 2 * n + 2 * i])).collect()
}

/// (y − ŷ)² / scale, NaN at outliers, shape (b, n).
pub fn squared_errors(batch: &Batch, pred: &[f32], scale: f32) -> Vec<f32> {
    let n = batch.n;
    (0..batch.b * n)
        .map(|k| {
            if batch.is_clean(k / n, k % n) {
                let e = batch.ys[k] - pred[k];
                e * e / scale
            } else {
                f32::NAN
            }
        })
        .collect()
}

/// Builds the task a spec describes.
pub fn build(spec: &TaskSpec) -> Box<dyn Task> {
    match *spec {
        TaskSpec::LinearRegression { n_dims } => Box::new(LinearRegression { n_dims }),
        TaskSpec::SparseLinearRegression { n_dims, sparsity } => Box::new(SparseLinearRegression { n_dims, sparsity }),
        TaskSpec::Relu2nnRegression { n_dims, hidden } => Box::new(Relu2nnRegression { n_dims, hidden }),
        TaskSpec::DecisionTree { n_dims, depth } => Box::new(DecisionTree { n_dims, depth }),
        TaskSpec::OrthogonalOutlierRegression { n_dims, p } => Box::new(OrthogonalOutlierRegression { n_dims, p }),
        TaskSpec::ManyOutlierRegression { n_dims, p } => Box::new(ManyOutlierRegression { n_dims, p }),
        TaskSpec::SparseParity { n_dims, k, subset_per } => Box::new(SparseParity { n_dims, k, subset_per }),
        TaskSpec::ChainOfThought { n_dims, hidden } => Box::new(ChainOfThought { n_dims, hidden }),
        TaskSpec::VectorMqar { n_dims, queries } => Box::new(VectorMqar { n_dims, queries }),
        TaskSpec::TokenMqar { vocab, queries } => Box::new(TokenMqar { vocab, queries }),
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
    Batch { b, n, d, xs, ys, clean: None }
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

/// Independent Bernoulli(p) draws: `true` marks an outlier.
pub fn bernoulli_mask(rng: &mut ChaCha8Rng, len: usize, p: f64) -> Vec<bool> {
    (0..len).map(|_| rng.random::<f64>() < p).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests;

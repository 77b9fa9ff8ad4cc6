//! Evaluation: per-position error curves of the model and the baselines on the same fresh
//! prompts (paper-spec §1.3–§1.5).

use burn::prelude::*;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::models::IclModel;
use crate::tasks::{baselines, Batch, Task};

/// Prompts per forward pass during evaluation.
const EVAL_CHUNK: usize = 64;
/// Bootstrap resamples for the confidence band (as in the paper's code).
const BOOTSTRAP: usize = 1000;

/// One learner's error at each number of in-context examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub name: String,
    /// Mean normalised error at positions 0..n (position i has seen i examples).
    pub mean: Vec<f32>,
    /// 90% bootstrap interval of the mean (5th, 95th percentile), per position.
    pub ci_low: Vec<f32>,
    pub ci_high: Vec<f32>,
}

/// The ICL curve of a model at one step, with baselines on the same prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalCurve {
    pub step: usize,
    pub n_points: usize,
    pub prompts: usize,
    /// The squared error was divided by this (paper-spec §1.4).
    pub scale: f32,
    pub model: Curve,
    pub baselines: Vec<Curve>,
}

impl EvalCurve {
    pub fn baseline(&self, name: &str) -> Option<&Curve> {
        self.baselines.iter().find(|c| c.name == name)
    }
}

/// Fixed evaluation prompts per prompt length, with their baseline curves computed once.
pub struct EvalSet {
    seed: u64,
    prompts: usize,
    cached: Vec<(usize, Batch, Vec<Curve>)>,
}

impl EvalSet {
    pub fn new(seed: u64, prompts: usize) -> Self {
        EvalSet { seed, prompts, cached: Vec::new() }
    }

    /// The prompts and baselines for length `n`: sampled with all dims active (§1.3).
    fn get(&mut self, task: &dyn Task, n: usize) -> (&Batch, &[Curve]) {
        if let Some(i) = self.cached.iter().position(|(len, ..)| *len == n) {
            let (_, batch, curves) = &self.cached[i];
            return (batch, curves);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xe7a1_0000_0000_0000);
        rng.set_stream(n as u64);
        let batch = task.sample(&mut rng, self.prompts, n, task.n_dims());
        let scale = task.error_scale();
        let curves = baselines::regression()
            .iter()
            .map(|b| {
                let pred = (b.predict)(&batch);
                curve(b.name, &squared_errors(&batch, &pred, scale), batch.b, n, &mut rng)
            })
            .collect();
        self.cached.push((n, batch, curves));
        let (_, batch, curves) = self.cached.last().expect("just pushed");
        (batch, curves)
    }

    /// Evaluates `model` on the prompts of length `n`.
    pub fn evaluate<B: Backend>(&mut self, model: &IclModel<B>, task: &dyn Task, n: usize, step: usize, device: &B::Device) -> EvalCurve {
        let scale = task.error_scale();
        let seed = self.seed;
        let (batch, baselines) = self.get(task, n);
        let preds = predict(model, batch, device);
        let errs = squared_errors(batch, &preds, scale);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step as u64);
        EvalCurve {
            step,
            n_points: n,
            prompts: batch.b,
            scale,
            model: curve("model", &errs, batch.b, n, &mut rng),
            baselines: baselines.to_vec(),
        }
    }
}

/// Model predictions at x positions for every prompt of `batch`, shape (b, n).
pub fn predict<B: Backend>(model: &IclModel<B>, batch: &Batch, device: &B::Device) -> Vec<f32> {
    let (n, d) = (batch.n, batch.d);
    let tokens = batch.tokens();
    let mut out = Vec::with_capacity(batch.b * n);
    for start in (0..batch.b).step_by(EVAL_CHUNK) {
        let rows = EVAL_CHUNK.min(batch.b - start);
        let chunk = tokens[start * 2 * n * d..(start + rows) * 2 * n * d].to_vec();
        let x = Tensor::<B, 3>::from_data(TensorData::new(chunk, [rows, 2 * n, d]), device);
        let pred = model.predict_at_x(x).into_data();
        out.extend(pred.iter::<f32>());
    }
    out
}

/// (y - ŷ)² / scale, shape (b, n).
pub fn squared_errors(batch: &Batch, pred: &[f32], scale: f32) -> Vec<f32> {
    batch.ys.iter().zip(pred).map(|(y, p)| (y - p) * (y - p) / scale).collect()
}

/// Per-position mean over prompts with a 90% bootstrap interval.
fn curve(name: &str, errs: &[f32], b: usize, n: usize, rng: &mut ChaCha8Rng) -> Curve {
    let mean: Vec<f32> = (0..n).map(|i| (0..b).map(|p| errs[p * n + i]).sum::<f32>() / b as f32).collect();
    let mut boot = vec![vec![0.0f32; BOOTSTRAP]; n];
    let mut acc = vec![0.0f32; n];
    for r in 0..BOOTSTRAP {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for _ in 0..b {
            let p = rng.random_range(0..b);
            acc.iter_mut().zip(&errs[p * n..(p + 1) * n]).for_each(|(a, e)| *a += e);
        }
        for (col, a) in boot.iter_mut().zip(&acc) {
            col[r] = a / b as f32;
        }
    }
    let (mut lo, mut hi) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for col in &mut boot {
        col.sort_by(f32::total_cmp);
        lo.push(col[BOOTSTRAP * 5 / 100]);
        hi.push(col[BOOTSTRAP * 95 / 100]);
    }
    Curve { name: name.to_string(), mean, ci_low: lo, ci_high: hi }
}

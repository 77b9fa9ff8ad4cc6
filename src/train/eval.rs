//! Evaluation: per-position error curves of the model and the baselines on the same fresh
//! prompts (paper-spec §1.3–§1.5), as mean, standard deviation and a 90% bootstrap interval.

use burn::prelude::*;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::models::IclModel;
use crate::tasks::{baselines::ZERO, Layout, Sample, Summary, Task};

/// Prompts per forward pass during evaluation.
const EVAL_CHUNK: usize = 64;
/// Bootstrap resamples for the confidence band (as in the paper's code).
const BOOTSTRAP: usize = 1000;
/// Prompt lengths whose evaluation prompts stay cached (the curriculum only grows).
const CACHED_LENGTHS: usize = 2;

/// One learner's error at each position (number of in-context examples, or for MQAR the
/// position of the key asked for). NaN where no prompt scored that position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub name: String,
    /// Mean error over prompts.
    pub mean: Vec<f32>,
    /// 90% bootstrap interval of the mean (5th, 95th percentile), per position.
    pub ci_low: Vec<f32>,
    pub ci_high: Vec<f32>,
    /// Standard deviation over prompts (unbiased); empty in records made before it existed.
    #[serde(default)]
    pub std: Vec<f32>,
}

/// The ICL curve of a model at one step, with baselines on the same prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalCurve {
    pub step: usize,
    pub n_points: usize,
    pub prompts: usize,
    /// Squared errors were divided by this (paper-spec §1.4); 1 for rates.
    pub scale: f32,
    /// What an error value is ("squared error / 20", "error rate ..."); empty in old records.
    #[serde(default)]
    pub metric: String,
    /// Which part of the curve is the run's single number.
    #[serde(default)]
    pub summary: Summary,
    pub model: Curve,
    /// Other evaluations of the same model (chain-of-thought with its own intermediate steps).
    #[serde(default)]
    pub variants: Vec<Curve>,
    pub baselines: Vec<Curve>,
}

impl EvalCurve {
    pub fn baseline(&self, name: &str) -> Option<&Curve> {
        self.baselines.iter().find(|c| c.name == name)
    }

    /// A curve's single number: its last scored position, or its mean over positions.
    pub fn summary_of(&self, c: &Curve) -> Option<f32> {
        let mut finite = c.mean.iter().copied().filter(|v| v.is_finite());
        match self.summary {
            Summary::LastPosition => c.mean.iter().rev().copied().find(|v| v.is_finite()),
            Summary::MeanOverPositions => {
                let (sum, count) = finite.by_ref().fold((0.0f64, 0usize), |(s, k), v| (s + v as f64, k + 1));
                (count > 0).then(|| (sum / count as f64) as f32)
            }
        }
    }

    /// The model's single number.
    pub fn final_error(&self) -> Option<f32> {
        self.summary_of(&self.model)
    }

    /// Each baseline's single number.
    pub fn baseline_summaries(&self) -> std::collections::BTreeMap<String, f32> {
        self.baselines.iter().filter_map(|b| self.summary_of(b).map(|v| (b.name.clone(), v))).collect()
    }

    /// The best non-trivial baseline, by its single number.
    pub fn best_baseline(&self) -> Option<(&str, f32)> {
        self.baselines
            .iter()
            .filter(|b| b.name != ZERO)
            .filter_map(|b| self.summary_of(b).map(|v| (b.name.as_str(), v)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// Fixed evaluation prompts per prompt length, with their baseline curves computed once.
pub struct EvalSet {
    seed: u64,
    prompts: usize,
    cached: Vec<(usize, Sample, Vec<Curve>)>,
}

impl EvalSet {
    pub fn new(seed: u64, prompts: usize) -> Self {
        EvalSet { seed, prompts, cached: Vec::new() }
    }

    /// The prompts and baseline curves for length `n`: sampled with all dims active (§1.3).
    /// The zero predictor is scored through the task like the model, on all-zero outputs.
    fn get(&mut self, task: &dyn Task, n: usize) -> (&Sample, &[Curve]) {
        if let Some(i) = self.cached.iter().position(|(len, ..)| *len == n) {
            let (_, sample, curves) = &self.cached[i];
            return (sample, curves);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xe7a1_0000_0000_0000);
        rng.set_stream(n as u64);
        let sample = task.sample(&mut rng, self.prompts, n, task.n_dims());
        let (b, d_out) = (sample.b(), task.layout().d_out);
        let zeros = vec![0.0f32; b * sample.t * d_out];
        let mut curves = vec![curve(ZERO, &task.errors(&sample, &zeros), b, n, &mut rng)];
        for baseline in task.baselines() {
            let pred = (baseline.predict)(&sample.batch);
            curves.push(curve(&baseline.name, &task.score(&sample.batch, &pred), b, n, &mut rng));
        }
        if self.cached.len() >= CACHED_LENGTHS {
            self.cached.remove(0);
        }
        self.cached.push((n, sample, curves));
        let (_, sample, curves) = self.cached.last().expect("just pushed");
        (sample, curves)
    }

    /// Evaluates `model` on the prompts of length `n`.
    pub fn evaluate<B: Backend>(&mut self, model: &IclModel<B>, task: &dyn Task, n: usize, step: usize, device: &B::Device) -> EvalCurve {
        let metric = task.metric();
        let layout = task.layout();
        let seed = self.seed;
        let (sample, baselines) = self.get(task, n);
        let outputs = predict(model, sample, &sample.tokens, layout, device);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step as u64);
        let b = sample.b();
        let model_curve = curve("model", &task.errors(sample, &outputs), b, n, &mut rng);
        let variants = match task.feedback(sample, &outputs) {
            Some((name, tokens)) => {
                let again = predict(model, sample, &tokens, layout, device);
                vec![curve(name, &task.errors(sample, &again), b, n, &mut rng)]
            }
            None => Vec::new(),
        };
        EvalCurve {
            step,
            n_points: n,
            prompts: b,
            scale: metric.scale,
            metric: metric.label,
            summary: metric.summary,
            model: model_curve,
            variants,
            baselines: baselines.to_vec(),
        }
    }
}

/// Model outputs for every token of `tokens` (laid out as `sample`'s), shape (b, t, d_out).
pub fn predict<B: Backend>(model: &IclModel<B>, sample: &Sample, tokens: &[f32], layout: Layout, device: &B::Device) -> Vec<f32> {
    let (t, d) = (sample.t, layout.d_in);
    let mut out = Vec::with_capacity(sample.b() * t * layout.d_out);
    for start in (0..sample.b()).step_by(EVAL_CHUNK) {
        let rows = EVAL_CHUNK.min(sample.b() - start);
        let chunk = tokens[start * t * d..(start + rows) * t * d].to_vec();
        let x = super::upload::<B, 3>(chunk, [rows, t, d], device);
        out.extend(model.forward(x).into_data().iter::<f32>());
    }
    out
}

/// Per-position mean, standard deviation and 90% bootstrap interval over prompts of errors
/// `errs` (b, n), skipping NaN entries (positions a prompt does not score).
pub fn curve(name: &str, errs: &[f32], b: usize, n: usize, rng: &mut ChaCha8Rng) -> Curve {
    let column = |i: usize| (0..b).map(move |p| errs[p * n + i]).filter(|e| e.is_finite());
    let mut mean = Vec::with_capacity(n);
    let mut std = Vec::with_capacity(n);
    for i in 0..n {
        let (sum, count) = column(i).fold((0.0f64, 0usize), |(s, k), e| (s + e as f64, k + 1));
        let m = if count > 0 { sum / count as f64 } else { f64::NAN };
        let var = column(i).map(|e| (e as f64 - m).powi(2)).sum::<f64>() / count.saturating_sub(1).max(1) as f64;
        mean.push(m as f32);
        std.push(if count > 1 { var.sqrt() as f32 } else { f32::NAN });
    }
    let mut boot = vec![vec![0.0f32; BOOTSTRAP]; n];
    let mut acc = vec![0.0f32; n];
    let mut cnt = vec![0u32; n];
    for r in 0..BOOTSTRAP {
        acc.fill(0.0);
        cnt.fill(0);
        for _ in 0..b {
            let p = rng.random_range(0..b);
            for ((a, c), e) in acc.iter_mut().zip(cnt.iter_mut()).zip(&errs[p * n..(p + 1) * n]) {
                if e.is_finite() {
                    *a += e;
                    *c += 1;
                }
            }
        }
        for ((col, a), c) in boot.iter_mut().zip(&acc).zip(&cnt) {
            col[r] = if *c > 0 { a / *c as f32 } else { f32::NAN };
        }
    }
    let (mut lo, mut hi) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for col in &mut boot {
        col.retain(|v| v.is_finite());
        col.sort_by(f32::total_cmp);
        if col.is_empty() {
            lo.push(f32::NAN);
            hi.push(f32::NAN);
        } else {
            lo.push(col[col.len() * 5 / 100]);
            hi.push(col[(col.len() * 95 / 100).min(col.len() - 1)]);
        }
    }
    Curve { name: name.to_string(), mean, ci_low: lo, ci_high: hi, std }
}

//! Experiment specs: what a run is, read from TOML and validated before anything trains.
//!
//! Every struct denies unknown keys, so a typo (`lr_rate = ...`) is an error that names the key
//! instead of a silently ignored setting. `validate()` checks the ranges the types cannot express
//! and names the field, the allowed range and the bad value.

mod error;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use error::{SpecError, SpecErrors};

/// One experiment: a task, a model, how to train it, with which seed and on which device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// A short name shown in tables and used for files.
    pub name: String,
    /// Seed for data sampling and parameter initialisation.
    #[serde(default)]
    pub seed: u64,
    /// `auto` (CUDA if present, else CPU), `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceSpec,
    pub task: TaskSpec,
    pub model: ModelSpec,
    pub train: TrainSpec,
}

/// The ICL task; `kind` selects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskSpec {
    /// y = wᵀx with w ~ N(0, I_d) per prompt (paper-spec §2.1).
    LinearRegression {
        /// x dimension d (paper: 20).
        #[serde(default = "default_n_dims")]
        n_dims: usize,
    },
}

fn default_n_dims() -> usize {
    20
}

impl TaskSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TaskSpec::LinearRegression { .. } => "linear_regression",
        }
    }

    /// The width of x (and of every zero-padded token).
    pub fn n_dims(&self) -> usize {
        match self {
            TaskSpec::LinearRegression { n_dims } => *n_dims,
        }
    }
}

/// The sequence model; `arch` selects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// GPT-2 as in HF `GPT2Model` (paper-spec §3.1).
    Gpt2 {
        /// Width e.
        n_embd: usize,
        /// Number of transformer blocks L.
        n_layer: usize,
        /// Attention heads; must divide `n_embd`.
        n_head: usize,
        /// Largest number of (x, y) pairs per prompt; the position table holds 2x this.
        n_positions: usize,
    },
}

impl ModelSpec {
    pub fn arch(&self) -> &'static str {
        match self {
            ModelSpec::Gpt2 { .. } => "gpt2",
        }
    }
}

/// Optimisation and evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Number of optimiser steps.
    pub steps: usize,
    /// Prompts per step (paper: 64).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Constant Adam learning rate (paper: 1e-4 for regression).
    pub lr: f64,
    /// Max global gradient norm (paper: 10).
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Evaluate every this many steps (and at the end).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Fresh prompts per evaluation (paper: 1280).
    #[serde(default = "default_eval_prompts")]
    pub eval_prompts: usize,
    /// Read the loss back from the device every this many steps (a device sync).
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    pub curriculum: CurriculumSpec,
}

fn default_batch_size() -> usize {
    64
}
fn default_grad_clip() -> f64 {
    10.0
}
fn default_eval_every() -> usize {
    1000
}
fn default_eval_prompts() -> usize {
    1280
}
fn default_log_every() -> usize {
    10
}

/// Curriculum over active x dims and prompt length (paper-spec §1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumSpec {
    pub dims: Schedule,
    pub points: Schedule,
}

/// `start`, raised by `inc` every `interval` steps, never past `end`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub start: usize,
    pub end: usize,
    #[serde(default)]
    pub inc: usize,
    #[serde(default = "default_interval")]
    pub interval: usize,
}

fn default_interval() -> usize {
    2000
}

impl Schedule {
    /// A schedule that stays at `value`.
    pub fn fixed(value: usize) -> Self {
        Schedule { start: value, end: value, inc: 0, interval: 1 }
    }

    /// The value after `step` completed steps (the update runs after every step).
    pub fn at(&self, step: usize) -> usize {
        if self.inc == 0 || self.interval == 0 {
            return self.start;
        }
        let raised = self.start.saturating_add((step / self.interval).saturating_mul(self.inc));
        raised.min(self.end)
    }
}

/// Where a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("device must be auto, cpu, cuda or cuda:N, got {other:?}")),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl ExperimentSpec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecErrors::one(SpecError::Io { path: path.display().to_string(), reason: e.to_string() })
        })?;
        let spec = Self::from_toml(&text).map_err(|e| e.with_path(path))?;
        Ok(spec)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, SpecErrors> {
        let spec: ExperimentSpec =
            toml::from_str(text).map_err(|e| SpecErrors::one(SpecError::from_toml(&e, text)))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("an ExperimentSpec always serialises to TOML")
    }

    /// Checks every range the types cannot express; all problems at once.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, field: &str, rule: &str, got: String| {
            if !ok {
                errs.push(SpecError::Invalid { field: field.into(), rule: rule.into(), got });
            }
        };
        check(!self.name.trim().is_empty(), "name", "must not be empty", format!("{:?}", self.name));

        let d = self.task.n_dims();
        check((1..=1024).contains(&d), "task.n_dims", "must be in 1..=1024", d.to_string());

        let t = &self.train;
        check(t.steps >= 1, "train.steps", "must be >= 1", t.steps.to_string());
        check(t.batch_size >= 1, "train.batch_size", "must be >= 1", t.batch_size.to_string());
        check(t.lr.is_finite() && t.lr > 0.0, "train.lr", "must be > 0 and finite", fmt_f64(t.lr));
        check(
            t.grad_clip.is_finite() && t.grad_clip > 0.0,
            "train.grad_clip",
            "must be > 0 and finite",
            fmt_f64(t.grad_clip),
        );
        check(t.eval_every >= 1, "train.eval_every", "must be >= 1", t.eval_every.to_string());
        check(t.eval_prompts >= 1, "train.eval_prompts", "must be >= 1", t.eval_prompts.to_string());
        check(t.log_every >= 1, "train.log_every", "must be >= 1", t.log_every.to_string());

        let c = &t.curriculum;
        for (name, s, upper) in [("dims", c.dims, d), ("points", c.points, usize::MAX)] {
            let f = |k: &str| format!("train.curriculum.{name}.{k}");
            check(s.start >= 1, &f("start"), "must be >= 1", s.start.to_string());
            check(s.end >= s.start, &f("end"), &format!("must be >= start ({})", s.start), s.end.to_string());
            check(s.interval >= 1, &f("interval"), "must be >= 1", s.interval.to_string());
            if upper != usize::MAX {
                check(s.end <= upper, &f("end"), &format!("must be <= task.n_dims ({upper})"), s.end.to_string());
            }
        }

        match &self.model {
            ModelSpec::Gpt2 { n_embd, n_layer, n_head, n_positions } => {
                check(*n_embd >= 1, "model.n_embd", "must be >= 1", n_embd.to_string());
                check(*n_layer >= 1, "model.n_layer", "must be >= 1", n_layer.to_string());
                check(*n_head >= 1, "model.n_head", "must be >= 1", n_head.to_string());
                if *n_head >= 1 {
                    check(
                        n_embd % n_head == 0,
                        "model.n_head",
                        &format!("must divide model.n_embd ({n_embd})"),
                        n_head.to_string(),
                    );
                }
                check(
                    c.points.end <= *n_positions,
                    "train.curriculum.points.end",
                    &format!("must be <= model.n_positions ({n_positions})"),
                    c.points.end.to_string(),
                );
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(errs))
        }
    }
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests;

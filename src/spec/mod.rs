//! Experiment specs: what a run is, read from TOML and validated before anything trains.
//!
//! Every struct denies unknown keys, so a typo (`lr_rate = ...`) is an error that names the key
//! instead of a silently ignored setting. `validate()` checks the ranges the types cannot express
//! and names the field, the allowed range and the bad value.

mod error;
pub mod sweep;

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
    /// w with `sparsity` nonzero coordinates among the active dims (paper-spec §2.2).
    SparseLinearRegression {
        #[serde(default = "default_n_dims")]
        n_dims: usize,
        /// k (paper: 3); the error is normalised by k.
        #[serde(default = "default_sparsity")]
        sparsity: usize,
    },
    /// A random 2-layer ReLU network per prompt (paper-spec §2.3).
    #[serde(rename = "relu_2nn_regression")]
    Relu2nnRegression {
        #[serde(default = "default_n_dims")]
        n_dims: usize,
        /// Hidden width (paper: 100).
        #[serde(default = "default_hidden")]
        hidden: usize,
    },
    /// A random sign-split tree with N(0, 1) leaves per prompt (paper-spec §2.4).
    DecisionTree {
        #[serde(default = "default_n_dims")]
        n_dims: usize,
        /// Splits from root to leaf (paper: 4).
        #[serde(default = "default_depth")]
        depth: usize,
    },
    /// Linear regression where Bernoulli(p) examples are replaced by x and y tokens orthogonal
    /// to the prompt's own w; trained and scored on clean examples only (paper-spec §2.5, §7.1).
    OrthogonalOutlierRegression {
        #[serde(default = "default_n_dims")]
        n_dims: usize,
        /// Outlier probability per example (paper: 0.5).
        #[serde(default = "default_ortho_p")]
        p: f64,
    },
    /// Linear regression where Bernoulli(p) examples become x = 1, y = 1; trained and scored on
    /// clean examples only (paper-spec §2.6).
    ManyOutlierRegression {
        #[serde(default = "default_n_dims")]
        n_dims: usize,
        /// Outlier probability per example (paper: 0.9).
        #[serde(default = "default_many_p")]
        p: f64,
    },
    /// x uniform on {-1, +1}^d, y the product of a hidden k-subset of coordinates; BCE loss,
    /// error rate (paper-spec §2.7).
    SparseParity {
        /// d (paper: 10).
        #[serde(default = "default_parity_dims")]
        n_dims: usize,
        /// Subset size k (paper: 2).
        #[serde(default = "default_parity_k")]
        k: usize,
        /// Draw the subset for every prompt (the paper's intent) or once per batch (its code).
        #[serde(default)]
        subset_per: SubsetPer,
    },
    /// A 2-layer ReLU network with its hidden vector s shown as an intermediate token:
    /// x, s, y per example (paper-spec §2.8).
    ChainOfThought {
        /// d (the [COT] default: 10).
        #[serde(default = "default_parity_dims")]
        n_dims: usize,
        /// Hidden width k, the size of s (the [COT] default: 4).
        #[serde(default = "default_cot_hidden")]
        hidden: usize,
    },
    /// Key/value vectors on the sphere of radius sqrt(d), then queries that copy keys; predict
    /// each query's value (paper-spec §2.9). Pairs per prompt = the curriculum's points.
    VectorMqar {
        #[serde(default = "default_n_dims")]
        n_dims: usize,
        /// Queries after the pairs (paper: 1).
        #[serde(default = "default_queries")]
        queries: usize,
    },
    /// Zoology-style discrete MQAR: key and value tokens from two halves of a vocabulary, then
    /// queries (distinct keys), each followed by its value; cross-entropy at the queries.
    TokenMqar {
        /// Vocabulary size: keys are the first half, values the second.
        #[serde(default = "default_vocab")]
        vocab: usize,
        #[serde(default = "default_token_queries")]
        queries: usize,
    },
}

/// Whether sparse parity draws its hidden subset per prompt or per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubsetPer {
    #[default]
    Prompt,
    Batch,
}

fn default_ortho_p() -> f64 {
    0.5
}
fn default_many_p() -> f64 {
    0.9
}
fn default_parity_dims() -> usize {
    10
}
fn default_parity_k() -> usize {
    2
}
fn default_cot_hidden() -> usize {
    4
}
fn default_queries() -> usize {
    1
}
fn default_vocab() -> usize {
    128
}
fn default_token_queries() -> usize {
    4
}

fn default_n_dims() -> usize {
    20
}
fn default_sparsity() -> usize {
    3
}
fn default_hidden() -> usize {
    100
}
fn default_depth() -> usize {
    4
}

impl TaskSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TaskSpec::LinearRegression { .. } => "linear_regression",
            TaskSpec::SparseLinearRegression { .. } => "sparse_linear_regression",
            TaskSpec::Relu2nnRegression { .. } => "relu_2nn_regression",
            TaskSpec::DecisionTree { .. } => "decision_tree",
            TaskSpec::OrthogonalOutlierRegression { .. } => "orthogonal_outlier_regression",
            TaskSpec::ManyOutlierRegression { .. } => "many_outlier_regression",
            TaskSpec::SparseParity { .. } => "sparse_parity",
            TaskSpec::ChainOfThought { .. } => "chain_of_thought",
            TaskSpec::VectorMqar { .. } => "vector_mqar",
            TaskSpec::TokenMqar { .. } => "token_mqar",
        }
    }

    /// Every task kind, in the paper's order (token MQAR, our addition, last).
    pub const KINDS: [&'static str; 10] = [
        "linear_regression",
        "sparse_linear_regression",
        "relu_2nn_regression",
        "decision_tree",
        "orthogonal_outlier_regression",
        "many_outlier_regression",
        "sparse_parity",
        "chain_of_thought",
        "vector_mqar",
        "token_mqar",
    ];

    /// The width of x: the curriculum's dims count up to this (the vocabulary for token MQAR,
    /// whose dims curriculum has no effect).
    pub fn n_dims(&self) -> usize {
        match self {
            TaskSpec::LinearRegression { n_dims }
            | TaskSpec::SparseLinearRegression { n_dims, .. }
            | TaskSpec::Relu2nnRegression { n_dims, .. }
            | TaskSpec::DecisionTree { n_dims, .. }
            | TaskSpec::OrthogonalOutlierRegression { n_dims, .. }
            | TaskSpec::ManyOutlierRegression { n_dims, .. }
            | TaskSpec::SparseParity { n_dims, .. }
            | TaskSpec::ChainOfThought { n_dims, .. }
            | TaskSpec::VectorMqar { n_dims, .. } => *n_dims,
            TaskSpec::TokenMqar { vocab, .. } => *vocab,
        }
    }

    /// The key that sets [`Self::n_dims`]: token MQAR's input width is its vocabulary.
    pub fn dims_key(&self) -> &'static str {
        if matches!(self, TaskSpec::TokenMqar { .. }) {
            "task.vocab"
        } else {
            "task.n_dims"
        }
    }

    /// Tokens in a prompt of `points` examples (key/value pairs for MQAR).
    /// Saturating: a count past the word size (a typo in a file) stays too large to fit.
    pub fn tokens(&self, points: usize) -> usize {
        match *self {
            TaskSpec::ChainOfThought { .. } => points.saturating_mul(3),
            TaskSpec::VectorMqar { queries, .. } => points.saturating_mul(2).saturating_add(queries),
            // Each query is followed by its answer, except the last (nothing reads it).
            TaskSpec::TokenMqar { queries, .. } => points.saturating_mul(2).saturating_add(queries.saturating_mul(2)).saturating_sub(1),
            _ => points.saturating_mul(2),
        }
    }
}

/// The sequence model; `arch` selects it. Widths follow the paper's code: `n_embd` is e,
/// `n_layer` counts mixer blocks (an attention or Mamba block is one layer, so a Mamba of 2L
/// layers matches a GPT-2 of L layers in size).
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
    /// Mamba blocks, no positional embedding (paper-spec §3.2, §6).
    Mamba {
        n_embd: usize,
        n_layer: usize,
        #[serde(default = "default_d_state")]
        d_state: usize,
        #[serde(default = "default_d_conv")]
        d_conv: usize,
        #[serde(default = "default_expand")]
        expand: usize,
        /// Default ceil(n_embd / 16).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dt_rank: Option<usize>,
    },
    /// S4D blocks with GELU and GLU (paper-spec §3.3).
    S4 {
        n_embd: usize,
        n_layer: usize,
        #[serde(default = "default_d_state")]
        d_state: usize,
    },
    /// Mamba blocks whose scan is an S4D convolution (paper-spec §3.4).
    S4Mamba {
        n_embd: usize,
        n_layer: usize,
        #[serde(default = "default_d_state")]
        d_state: usize,
        #[serde(default = "default_d_conv")]
        d_conv: usize,
        #[serde(default = "default_expand")]
        expand: usize,
        /// Channel dropout inside the mixer (paper code: 0.1).
        #[serde(default = "default_s4_dropout")]
        dropout: f64,
    },
    /// One Mamba block, then `n_layer` blocks alternating attention and Mamba; no positional
    /// embedding (paper-spec §3.5).
    Mambaformer {
        n_embd: usize,
        n_layer: usize,
        /// Attention heads (the paper's code fixes 8).
        #[serde(default = "default_hybrid_heads")]
        n_head: usize,
        #[serde(default = "default_d_state")]
        d_state: usize,
        #[serde(default = "default_d_conv")]
        d_conv: usize,
        #[serde(default = "default_expand")]
        expand: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dt_rank: Option<usize>,
    },
    /// `n_layer` blocks alternating attention and Mamba, with learned positions
    /// (paper-spec §3.6).
    Hybrid {
        n_embd: usize,
        n_layer: usize,
        #[serde(default = "default_hybrid_heads")]
        n_head: usize,
        /// Position-table rows, in tokens as in the paper's code: prompts need 2·points <= this.
        n_positions: usize,
        #[serde(default = "default_d_state")]
        d_state: usize,
        #[serde(default = "default_d_conv")]
        d_conv: usize,
        #[serde(default = "default_expand")]
        expand: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dt_rank: Option<usize>,
    },
}

fn default_d_state() -> usize {
    16
}
fn default_d_conv() -> usize {
    4
}
fn default_expand() -> usize {
    2
}
fn default_s4_dropout() -> f64 {
    0.1
}
fn default_hybrid_heads() -> usize {
    8
}

impl ModelSpec {
    pub const ARCHS: [&'static str; 6] = ["gpt2", "mamba", "s4", "s4_mamba", "mambaformer", "hybrid"];

    pub fn arch(&self) -> &'static str {
        match self {
            ModelSpec::Gpt2 { .. } => "gpt2",
            ModelSpec::Mamba { .. } => "mamba",
            ModelSpec::S4 { .. } => "s4",
            ModelSpec::S4Mamba { .. } => "s4_mamba",
            ModelSpec::Mambaformer { .. } => "mambaformer",
            ModelSpec::Hybrid { .. } => "hybrid",
        }
    }

    pub fn n_embd(&self) -> usize {
        match self {
            ModelSpec::Gpt2 { n_embd, .. }
            | ModelSpec::Mamba { n_embd, .. }
            | ModelSpec::S4 { n_embd, .. }
            | ModelSpec::S4Mamba { n_embd, .. }
            | ModelSpec::Mambaformer { n_embd, .. }
            | ModelSpec::Hybrid { n_embd, .. } => *n_embd,
        }
    }

    pub fn n_layer(&self) -> usize {
        match self {
            ModelSpec::Gpt2 { n_layer, .. }
            | ModelSpec::Mamba { n_layer, .. }
            | ModelSpec::S4 { n_layer, .. }
            | ModelSpec::S4Mamba { n_layer, .. }
            | ModelSpec::Mambaformer { n_layer, .. }
            | ModelSpec::Hybrid { n_layer, .. } => *n_layer,
        }
    }

    /// The longest prompt, in tokens, the model can take (None: unbounded). GPT-2's
    /// `n_positions` counts (x, y) pairs as in the paper's code, so its table has twice as many
    /// rows; the hybrid's counts tokens.
    pub fn max_tokens(&self) -> Option<usize> {
        match self {
            ModelSpec::Gpt2 { n_positions, .. } => Some(n_positions.saturating_mul(2)),
            ModelSpec::Hybrid { n_positions, .. } => Some(*n_positions),
            _ => None,
        }
    }

    /// The backbone's parameters (all but the task-sized read-in and read-out), counted from
    /// the spec as `models::IclModel` builds them; in f64, so that no size overflows.
    pub fn backbone_parameters(&self) -> f64 {
        let e = self.n_embd() as f64;
        let norm = 2.0 * e; // a LayerNorm's γ and β
        let attention = 4.0 * e * e + 4.0 * e;
        let mamba = |d_state: usize, d_conv: usize, expand: usize, dt_rank: Option<usize>| {
            let inner = (expand as f64) * e;
            let (n, k) = (d_state as f64, d_conv as f64);
            let r = dt_rank.unwrap_or(self.n_embd().div_ceil(16)) as f64;
            // in_proj, conv (weight, bias), x_proj, dt_proj (weight, bias), A, D, out_proj.
            3.0 * e * inner + inner * (k + 2.0 * r + 3.0 * n + 3.0)
        };
        // S4D over `width` channels: log Δ, then C (re, im), log(-Re A) and Im A per mode.
        let s4d = |width: f64, d_state: usize| width + 4.0 * width * (d_state / 2) as f64;
        // A mixer model's blocks (each a LayerNorm and its mixer), final norm, positions.
        let blocks = |mixers: f64, count: usize, positions: f64| mixers + count as f64 * norm + norm + positions * e;
        match *self {
            ModelSpec::Gpt2 { n_layer, n_positions, .. } => {
                2.0 * n_positions as f64 * e + n_layer as f64 * (2.0 * norm + attention + 8.0 * e * e + 5.0 * e) + norm
            }
            ModelSpec::Mamba { n_layer, d_state, d_conv, expand, dt_rank, .. } => {
                blocks(n_layer as f64 * mamba(d_state, d_conv, expand, dt_rank), n_layer, 0.0)
            }
            ModelSpec::S4 { n_layer, d_state, .. } => {
                // The kernel, D, and the GLU's 1x1 conv to 2H.
                blocks(n_layer as f64 * (s4d(e, d_state) + e + 2.0 * e * e + 2.0 * e), n_layer, 0.0)
            }
            ModelSpec::S4Mamba { n_layer, d_state, d_conv, expand, .. } => {
                let inner = expand as f64 * e;
                // in_proj, conv, the kernel, D, out_proj.
                let mixer = 3.0 * e * inner + inner * (d_conv as f64 + 1.0) + s4d(inner, d_state) + inner;
                blocks(n_layer as f64 * mixer, n_layer, 0.0)
            }
            ModelSpec::Mambaformer { n_layer, d_state, d_conv, expand, dt_rank, .. } => {
                // A Mamba, then n_layer blocks alternating attention (first) and Mamba.
                let attn = n_layer.div_ceil(2) as f64;
                let mambas = 1.0 + (n_layer / 2) as f64;
                blocks(attn * attention + mambas * mamba(d_state, d_conv, expand, dt_rank), n_layer + 1, 0.0)
            }
            ModelSpec::Hybrid { n_layer, n_positions, d_state, d_conv, expand, dt_rank, .. } => {
                let attn = n_layer.div_ceil(2) as f64;
                let mambas = (n_layer / 2) as f64;
                blocks(attn * attention + mambas * mamba(d_state, d_conv, expand, dt_rank), n_layer, n_positions as f64)
            }
        }
    }

    /// The keys that size this model, as `key value` pairs (for errors about its size).
    fn size_keys(&self) -> String {
        let (e, l) = (self.n_embd(), self.n_layer());
        let ssm = |d_state: usize, d_conv: usize, expand: usize| format!(", d_state {d_state}, d_conv {d_conv}, expand {expand}");
        let rank = |r: Option<usize>| r.map_or(String::new(), |r| format!(", dt_rank {r}"));
        let rest = match *self {
            ModelSpec::Gpt2 { n_positions, .. } => format!(", n_positions {n_positions}"),
            ModelSpec::S4 { d_state, .. } => format!(", d_state {d_state}"),
            ModelSpec::S4Mamba { d_state, d_conv, expand, .. } => ssm(d_state, d_conv, expand),
            ModelSpec::Mamba { d_state, d_conv, expand, dt_rank, .. } | ModelSpec::Mambaformer { d_state, d_conv, expand, dt_rank, .. } => {
                ssm(d_state, d_conv, expand) + &rank(dt_rank)
            }
            ModelSpec::Hybrid { n_positions, d_state, d_conv, expand, dt_rank, .. } => {
                format!(", n_positions {n_positions}") + &ssm(d_state, d_conv, expand) + &rank(dt_rank)
            }
        };
        format!("n_embd {e}, n_layer {l}{rest}")
    }
}

/// The most parameters a model may have: 2³² f32 weights are 16 GiB, and training keeps four
/// times that (gradients and Adam's two moments). A larger one is a typo far more often than
/// a plan, and would end the process when its memory runs out rather than fail the run.
pub const MAX_PARAMETERS: f64 = 4_294_967_296.0;

/// The most values one training activation or the evaluation prompts may hold (8 GiB of f32).
pub const MAX_TENSOR_VALUES: f64 = 2_147_483_648.0;

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
    /// Save weights and optimiser state every this many steps (default: `eval_every`), and
    /// always when the run stops or ends, so it can be resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
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

impl TrainSpec {
    pub fn checkpoint_every(&self) -> usize {
        self.checkpoint_every.unwrap_or(self.eval_every)
    }
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
        let dims_key = self.task.dims_key();
        check((1..=1024).contains(&d), dims_key, "must be in 1..=1024", d.to_string());
        match self.task {
            TaskSpec::SparseLinearRegression { sparsity, .. } => check(
                (1..=d).contains(&sparsity),
                "task.sparsity",
                &format!("must be in 1..=task.n_dims ({d})"),
                sparsity.to_string(),
            ),
            TaskSpec::Relu2nnRegression { hidden, .. } => {
                check((1..=100_000).contains(&hidden), "task.hidden", "must be in 1..=100000", hidden.to_string())
            }
            TaskSpec::DecisionTree { depth, .. } => {
                check((1..=20).contains(&depth), "task.depth", "must be in 1..=20", depth.to_string())
            }
            TaskSpec::OrthogonalOutlierRegression { p, .. } | TaskSpec::ManyOutlierRegression { p, .. } => {
                check((0.0..1.0).contains(&p), "task.p", "must be in [0, 1)", fmt_f64(p))
            }
            TaskSpec::SparseParity { k, .. } => {
                check((1..=d).contains(&k), "task.k", &format!("must be in 1..=task.n_dims ({d})"), k.to_string())
            }
            TaskSpec::ChainOfThought { hidden, .. } => {
                check((1..=1024).contains(&hidden), "task.hidden", "must be in 1..=1024", hidden.to_string())
            }
            TaskSpec::VectorMqar { queries, .. } | TaskSpec::TokenMqar { queries, .. } => {
                let pairs = self.train.curriculum.points.start;
                check(
                    (1..=pairs).contains(&queries),
                    "task.queries",
                    &format!("must be in 1..=train.curriculum.points.start ({pairs}, the key/value pairs)"),
                    queries.to_string(),
                );
                if let TaskSpec::TokenMqar { vocab, .. } = self.task {
                    let pairs = self.train.curriculum.points.end;
                    check(
                        vocab >= 4 && pairs.saturating_mul(2) <= vocab,
                        "task.vocab",
                        &format!("must be >= 4 and hold distinct keys for train.curriculum.points.end ({pairs}) pairs in its first half"),
                        vocab.to_string(),
                    );
                }
            }
            TaskSpec::LinearRegression { .. } => {}
        }

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
        if let Some(c) = t.checkpoint_every {
            check(c >= 1, "train.checkpoint_every", "must be >= 1", c.to_string());
        }
        check(t.eval_prompts >= 1, "train.eval_prompts", "must be >= 1", t.eval_prompts.to_string());
        check(t.log_every >= 1, "train.log_every", "must be >= 1", t.log_every.to_string());

        let c = &t.curriculum;
        for (name, s, upper) in [("dims", c.dims, d), ("points", c.points, usize::MAX)] {
            let f = |k: &str| format!("train.curriculum.{name}.{k}");
            check(s.start >= 1, &f("start"), "must be >= 1", s.start.to_string());
            check(s.end >= s.start, &f("end"), &format!("must be >= start ({})", s.start), s.end.to_string());
            check(s.interval >= 1, &f("interval"), "must be >= 1", s.interval.to_string());
            if upper != usize::MAX {
                check(s.end <= upper, &f("end"), &format!("must be <= {dims_key} ({upper})"), s.end.to_string());
            }
        }

        self.validate_model(&mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(errs))
        }
    }
}

impl ExperimentSpec {
    fn validate_model(&self, errs: &mut Vec<SpecError>) {
        let mut check = |ok: bool, field: &str, rule: &str, got: String| {
            if !ok {
                errs.push(SpecError::Invalid { field: field.into(), rule: rule.into(), got });
            }
        };
        let m = &self.model;
        let (e, l) = (m.n_embd(), m.n_layer());
        check(e >= 1, "model.n_embd", "must be >= 1", e.to_string());
        check(l >= 1, "model.n_layer", "must be >= 1", l.to_string());
        let heads = match m {
            ModelSpec::Gpt2 { n_head, .. } | ModelSpec::Mambaformer { n_head, .. } | ModelSpec::Hybrid { n_head, .. } => {
                Some(*n_head)
            }
            _ => None,
        };
        if let Some(h) = heads {
            check(h >= 1, "model.n_head", "must be >= 1", h.to_string());
            if h >= 1 {
                check(e % h == 0, "model.n_head", &format!("must divide model.n_embd ({e})"), h.to_string());
            }
        }
        let ssm = match m {
            ModelSpec::Mamba { d_state, d_conv, expand, dt_rank, .. }
            | ModelSpec::Mambaformer { d_state, d_conv, expand, dt_rank, .. }
            | ModelSpec::Hybrid { d_state, d_conv, expand, dt_rank, .. } => Some((*d_state, *d_conv, *expand, *dt_rank)),
            ModelSpec::S4Mamba { d_state, d_conv, expand, .. } => Some((*d_state, *d_conv, *expand, None)),
            ModelSpec::S4 { d_state, .. } => Some((*d_state, 1, 1, None)),
            ModelSpec::Gpt2 { .. } => None,
        };
        if let Some((d_state, d_conv, expand, dt_rank)) = ssm {
            check((1..=256).contains(&d_state), "model.d_state", "must be in 1..=256", d_state.to_string());
            check((1..=64).contains(&d_conv), "model.d_conv", "must be in 1..=64", d_conv.to_string());
            check((1..=16).contains(&expand), "model.expand", "must be in 1..=16", expand.to_string());
            if let Some(r) = dt_rank {
                check(r >= 1, "model.dt_rank", "must be >= 1", r.to_string());
            }
        }
        if let ModelSpec::S4 { d_state, .. } | ModelSpec::S4Mamba { d_state, .. } = m {
            check(d_state % 2 == 0, "model.d_state", "must be even (S4D uses d_state/2 complex modes)", d_state.to_string());
        }
        if let ModelSpec::S4Mamba { dropout, .. } = m {
            check((0.0..1.0).contains(dropout), "model.dropout", "must be in [0, 1)", fmt_f64(*dropout));
        }
        // What a typo in a count would make too large to hold: a training activation
        // ([batch, tokens, n_embd]) and the evaluation prompts, drawn at once on the host.
        let points = self.train.curriculum.points.end;
        let tokens = self.task.tokens(points);
        let params = m.backbone_parameters();
        let (batch, prompts, width) = (self.train.batch_size as f64, self.train.eval_prompts as f64, m.n_embd() as f64);
        let activation = batch * tokens as f64 * width;
        // (A model too large is reported alone: its width would make every batch too large.)
        check(
            activation <= MAX_TENSOR_VALUES || params > MAX_PARAMETERS,
            "train.batch_size",
            &format!("with prompts of {tokens} tokens (train.curriculum.points.end) and model.n_embd {width} makes activations of {activation:.3e} values: at most 2^31 (8 GiB) fit"),
            self.train.batch_size.to_string(),
        );
        let dims_key = self.task.dims_key();
        let eval_set = prompts * tokens as f64 * (self.task.n_dims() as f64 + 1.0);
        check(
            eval_set <= MAX_TENSOR_VALUES,
            "train.eval_prompts",
            &format!("with prompts of {tokens} tokens (train.curriculum.points.end) of {dims_key} + 1 values make an evaluation set of {eval_set:.3e} values: at most 2^31 (8 GiB) fit"),
            self.train.eval_prompts.to_string(),
        );
        check(
            params <= MAX_PARAMETERS,
            "model",
            "must have at most 2^32 parameters (16 GiB of f32 weights, four times that to train)",
            format!("{params:.3e} ({})", m.size_keys()),
        );
        if let Some(max) = m.max_tokens() {
            let unit = if matches!(m, ModelSpec::Gpt2 { .. }) { "2 x model.n_positions" } else { "model.n_positions" };
            check(
                tokens <= max,
                "train.curriculum.points.end",
                &format!("makes prompts of {tokens} tokens for this task: must fit {unit} ({max} tokens)"),
                points.to_string(),
            );
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

//! The run store: every run, its metric series, evaluation curves, tags, notes and checkpoints.
//!
//! `RunStore` is the interface; `SledStore` the implementation (sled 0.34, one directory per
//! store, weights as burn records in files beside the database). Writes from training go
//! through one writer thread (`writer`), which batches metric points and flushes at commit
//! points; readers (CLI, TUI) read the database directly.

pub mod bundle;
pub mod query;
mod home;
mod sled_store;
#[cfg(test)]
mod tests;
pub mod writer;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use home::{default_home, StoreHome};
pub use sled_store::SledStore;
pub use writer::{Writer, WriteOp};

use crate::spec::ExperimentSpec;
use crate::train::{EvalCurve, StepMetrics};

/// The version of the on-disk layout; a store written by a newer icl-lab is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// A run's number in one store (bundles remap it on import; `uid` is global).
pub type RunId = u64;

/// Where a run is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed { reason: String },
    /// Stopped by the user; not meant to continue (it still can, from its checkpoint).
    Cancelled,
    /// The loss became NaN or infinite at `step`.
    Diverged { step: usize, loss: f32 },
    /// Stopped before the end (Ctrl-C, a quit, a crash, a kill); resumable from its checkpoint.
    Interrupted,
}

impl Status {
    /// The one-word name used in tables and filters.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed { .. } => "failed",
            Status::Cancelled => "cancelled",
            Status::Diverged { .. } => "diverged",
            Status::Interrupted => "interrupted",
        }
    }

    /// Queued or running: a worker owns (or will own) the run.
    pub fn is_alive(&self) -> bool {
        matches!(self, Status::Queued | Status::Running)
    }

    pub const LABELS: [&'static str; 7] =
        ["queued", "running", "done", "failed", "cancelled", "diverged", "interrupted"];
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Failed { reason } => write!(f, "failed: {reason}"),
            Status::Diverged { step, loss } => write!(f, "diverged at step {step} (loss {loss})"),
            other => f.write_str(other.label()),
        }
    }
}

/// The latest saved weights and optimiser state of a run, enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Steps completed when it was saved.
    pub step: usize,
    /// Directory relative to the store root, holding `model.bin`, `optim.bin`.
    pub dir: String,
    /// Position of the data sampler's stream, so the batches after a resume are the ones the
    /// uninterrupted run would have drawn.
    #[serde(with = "u128_string")]
    pub data_word_pos: u128,
}

/// u128 as a decimal string: JSON readers (and serde's internally tagged enums) lack u128.
mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One run, as kept in the store (metrics and curves are kept beside it, by run id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    /// Globally unique; keeps bundle imports idempotent.
    pub uid: String,
    pub spec: ExperimentSpec,
    pub status: Status,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub started: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
    /// The device it ran on (e.g. `cpu`, `cuda:0`).
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub host: String,
    /// The process that runs it, while it runs (to tell a live run from a dead one).
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub git_commit: Option<String>,
    #[serde(default)]
    pub params: Option<usize>,
    #[serde(default)]
    pub flops_per_token: Option<f64>,
    /// Steps completed, as far as the store has recorded.
    #[serde(default)]
    pub step: usize,
    /// The latest recorded metric point.
    #[serde(default)]
    pub last: Option<StepMetrics>,
    /// Model error at the last position of the latest evaluation at full prompt length.
    #[serde(default)]
    pub final_error: Option<f32>,
    /// Each baseline's error at the last position of that same evaluation.
    #[serde(default)]
    pub final_baselines: std::collections::BTreeMap<String, f32>,
    /// Seconds spent training, summed over resumes.
    #[serde(default)]
    pub train_s: f64,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// Where an imported run came from (bundle file and its id there).
    #[serde(default)]
    pub origin: Option<String>,
}

impl RunRecord {
    pub fn task(&self) -> &'static str {
        self.spec.task.kind()
    }
    pub fn arch(&self) -> &'static str {
        self.spec.model.arch()
    }
    pub fn total_steps(&self) -> usize {
        self.spec.train.steps
    }
    /// Fraction of the steps done, 0..=1.
    pub fn progress(&self) -> f64 {
        if self.total_steps() == 0 {
            return 1.0;
        }
        (self.step as f64 / self.total_steps() as f64).min(1.0)
    }
}

/// What creating a run needs; the store fills in id, uid and timestamps.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub spec: ExperimentSpec,
    pub git_commit: Option<String>,
    pub tags: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store in use by pid {pid} ({path}); close that icl-lab or use --store DIR")]
    InUse { pid: String, path: PathBuf },
    #[error("not an icl-lab store: {path} is a file, not a directory")]
    IsFile { path: PathBuf },
    #[error("not an icl-lab store: {path} is not empty and has no store.json (nothing was changed)")]
    Foreign { path: PathBuf },
    #[error("{path}: unreadable store.json ({reason}); nothing was changed")]
    BadMarker { path: PathBuf, reason: String },
    #[error("store {path} has schema {found}, newer than this icl-lab's {supported}; upgrade icl-lab")]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("store {path} could not be opened: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("no run with id {0}")]
    NoRun(RunId),
    #[error("store database error: {0}")]
    Db(#[from] sled::Error),
    #[error("store record {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store's interface. Implementations are shared between threads; writes from training
/// go through the `Writer` thread, occasional edits (tags, notes) directly.
pub trait RunStore: Send + Sync {
    /// The store's directory (checkpoint paths are relative to it).
    fn root(&self) -> &Path;
    fn create_run(&self, new: NewRun) -> Result<RunRecord>;
    fn get(&self, id: RunId) -> Result<RunRecord>;
    /// Applies `edit` to the run's record atomically and returns the new record.
    fn update(&self, id: RunId, edit: &mut dyn FnMut(&mut RunRecord)) -> Result<RunRecord>;
    /// Every run, by id.
    fn list(&self) -> Result<Vec<RunRecord>>;
    /// Writes metric points; a point for a step already stored replaces it (no duplicates).
    fn append_metrics(&self, id: RunId, points: &[StepMetrics]) -> Result<()>;
    /// Metric points with `step > after`, in step order.
    fn metrics_after(&self, id: RunId, after: usize) -> Result<Vec<StepMetrics>>;
    fn metrics(&self, id: RunId) -> Result<Vec<StepMetrics>> {
        self.metrics_after(id, 0)
    }
    /// Removes metric points and curves after `step` (a resume from an earlier checkpoint
    /// trains those steps again).
    fn rewind(&self, id: RunId, step: usize) -> Result<()>;
    fn put_eval(&self, id: RunId, curve: &EvalCurve) -> Result<()>;
    /// Evaluation curves in step order.
    fn evals(&self, id: RunId) -> Result<Vec<EvalCurve>>;
    /// The run with this global uid, if present.
    fn find_uid(&self, uid: &str) -> Result<Option<RunId>>;
    /// Removes the run, its metrics, curves and checkpoint files.
    fn delete(&self, id: RunId) -> Result<()>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<()>;
    /// Inserts a complete run (bundle import): record with a fresh id, metrics and curves, in
    /// one batch. Returns the new id.
    fn insert_full(&self, rec: RunRecord, metrics: &[StepMetrics], evals: &[EvalCurve]) -> Result<RunId>;
    /// Replaces a run's series and record (bundle import of a run that went further).
    fn replace_full(&self, rec: RunRecord, metrics: &[StepMetrics], evals: &[EvalCurve]) -> Result<()>;

    /// The checkpoint directory of a run, absolute.
    fn checkpoint_path(&self, ckpt: &Checkpoint) -> PathBuf {
        self.root().join(&ckpt.dir)
    }
}

/// The host name, for run records (which machine ran it).
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "localhost".into())
}

/// The git commit of the directory `dir` is in, with `-dirty` for uncommitted changes.
pub fn git_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether process `pid` is alive on this machine.
pub fn pid_alive(pid: u32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

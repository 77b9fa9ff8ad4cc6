//! Slurm array jobs written by `icl-lab sweep --slurm DIR`: the manifest in DIR, and what became
//! of each array task. Task states come from `squeue` (jobs the controller still knows), else
//! `sacct` (where the cluster keeps accounting), else the exit-status files the batch script
//! writes. `icl-lab slurm ...` and the notebook's Queue view (through `watch`) both read jobs
//! here; the store remembers which job directories it follows (`remember`).

pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::bundle::{self, BundleError};
use crate::store::RunStore;

pub const MANIFEST: &str = "manifest.json";
pub const SCRIPT: &str = "job.sbatch";
pub const FORMAT: &str = "icl-lab-slurm";
pub const VERSION: u32 = 1;
/// In a store's directory: the Slurm job directories written for it, one absolute path a line.
pub const JOBS_FILE: &str = "slurm-jobs.txt";

/// DIR/manifest.json: what the job is and where each run's files go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub job_name: String,
    pub created: DateTime<Utc>,
    /// The icl-lab the nodes run (absolute: nodes need the same filesystem).
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub script: PathBuf,
    pub runs: Vec<ManifestRun>,
    /// Array index -> run names.
    pub tasks: Vec<Vec<String>>,
    /// Where Slurm writes each task's output (`%A` job id, `%a` array index).
    pub log_pattern: String,
    pub submissions: Vec<Submission>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestRun {
    pub name: String,
    pub task: usize,
    pub spec: PathBuf,
    pub bundle: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: String,
    /// The array indices submitted, in sbatch's syntax (`0-2`, `3,5`).
    pub array: String,
    pub indices: Vec<usize>,
    pub submitted: DateTime<Utc>,
}

/// Why a job directory or a Slurm command gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{path}: {reason}; is {dir} a directory written by `icl-lab sweep --slurm`?")]
    NoManifest { path: PathBuf, dir: PathBuf, reason: String },
    #[error("{path}: not an icl-lab Slurm manifest{reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{path}: manifest version {found} is newer than this icl-lab's {VERSION}; upgrade icl-lab")]
    NewerManifest { path: PathBuf, found: u32 },
    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{0} not found on PATH: is Slurm installed? Run this where Slurm's commands are (a login node)")]
    NotFound(String),
    #[error("{program} failed ({status}): {stderr}")]
    Failed { program: String, status: String, stderr: String },
    #[error("{program}: {reason}")]
    Io { program: String, reason: String },
}

impl SlurmError {
    /// The job directory is not one icl-lab can read (as opposed to Slurm not answering).
    pub fn is_bad_dir(&self) -> bool {
        matches!(self, SlurmError::NoManifest { .. } | SlurmError::BadManifest { .. } | SlurmError::NewerManifest { .. })
    }
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest, SlurmError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SlurmError::NoManifest { path: path.clone(), dir: dir.to_path_buf(), reason: e.to_string() })?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| SlurmError::BadManifest { path: path.clone(), reason: format!(" ({e})") })?;
        if m.format != FORMAT {
            return Err(SlurmError::BadManifest { path, reason: String::new() });
        }
        if m.version > VERSION {
            return Err(SlurmError::NewerManifest { path, found: m.version });
        }
        Ok(m)
    }

    /// Writes the manifest via a temporary file, renamed over the old one.
    pub fn save(&self) -> Result<(), SlurmError> {
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("the manifest serialises");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| SlurmError::Write { path, reason: e.to_string() })
    }

    /// The latest submission that ran array index `i`.
    pub fn submission_of(&self, i: usize) -> Option<&Submission> {
        self.submissions.iter().rev().find(|s| s.indices.contains(&i))
    }

    pub fn log_path(&self, job_id: &str, index: usize) -> PathBuf {
        PathBuf::from(self.log_pattern.replace("%A", job_id).replace("%a", &index.to_string()))
    }
}

/// Runs a Slurm command; its stdout, or an error that shows its stderr.
pub fn slurm_cmd(program: &str, args: &[&str], cwd: &Path) -> Result<String, SlurmError> {
    let out = Command::new(program).args(args).current_dir(cwd).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SlurmError::NotFound(program.into()),
        _ => SlurmError::Io { program: program.into(), reason: e.to_string() },
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ");
        return Err(SlurmError::Failed {
            program: program.into(),
            status: out.status.to_string(),
            stderr: if stderr.is_empty() { "no message".into() } else { stderr },
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What became of one array task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskState {
    pub index: usize,
    pub runs: Vec<String>,
    pub job_id: Option<String>,
    /// Slurm's state (squeue, else sacct), or the script's exit status.
    pub state: String,
    pub verdict: Verdict,
    pub bundles: usize,
    pub log: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    NotSubmitted,
    Active,
    Done,
    Failed,
}

impl TaskState {
    /// Waiting for a node (as opposed to running on one), among the active tasks.
    pub fn is_pending(&self) -> bool {
        self.verdict == Verdict::Active && PENDING.contains(&self.state.as_str())
    }
}

/// Slurm states of a job that is not over yet.
const ACTIVE: &[&str] =
    &["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT"];
/// Those of them that wait for a node.
const PENDING: &[&str] = &["PENDING", "REQUEUED", "REQUEUE_HOLD"];

/// Array task id (`JOB_INDEX`) -> state, from squeue (jobs the controller still knows) and
/// sacct (older ones, where accounting is kept). An unreachable controller is an error.
fn slurm_states(job_ids: &BTreeSet<&str>, cwd: &Path) -> Result<BTreeMap<String, String>, SlurmError> {
    let mut states = BTreeMap::new();
    for job in job_ids {
        match slurm_cmd("squeue", &["-h", "-r", "--states=all", "-j", job, "-o", "%i|%T"], cwd) {
            Ok(out) => parse_states(&out, &mut states),
            // A job that ended long ago is forgotten by the controller.
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => {}
            Err(e) => return Err(e),
        }
        // Accounting is optional on a cluster: without it sacct says so, and the exit-status
        // files written by the script stand in.
        if let Ok(out) = slurm_cmd("sacct", &["-n", "-P", "-X", "-j", job, "-o", "JobID,State"], cwd) {
            let mut found = BTreeMap::new();
            parse_states(&out, &mut found);
            for (k, v) in found {
                states.entry(k).or_insert(v);
            }
        }
    }
    Ok(states)
}

/// Lines `12_3|COMPLETED` (sacct may add words: `CANCELLED by 0`).
pub fn parse_states(out: &str, into: &mut BTreeMap<String, String>) {
    for line in out.lines() {
        if let Some((id, state)) = line.trim().split_once('|') {
            let state = state.split_whitespace().next().unwrap_or("").to_string();
            if !state.is_empty() {
                into.insert(id.to_string(), state);
            }
        }
    }
}

/// Each task's state from Slurm's states (`slurm`), the exit-status files and the bundles.
pub fn task_states(m: &Manifest, slurm: &BTreeMap<String, String>) -> Vec<TaskState> {
    m.tasks
        .iter()
        .enumerate()
        .map(|(index, names)| {
            let bundles = m.runs.iter().filter(|r| r.task == index && r.bundle.exists()).count();
            let sub = m.submission_of(index);
            let Some(sub) = sub else {
                let state = "not submitted".to_string();
                return TaskState { index, runs: names.clone(), job_id: None, state, verdict: Verdict::NotSubmitted, bundles, log: None };
            };
            let id = format!("{}_{index}", sub.job_id);
            let exit_code = std::fs::read_to_string(m.dir.join("state").join(format!("{id}.exit")))
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            let slurm_state = slurm.get(&id).cloned();
            let all_bundles = bundles == names.len();
            let (state, verdict) = match (slurm_state, exit_code) {
                (Some(s), _) if ACTIVE.contains(&s.as_str()) => (s, Verdict::Active),
                (s, Some(0)) if all_bundles => (s.unwrap_or_else(|| "exit 0".into()), Verdict::Done),
                (Some(s), None) if s == "COMPLETED" && all_bundles => (s, Verdict::Done),
                (s, Some(code)) => (format!("{} (exit {code})", s.unwrap_or_else(|| "ended".into())), Verdict::Failed),
                (Some(s), None) => (s, Verdict::Failed),
                (None, None) => ("unknown (not in squeue, no accounting, no exit status)".into(), Verdict::Failed),
            };
            let state = if verdict == Verdict::Failed && !all_bundles {
                format!("{state}, {} of {} bundles missing", names.len() - bundles, names.len())
            } else {
                state
            };
            TaskState { index, runs: names.clone(), job_id: Some(sub.job_id.clone()), state, verdict, bundles, log: Some(m.log_path(&sub.job_id, index)) }
        })
        .collect()
}

/// A job directory read: the manifest, every task's state, and why Slurm gave no states if
/// it did not (then the states come from the exit-status files alone).
pub struct Survey {
    pub manifest: Manifest,
    pub tasks: Vec<TaskState>,
    pub slurm_error: Option<SlurmError>,
}

/// Reads the job in `dir` and asks Slurm about its submissions.
pub fn survey(dir: &Path) -> Result<Survey, SlurmError> {
    let manifest = Manifest::load(dir)?;
    let jobs: BTreeSet<&str> = manifest.submissions.iter().map(|s| s.job_id.as_str()).collect();
    let (slurm, slurm_error) = if jobs.is_empty() {
        (BTreeMap::new(), None)
    } else {
        match slurm_states(&jobs, &manifest.dir) {
            Ok(s) => (s, None),
            Err(e) => (BTreeMap::new(), Some(e)),
        }
    };
    let tasks = task_states(&manifest, &slurm);
    Ok(Survey { manifest, tasks, slurm_error })
}

/// `3 tasks: 1 done, 2 pending or running`.
pub fn counts(states: &[TaskState]) -> String {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for s in states {
        let k = match s.verdict {
            Verdict::NotSubmitted => "not submitted",
            Verdict::Active => "pending or running",
            Verdict::Done => "done",
            Verdict::Failed => "failed or missing",
        };
        *n.entry(k).or_default() += 1;
    }
    let parts: Vec<String> = n.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("{} tasks: {}", states.len(), parts.join(", "))
}

/// What collecting a job's bundles did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// Bundles present (and imported).
    pub bundles: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Imports every bundle of the job that came back into `store` (idempotent). All are read
/// and checked before the first write: a bad one imports nothing.
pub fn collect(store: &dyn RunStore, m: &Manifest) -> Result<Collected, BundleError> {
    let present: Vec<&ManifestRun> = m.runs.iter().filter(|r| r.bundle.exists()).collect();
    let mut read = Vec::new();
    for r in &present {
        read.push(bundle::read(&r.bundle)?);
    }
    let mut c = Collected { bundles: present.len(), ..Collected::default() };
    for (r, runs) in present.iter().zip(read) {
        let rep = bundle::merge(store, runs, &r.bundle)?;
        c.added += rep.added.len();
        c.updated += rep.updated.len();
        c.unchanged += rep.unchanged.len();
    }
    Ok(c)
}

/// Adds job directory `dir` to those the store at `root` follows (its Queue view shows them).
pub fn remember(root: &Path, dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    if remembered(root).iter().any(|d| d == dir) {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(root.join(JOBS_FILE))?;
    writeln!(f, "{}", dir.display())
}

/// The job directories the store at `root` follows, oldest first (none if it has no list).
pub fn remembered(root: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root.join(JOBS_FILE)).unwrap_or_default();
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_and_sacct_lines_parse() {
        let mut m = BTreeMap::new();
        parse_states("12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-3]|PENDING\n\n", &mut m);
        assert_eq!(m.get("12_0").map(String::as_str), Some("COMPLETED"));
        assert_eq!(m.get("12_1").map(String::as_str), Some("CANCELLED"));
        assert_eq!(m.get("12_[2-3]").map(String::as_str), Some("PENDING"));
    }

    /// A manifest of `tasks` one-run tasks in `dir`, all submitted as job 7.
    pub(crate) fn manifest(dir: &Path, tasks: usize) -> Manifest {
        let runs = (0..tasks)
            .map(|t| ManifestRun {
                name: format!("r{t}"),
                task: t,
                spec: dir.join(format!("specs/r{t}.toml")),
                bundle: dir.join(format!("bundles/r{t}.bundle")),
            })
            .collect();
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            job_name: "t".into(),
            created: Utc::now(),
            binary: "/bin/true".into(),
            dir: dir.to_path_buf(),
            script: dir.join(SCRIPT),
            runs,
            tasks: (0..tasks).map(|t| vec![format!("r{t}")]).collect(),
            log_pattern: format!("{}/logs/%A_%a.out", dir.display()),
            submissions: vec![Submission { job_id: "7".into(), array: format!("0-{}", tasks - 1), indices: (0..tasks).collect(), submitted: Utc::now() }],
        }
    }

    #[test]
    fn task_verdicts_combine_slurm_states_exit_files_and_bundles() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["bundles", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let mut m = manifest(dir.path(), 6);
        m.submissions[0].indices = (0..5).collect(); // task 5 never submitted
        let touch = |p: &str, text: &str| std::fs::write(dir.path().join(p), text).unwrap();
        // 0: done (exit 0, bundle); 1: running; 2: exit 0 but no bundle; 3: diverged run (exit 1,
        // bundle); 4: killed by Slurm (TIMEOUT, no exit file, no bundle).
        touch("bundles/r0.bundle", "");
        touch("state/7_0.exit", "0\n");
        touch("state/7_2.exit", "0\n");
        touch("bundles/r3.bundle", "");
        touch("state/7_3.exit", "1\n");
        let slurm: BTreeMap<String, String> =
            [("7_1", "RUNNING"), ("7_4", "TIMEOUT")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let s = task_states(&m, &slurm);
        let v: Vec<Verdict> = s.iter().map(|t| t.verdict).collect();
        use Verdict::*;
        assert_eq!(v, [Done, Active, Failed, Failed, Failed, NotSubmitted]);
        assert!(!s[1].is_pending());
        assert_eq!(s[2].state, "ended (exit 0), 1 of 1 bundles missing");
        assert_eq!(s[3].state, "ended (exit 1)");
        assert_eq!(s[4].state, "TIMEOUT, 1 of 1 bundles missing");
        assert_eq!(s[4].log.as_deref(), Some(dir.path().join("logs/7_4.out").as_path()));
        // A resubmission takes over the indices it ran.
        m.submissions.push(Submission { job_id: "9".into(), array: "4".into(), indices: vec![4], submitted: Utc::now() });
        let s = task_states(&m, &slurm);
        assert_eq!(s[4].job_id.as_deref(), Some("9"));
        assert_eq!(s[4].verdict, Failed);
        assert!(s[4].state.starts_with("unknown"), "{}", s[4].state);
    }

    #[test]
    fn a_store_remembers_each_job_directory_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(remembered(dir.path()).is_empty());
        remember(dir.path(), Path::new("/jobs/a")).unwrap();
        remember(dir.path(), Path::new("/jobs/b")).unwrap();
        remember(dir.path(), Path::new("/jobs/a")).unwrap();
        assert_eq!(remembered(dir.path()), [PathBuf::from("/jobs/a"), PathBuf::from("/jobs/b")]);
    }
}

//! Slurm array jobs. `icl-lab sweep FILE --slurm DIR` writes into DIR the runs' spec files, a
//! batch script for an array job (each array task trains its runs one after another with
//! `icl-lab run ... --bundle-out`, on a store in node-local temporary space) and a manifest;
//! `--submit` hands the script to `sbatch`. `icl-lab slurm status|collect|resubmit DIR` follow
//! the job, import the bundles that came back and resubmit the tasks that did not finish (a
//! run whose bundle came back interrupted continues from its checkpoint, the others train from
//! their specs).
//!
//! What travels: nothing of the store. The nodes read the spec files and run the binary by
//! absolute path (a shared filesystem), and write bundles, logs and an exit-status file per
//! task into DIR. The task states come from `squeue`, else `sacct` (when the cluster keeps
//! accounting), else those exit-status files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sweep::Expanded;
use super::{exit, open_store, CliError, CliResult};
use crate::report::runs::table;
use crate::store::{bundle, Status};

const MANIFEST: &str = "manifest.json";
const SCRIPT: &str = "job.sbatch";
const FORMAT: &str = "icl-lab-slurm";
const VERSION: u32 = 1;
/// Seconds before the time limit at which the batch script is sent SIGINT: the running run
/// stops at its next step, saves a checkpoint and still writes its bundle.
const WARN_BEFORE_LIMIT_S: u32 = 120;

/// `icl-lab sweep ... --slurm DIR`: the job's settings.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// Write a Slurm array job into DIR (a new or empty directory) instead of training here.
    #[arg(long, value_name = "DIR")]
    pub slurm: Option<PathBuf>,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// GPUs per array task (sbatch --gpus-per-task).
    #[arg(long, value_name = "N", requires = "slurm")]
    pub gpus_per_task: Option<u32>,
    /// CPUs per array task (sbatch --cpus-per-task).
    #[arg(long, value_name = "N", requires = "slurm")]
    pub cpus_per_task: Option<u32>,
    /// Time limit per array task, in Slurm's format (e.g. 2:00:00).
    #[arg(long, value_name = "T", requires = "slurm")]
    pub time: Option<String>,
    /// Runs per array task, trained one after another.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), requires = "slurm")]
    pub runs_per_task: u32,
    /// Submit the job with sbatch (else only write it; `icl-lab slurm resubmit DIR` submits).
    #[arg(long, requires = "slurm")]
    pub submit: bool,
}

#[derive(Debug, Args)]
pub struct SlurmCmd {
    #[command(subcommand)]
    pub action: SlurmAction,
}

#[derive(Debug, Subcommand)]
pub enum SlurmAction {
    /// Each array task's state (squeue, sacct) and which bundles came back.
    Status(DirArgs),
    /// Import every bundle that came back into the store (idempotent); report failed tasks.
    Collect(DirArgs),
    /// Submit an array of only the tasks that failed or whose bundles are missing.
    Resubmit(DirArgs),
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// The directory written by `icl-lab sweep --slurm DIR`.
    pub dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// DIR/manifest.json: what the job is and where each run's files go.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    job_name: String,
    created: DateTime<Utc>,
    /// The icl-lab the nodes run (absolute: nodes need the same filesystem).
    binary: PathBuf,
    dir: PathBuf,
    script: PathBuf,
    runs: Vec<ManifestRun>,
    /// Array index -> run names.
    tasks: Vec<Vec<String>>,
    /// Where Slurm writes each task's output (`%A` job id, `%a` array index).
    log_pattern: String,
    submissions: Vec<Submission>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestRun {
    name: String,
    task: usize,
    spec: PathBuf,
    bundle: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Submission {
    job_id: String,
    /// The array indices submitted, in sbatch's syntax (`0-2`, `3,5`).
    array: String,
    indices: Vec<usize>,
    submitted: DateTime<Utc>,
}

impl Manifest {
    fn load(dir: &Path) -> Result<Manifest, CliError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            CliError::bad_input(format!(
                "{}: {e}; is {} a directory written by `icl-lab sweep --slurm`?",
                path.display(),
                dir.display()
            ))
        })?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| CliError::bad_input(format!("{}: not an icl-lab Slurm manifest ({e})", path.display())))?;
        if m.format != FORMAT {
            return Err(CliError::bad_input(format!("{}: not an icl-lab Slurm manifest", path.display())));
        }
        if m.version > VERSION {
            return Err(CliError::bad_input(format!(
                "{}: manifest version {} is newer than this icl-lab's {VERSION}; upgrade icl-lab",
                path.display(),
                m.version
            )));
        }
        Ok(m)
    }

    /// Writes the manifest via a temporary file, renamed over the old one.
    fn save(&self) -> Result<(), CliError> {
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("the manifest serialises");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
    }

    /// The latest submission that ran array index `i`.
    fn submission_of(&self, i: usize) -> Option<&Submission> {
        self.submissions.iter().rev().find(|s| s.indices.contains(&i))
    }

    fn log_path(&self, job_id: &str, index: usize) -> PathBuf {
        PathBuf::from(self.log_pattern.replace("%A", job_id).replace("%a", &index.to_string()))
    }
}

/// A run name as a file name: letters, digits, `.`, `_`, `-`; anything else becomes `_`.
fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

/// Quotes a word for bash.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value that goes on an `#SBATCH` line, which cannot quote.
fn sbatch_word(flag: &str, v: &str) -> Result<String, CliError> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '%' || c.is_control()) {
        return Err(CliError::bad_input(format!("{flag} {v:?}: must be one word without spaces or '%'")));
    }
    Ok(v.to_string())
}

/// `0,1,2,5` -> `0-2,5` (sbatch's --array syntax).
fn fmt_indices(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        while i + 1 < indices.len() && indices[i + 1] == indices[i] + 1 {
            i += 1;
        }
        parts.push(if indices[i] == start { start.to_string() } else { format!("{start}-{}", indices[i]) });
        i += 1;
    }
    parts.join(",")
}

/// `icl-lab sweep ... --slurm DIR`: writes the spec files, the batch script and the manifest,
/// and with `--submit` submits the whole array.
pub fn write_job(dir: &Path, args: &SlurmArgs, expanded: &Expanded, tags: &BTreeSet<String>, json: bool) -> CliResult {
    let mut directives = Vec::new();
    if let Some(p) = &args.partition {
        directives.push(format!("--partition={}", sbatch_word("--partition", p)?));
    }
    if let Some(n) = args.gpus_per_task {
        directives.push(format!("--gpus-per-task={n}"));
    }
    if let Some(n) = args.cpus_per_task {
        directives.push(format!("--cpus-per-task={n}"));
    }
    if let Some(t) = &args.time {
        directives.push(format!("--time={}", sbatch_word("--time", t)?));
    }
    let binary = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| CliError::failed(format!("cannot find this icl-lab's own path: {e}")))?;
    if dir.is_file() || dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(CliError::bad_input(format!(
            "--slurm {}: not a new or empty directory (a job written there before is followed with `icl-lab slurm status {}`)",
            dir.display(),
            dir.display()
        )));
    }
    let absolute = std::path::absolute(dir).map_err(|e| CliError::bad_input(format!("--slurm {}: {e}", dir.display())))?;
    sbatch_word("--slurm", &absolute.to_string_lossy())?;
    let io = |what: &Path, e: std::io::Error| CliError::failed(format!("{}: {e}", what.display()));
    for sub in ["specs", "bundles", "logs", "state"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| io(&dir.join(sub), e))?;
    }
    let dir = dir.canonicalize().map_err(|e| io(dir, e))?;
    let dir_text = dir.to_string_lossy().into_owned();
    sbatch_word("--slurm", &dir_text)?; // a symlink may lead to such a path

    let per_task = args.runs_per_task as usize;
    let mut runs = Vec::new();
    let mut stems = BTreeSet::new();
    for (i, spec) in expanded.specs.iter().enumerate() {
        let mut stem = file_stem(&spec.name);
        if !stems.insert(stem.clone()) {
            stem = format!("{stem}-{i}");
            stems.insert(stem.clone());
        }
        let spec_path = dir.join("specs").join(format!("{stem}.toml"));
        std::fs::write(&spec_path, spec.to_toml()).map_err(|e| io(&spec_path, e))?;
        runs.push(ManifestRun {
            name: stem.clone(),
            task: i / per_task,
            spec: spec_path,
            bundle: dir.join("bundles").join(format!("{stem}.bundle")),
        });
    }
    let tasks: Vec<Vec<String>> =
        runs.chunks(per_task).map(|c| c.iter().map(|r| r.name.clone()).collect()).collect();
    let job_name: String = expanded.names.join("+").chars().take(64).collect();
    let mut manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        job_name: file_stem(&job_name),
        created: Utc::now(),
        binary,
        dir: dir.clone(),
        script: dir.join(SCRIPT),
        runs,
        tasks,
        log_pattern: format!("{dir_text}/logs/%A_%a.out"),
        submissions: Vec::new(),
    };
    let script = batch_script(&manifest, &directives, tags);
    std::fs::write(&manifest.script, script).map_err(|e| io(&manifest.script, e))?;
    manifest.save()?;
    eprintln!(
        "wrote {} runs as {} array tasks into {} ({SCRIPT}, {MANIFEST}, specs/)",
        manifest.runs.len(),
        manifest.tasks.len(),
        dir.display()
    );
    if !args.submit {
        eprintln!("submit with: icl-lab slurm resubmit {}", dir.display());
        if json {
            println!("{}", serde_json::to_string_pretty(&manifest).expect("the manifest serialises"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let all: Vec<usize> = (0..manifest.tasks.len()).collect();
    submit(&mut manifest, &all, json)
}

/// The batch script: one array task per entry of `m.tasks`.
fn batch_script(m: &Manifest, directives: &[String], tags: &BTreeSet<String>) -> String {
    let dir = m.dir.to_string_lossy();
    let mut s = format!(
        "#!/bin/bash\n\
         # icl-lab Slurm array job {name:?}, written by `icl-lab sweep --slurm` on {created}.\n\
         # Each array task trains its runs one after another with `icl-lab run`, on a store in\n\
         # node-local temporary space, and writes each run as a bundle into {dir}/bundles/\n\
         # (import them with `icl-lab slurm collect {dir}`). Nodes must see the binary and this\n\
         # directory at the same paths (a shared filesystem). Near the time limit the running run\n\
         # is interrupted (SIGINT): it saves a checkpoint and its bundle still comes back; a\n\
         # resubmitted task continues such a run from its bundle (`icl-lab resume BUNDLE`).\n\
         #SBATCH --job-name={name}\n\
         #SBATCH --array={array}\n\
         #SBATCH --output={log}\n\
         #SBATCH --signal=B:INT@{WARN_BEFORE_LIMIT_S}\n",
        name = m.job_name,
        created = m.created.format("%Y-%m-%d %H:%M UTC"),
        array = fmt_indices(&(0..m.tasks.len()).collect::<Vec<_>>()),
        log = m.log_pattern,
    );
    for d in directives {
        s += &format!("#SBATCH {d}\n");
    }
    s += &format!(
        "set -u\nbin={}\ndir={}\ncase \"${{SLURM_ARRAY_TASK_ID:?not a Slurm array task}}\" in\n",
        sh_quote(&m.binary.to_string_lossy()),
        sh_quote(&dir)
    );
    for (i, names) in m.tasks.iter().enumerate() {
        let quoted: Vec<String> = names.iter().map(|n| sh_quote(n)).collect();
        s += &format!("{i}) runs=({}) ;;\n", quoted.join(" "));
    }
    let tag_args: String = tags.iter().map(|t| format!(" --tag {}", sh_quote(t))).collect();
    s += &format!(
        r#"*) echo "icl-lab: array index $SLURM_ARRAY_TASK_ID has no runs" >&2; exit 2 ;;
esac
task="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
store="${{TMPDIR:-/tmp}}/icl-lab-$task"
child=""
stopping=0
on_signal() {{ stopping=1; [ -n "$child" ] && kill -INT "$child" 2>/dev/null; }}
trap on_signal INT TERM
trap 'rm -rf "$store"' EXIT
rc=0
for run in "${{runs[@]}}"; do
    if [ "$stopping" = 1 ]; then echo "icl-lab: stopping before $run"; rc=130; break; fi
    bundle="$dir/bundles/$run.bundle"
    # A bundle from an earlier submission (an interrupted run) is continued from its
    # checkpoint; a finished one is left as it is; a run without one trains from its spec.
    if [ -s "$bundle" ]; then
        echo "icl-lab: resume $run from its bundle on $(hostname), task $task"
        "$bin" resume "$bundle" --store "$store" --bundle-out "$bundle" &
    else
        echo "icl-lab: run $run on $(hostname), task $task"
        "$bin" run "$dir/specs/$run.toml" --store "$store" --bundle-out "$bundle"{tag_args} &
    fi
    child=$!
    # A signal ends `wait` early: wait again until the run has written its bundle.
    while true; do
        wait "$child"; status=$?
        kill -0 "$child" 2>/dev/null || break
    done
    child=""
    if [ "$status" -ne 0 ]; then rc=$status; fi
done
echo "$rc" > "$dir/state/$task.exit"
exit "$rc"
"#
    );
    s
}

/// Why a Slurm command gave no answer.
#[derive(Debug, thiserror::Error)]
enum SlurmError {
    #[error("{0} not found on PATH: is Slurm installed? Run this where Slurm's commands are (a login node)")]
    NotFound(String),
    #[error("{program} failed ({status}): {stderr}")]
    Failed { program: String, status: String, stderr: String },
    #[error("{program}: {reason}")]
    Io { program: String, reason: String },
}

/// Runs a Slurm command; its stdout, or an error that shows its stderr.
fn slurm_cmd(program: &str, args: &[&str], cwd: &Path) -> Result<String, SlurmError> {
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

/// Submits array indices `indices` of the job and records the submission in the manifest.
fn submit(m: &mut Manifest, indices: &[usize], json: bool) -> CliResult {
    let array = fmt_indices(indices);
    let script = m.script.to_string_lossy().into_owned();
    let out = slurm_cmd("sbatch", &["--parsable", &format!("--array={array}"), &script], &m.dir).map_err(|e| {
        CliError::failed(format!(
            "{e}\nnothing was submitted; the job is written in {} (submit it later with `icl-lab slurm resubmit {}`)",
            m.dir.display(),
            m.dir.display()
        ))
    })?;
    // --parsable prints `JOBID` or `JOBID;CLUSTER`.
    let job_id = out.trim().split(';').next().unwrap_or("").to_string();
    if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(CliError::failed(format!("sbatch answered {:?}, not a job id", out.trim())));
    }
    m.submissions.push(Submission { job_id: job_id.clone(), array: array.clone(), indices: indices.to_vec(), submitted: Utc::now() });
    m.save()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&json!({ "job_id": job_id, "array": array })).expect("JSON serialises"));
    } else {
        println!("submitted job {job_id}: array {array} ({} tasks)", indices.len());
        eprintln!("follow it with: icl-lab slurm status {}", m.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What became of one array task.
#[derive(Debug, Clone, Serialize)]
struct TaskState {
    index: usize,
    runs: Vec<String>,
    job_id: Option<String>,
    /// Slurm's state (squeue, else sacct), or the script's exit status.
    state: String,
    verdict: Verdict,
    bundles: usize,
    log: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    NotSubmitted,
    Active,
    Done,
    Failed,
}

/// Slurm states of a job that is not over yet.
const ACTIVE: &[&str] =
    &["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT"];

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
fn parse_states(out: &str, into: &mut BTreeMap<String, String>) {
    for line in out.lines() {
        if let Some((id, state)) = line.trim().split_once('|') {
            let state = state.split_whitespace().next().unwrap_or("").to_string();
            if !state.is_empty() {
                into.insert(id.to_string(), state);
            }
        }
    }
}

fn task_states(m: &Manifest, slurm: &BTreeMap<String, String>) -> Vec<TaskState> {
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

/// The manifest and every task's state; `strict`: an unreachable controller is an error (else
/// a warning, and states come from the exit-status files alone).
fn survey(dir: &Path, strict: bool) -> Result<(Manifest, Vec<TaskState>), CliError> {
    let m = Manifest::load(dir)?;
    let jobs: BTreeSet<&str> = m.submissions.iter().map(|s| s.job_id.as_str()).collect();
    let slurm = if jobs.is_empty() {
        BTreeMap::new()
    } else {
        match slurm_states(&jobs, &m.dir) {
            Ok(s) => s,
            Err(e) if strict => return Err(CliError::failed(e)),
            Err(e) => {
                eprintln!("warning: no Slurm states ({e}); going by the tasks' exit-status files");
                BTreeMap::new()
            }
        }
    };
    let states = task_states(&m, &slurm);
    Ok((m, states))
}

fn counts(states: &[TaskState]) -> String {
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

pub fn slurm(store: &Option<PathBuf>, cmd: SlurmCmd) -> CliResult {
    match cmd.action {
        SlurmAction::Status(a) => status(a),
        SlurmAction::Collect(a) => collect(store, a),
        SlurmAction::Resubmit(a) => resubmit(a),
    }
}

fn status(args: DirArgs) -> CliResult {
    let (m, states) = survey(&args.dir, true)?;
    if args.json {
        let out = json!({ "job_name": m.job_name, "dir": m.dir, "submissions": m.submissions, "tasks": states });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON serialises"));
        return Ok(ExitCode::SUCCESS);
    }
    let subs: Vec<String> = m.submissions.iter().map(|s| format!("{} ({})", s.job_id, s.array)).collect();
    println!(
        "{} in {}: {} runs; submitted as {}",
        m.job_name,
        m.dir.display(),
        m.runs.len(),
        if subs.is_empty() { "nothing yet".into() } else { subs.join(", ") }
    );
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s| {
            vec![
                s.index.to_string(),
                s.job_id.clone().unwrap_or_else(|| "-".into()),
                s.state.clone(),
                format!("{}/{}", s.bundles, s.runs.len()),
                s.runs.join(" "),
                s.log.as_ref().map_or("-".into(), |l| l.display().to_string()),
            ]
        })
        .collect();
    print!("{}", table(&["TASK", "JOB", "STATE", "BUNDLES", "RUNS", "LOG"], &rows));
    println!("{}", counts(&states));
    Ok(ExitCode::SUCCESS)
}

/// Imports every bundle present (all are read and checked before the first write: a bad one
/// imports nothing), then reports the tasks that failed with their Slurm state and log.
fn collect(store_path: &Option<PathBuf>, args: DirArgs) -> CliResult {
    let (m, states) = survey(&args.dir, false)?;
    let present: Vec<&ManifestRun> = m.runs.iter().filter(|r| r.bundle.exists()).collect();
    for r in &present {
        bundle::read(&r.bundle).map_err(|e| CliError::bad_input(format!("{e}; nothing was imported")))?;
    }
    let store = open_store(store_path)?;
    let (mut added, mut updated, mut unchanged) = (0, 0, 0);
    for r in &present {
        let rep = bundle::import(&store, &r.bundle).map_err(CliError::failed)?;
        (added, updated, unchanged) = (added + rep.added.len(), updated + rep.updated.len(), unchanged + rep.unchanged.len());
    }
    let failed: Vec<&TaskState> = states.iter().filter(|s| s.verdict == Verdict::Failed).collect();
    if args.json {
        let out = json!({
            "bundles": present.len(), "added": added, "updated": updated, "unchanged": unchanged,
            "failed": failed, "summary": counts(&states),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON serialises"));
    } else {
        println!(
            "imported {} of {} bundles into {}: {added} added, {updated} updated, {unchanged} already there",
            present.len(),
            m.runs.len(),
            store.path().display()
        );
        for s in &failed {
            let log = s.log.as_ref().map_or("-".into(), |l| l.display().to_string());
            println!("task {} ({}): {}; log {log}", s.index, s.runs.join(" "), s.state);
        }
        println!("{}", counts(&states));
        if !failed.is_empty() {
            println!("resubmit the failed tasks with: icl-lab slurm resubmit {}", m.dir.display());
        }
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(exit::FAILED) })
}

/// Submits the tasks that failed or never ran (those pending or running are left alone).
fn resubmit(args: DirArgs) -> CliResult {
    let (mut m, states) = survey(&args.dir, true)?;
    let indices: Vec<usize> = states
        .iter()
        .filter(|s| matches!(s.verdict, Verdict::Failed | Verdict::NotSubmitted))
        .map(|s| s.index)
        .collect();
    if indices.is_empty() {
        println!("nothing to resubmit: {}", counts(&states));
        return Ok(ExitCode::SUCCESS);
    }
    for &i in &indices {
        for r in m.runs.iter().filter(|r| r.task == i) {
            eprintln!("task {i}: {} {}", r.name, resubmit_plan(r));
        }
    }
    submit(&mut m, &indices, args.json)
}

/// What a resubmitted task will do with run `r` (the batch script decides the same way: by
/// whether its bundle is there).
fn resubmit_plan(r: &ManifestRun) -> String {
    if !r.bundle.is_file() || r.bundle.metadata().is_ok_and(|m| m.len() == 0) {
        return "trains from its spec (no bundle came back)".into();
    }
    let runs = match bundle::read(&r.bundle) {
        Ok(runs) => runs,
        Err(e) => return format!("will fail: {e} (delete the bundle to train the run from its spec)"),
    };
    let Some(run) = runs.first() else {
        return format!("will fail: {} holds no run (delete it to train the run from its spec)", r.bundle.display());
    };
    let rec = &run.record;
    let (step, total) = (rec.step, rec.total_steps());
    match (&rec.status, &rec.checkpoint) {
        (Status::Done, _) if step >= total => "is done; its bundle is kept".into(),
        (Status::Diverged { step, .. }, _) => {
            format!("diverged at step {step}: not resumed (the task fails again; start a new run with a lower lr)")
        }
        (status, Some(c)) if !run.files.is_empty() => {
            format!("resumes from its bundle ({} at step {step} of {total}, checkpoint at step {})", status.label(), c.step)
        }
        (status, _) => format!("restarts from step 0 (its bundle, {} at step {step}, has no checkpoint)", status.label()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_compress_to_ranges() {
        assert_eq!(fmt_indices(&[0, 1, 2]), "0-2");
        assert_eq!(fmt_indices(&[3, 5]), "3,5");
        assert_eq!(fmt_indices(&[0, 2, 3, 4, 7]), "0,2-4,7");
        assert_eq!(fmt_indices(&[4]), "4");
    }

    #[test]
    fn names_become_safe_file_stems_and_quoted_words() {
        assert_eq!(file_stem("lin-gpt2-s0"), "lin-gpt2-s0");
        assert_eq!(file_stem("a b/c$d"), "a_b_c_d");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert!(sbatch_word("--time", "1:00:00").is_ok());
        assert!(sbatch_word("--partition", "gpu a").is_err());
    }

    #[test]
    fn squeue_and_sacct_lines_parse() {
        let mut m = BTreeMap::new();
        parse_states("12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-3]|PENDING\n\n", &mut m);
        assert_eq!(m.get("12_0").map(String::as_str), Some("COMPLETED"));
        assert_eq!(m.get("12_1").map(String::as_str), Some("CANCELLED"));
        assert_eq!(m.get("12_[2-3]").map(String::as_str), Some("PENDING"));
    }

    fn manifest(dir: &Path, tasks: usize) -> Manifest {
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
            submissions: vec![Submission { job_id: "7".into(), array: "0-4".into(), indices: (0..5).collect(), submitted: Utc::now() }],
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
}

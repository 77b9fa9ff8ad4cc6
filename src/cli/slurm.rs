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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

use super::sweep::Expanded;
use super::{exit, open_store, CliError, CliResult};
use crate::report::runs::table;
use crate::runtime::slurm::{
    self, counts, slurm_cmd, Manifest, ManifestRun, SlurmError, Submission, TaskState, Verdict, FORMAT, MANIFEST, SCRIPT, VERSION,
};
use crate::store::{bundle, Status};

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
pub fn write_job(
    store_path: &Option<PathBuf>,
    dir: &Path,
    args: &SlurmArgs,
    expanded: &Expanded,
    tags: &BTreeSet<String>,
    json: bool,
) -> CliResult {
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
    remember_job(store_path, &dir);
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

/// Puts the job on the store's list of Slurm jobs, which the notebook's Queue view follows. A
/// store that cannot take it only costs that view (a warning says so).
fn remember_job(store_path: &Option<PathBuf>, dir: &Path) {
    let root = store_path.clone().unwrap_or_else(crate::store::default_home);
    // The list goes into a store directory (a list alone would make a new directory foreign
    // to the store): create the store if there is none; one held by a notebook is there.
    let result = match crate::store::SledStore::open(&root) {
        Ok(_) | Err(crate::store::StoreError::InUse { .. }) => slurm::remember(&root, dir).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("warning: the notebook's Queue view will not show this job ({}: {e})", root.display());
    }
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

impl From<SlurmError> for CliError {
    fn from(e: SlurmError) -> Self {
        if e.is_bad_dir() {
            CliError::bad_input(e)
        } else {
            CliError::failed(e)
        }
    }
}

/// The manifest and every task's state; `strict`: an unreachable controller is an error (else
/// a warning, and states come from the exit-status files alone).
fn survey(dir: &Path, strict: bool) -> Result<(Manifest, Vec<TaskState>), CliError> {
    let s = slurm::survey(dir)?;
    match s.slurm_error {
        Some(e) if strict => return Err(CliError::failed(e)),
        Some(e) => eprintln!("warning: no Slurm states ({e}); going by the tasks' exit-status files"),
        None => {}
    }
    Ok((s.manifest, s.tasks))
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
    let store = open_store(store_path)?;
    let c = slurm::collect(&store, &m).map_err(|e| match e {
        bundle::BundleError::Store(e) => CliError::from(e),
        e => CliError::bad_input(format!("{e}; nothing was imported")),
    })?;
    let (added, updated, unchanged) = (c.added, c.updated, c.unchanged);
    let failed: Vec<&TaskState> = states.iter().filter(|s| s.verdict == Verdict::Failed).collect();
    if args.json {
        let out = json!({
            "bundles": c.bundles, "added": added, "updated": updated, "unchanged": unchanged,
            "failed": failed, "summary": counts(&states),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON serialises"));
    } else {
        println!(
            "imported {} of {} bundles into {}: {added} added, {updated} updated, {unchanged} already there",
            c.bundles,
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
}

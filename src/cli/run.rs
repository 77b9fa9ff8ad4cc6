//! `icl-lab run FILE` and `icl-lab resume ID`: train one run in the foreground, through the
//! same worker pool and store writer the notebook uses.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{exit, open_store, CliError, CliResult};
use crate::report;
use crate::runtime::{self, Device, Job, Pool, PoolEvent, StopReason};
use crate::spec::{DeviceSpec, ExperimentSpec};
use crate::store::bundle::{self, BundleCheckpoints, BundleError};
use crate::store::{self, NewRun, RunId, RunRecord, RunStore, SledStore, Status, Writer};
use crate::train::{RunSummary, TrainEvent};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Experiment file (TOML), e.g. experiments/quick/linear_regression.toml.
    pub file: PathBuf,
    /// auto (CUDA if present, else CPU), cpu, cuda or cuda:N; overrides the file's `device`.
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Override `train.steps`.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Override `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Tag the run (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Do not record the run in the store (no checkpoints either).
    #[arg(long, conflicts_with = "bundle_out")]
    pub no_store: bool,
    /// Print the result as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bundle: BundleOutArgs,
    /// Print `flushed run=ID step=N` on stderr each time metrics become durable (for tests).
    #[arg(long, hide = true)]
    pub ack_flushes: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to continue: its id in the store (see `icl-lab ls status:interrupted`), or a
    /// bundle file holding one run (imported first, idempotently; how a Slurm task resumes).
    #[arg(value_name = "ID|BUNDLE")]
    pub run: ResumeTarget,
    /// Train to this many steps in total (to extend a finished run).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Run it on another device than before.
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bundle: BundleOutArgs,
    #[arg(long, hide = true)]
    pub ack_flushes: bool,
}

/// `--bundle-out` and `--bundle-checkpoints`, shared by `run` and `resume`.
#[derive(Debug, Args)]
pub struct BundleOutArgs {
    /// After the run ends (whatever its status), write it as a bundle to PATH for `icl-lab
    /// import` (how Slurm array tasks send their runs back); `resume` may name the bundle it
    /// resumed from.
    #[arg(long, value_name = "PATH")]
    pub bundle_out: Option<PathBuf>,
    /// Which runs the bundle carries a checkpoint for: all, or unfinished only (a finished
    /// run's bundle is then a few KB instead of its weights and optimiser state).
    #[arg(long, value_name = "WHICH", default_value = "all", requires = "bundle_out")]
    pub bundle_checkpoints: BundleCheckpoints,
}

impl BundleOutArgs {
    fn target(&self) -> Option<(&Path, BundleCheckpoints)> {
        self.bundle_out.as_deref().map(|p| (p, self.bundle_checkpoints))
    }

    /// Makes the bundle's folder now, so that a destination that cannot be written fails
    /// before the run trains rather than after.
    fn prepare(&self) -> Result<(), CliError> {
        self.bundle_out.as_deref().map_or(Ok(()), bundle_folder)
    }
}

/// Creates the folder a bundle at `path` goes into.
fn bundle_folder(path: &Path) -> Result<(), CliError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| CliError::failed(format!("--bundle-out {}: cannot create its folder {}: {e}", path.display(), dir.display()))),
        None => Ok(()),
    }
}

/// What `icl-lab resume` continues: digits are a run id, anything else a bundle's path.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumeTarget {
    Id(RunId),
    Bundle(PathBuf),
}

impl std::str::FromStr for ResumeTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("give a run id or a bundle file".into());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(ResumeTarget::Id).map_err(|_| format!("run id {s} is too large"));
        }
        Ok(ResumeTarget::Bundle(PathBuf::from(s)))
    }
}

pub fn run(store_path: &Option<PathBuf>, args: RunArgs) -> CliResult {
    let mut spec = ExperimentSpec::load(&args.file).map_err(CliError::bad_input)?;
    if let Some(steps) = args.steps {
        spec.train.steps = steps;
    }
    if let Some(seed) = args.seed {
        spec.seed = seed;
    }
    if let Some(device) = args.device {
        spec.device = device;
    }
    spec.validate().map_err(CliError::bad_input)?;
    let device = resolve_device(spec.device)?;
    args.bundle.prepare()?;
    if args.no_store {
        let job = Job { run: 0, uid: String::new(), spec: spec.clone(), resume: None, train_s: 0.0 };
        return execute(None, job, device, args.json, false, None);
    }
    let store = Arc::new(open_store(store_path)?);
    let dir = args.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let rec = store.create_run(NewRun {
        spec: spec.clone(),
        git_commit: store::git_commit(dir),
        tags: args.tags.into_iter().collect(),
    })?;
    let job = Job { run: rec.id, uid: rec.uid.clone(), spec, resume: None, train_s: 0.0 };
    let bundle = args.bundle.target();
    execute(Some(store), job, device, args.json, args.ack_flushes, bundle)
}

pub fn resume(store_path: &Option<PathBuf>, args: ResumeArgs) -> CliResult {
    args.bundle.prepare()?;
    let store = Arc::new(open_store(store_path)?);
    let (id, from_bundle) = match &args.run {
        ResumeTarget::Id(id) => (*id, None),
        ResumeTarget::Bundle(path) => (import_one(&store, path)?, Some(path.as_path())),
    };
    let mut rec = store.get(id)?;
    let mut spec = rec.spec.clone();
    let from = rec.checkpoint.as_ref().map_or(0, |c| c.step);
    if let Some(steps) = args.steps {
        if steps <= from {
            return Err(CliError::bad_input(format!(
                "--steps {steps}: run {} continues from its checkpoint at step {from}; ask for more steps",
                rec.id
            )));
        }
        spec.train.steps = steps;
    }
    if let Some(d) = args.device {
        spec.device = d;
    }
    spec.validate().map_err(CliError::bad_input)?;
    // From a bundle the run is re-exported whatever happens here (a Slurm task's bundle must
    // come back even when there was nothing to train).
    let re_export = |why: CliResult| -> CliResult {
        if let (Some(_), Some((out, checkpoints))) = (from_bundle, args.bundle.target()) {
            write_bundle(&store, id, out, checkpoints)?;
        }
        why
    };
    match &rec.status {
        Status::Running | Status::Queued => {
            return Err(CliError::failed(format!("run {} is {} (pid {:?})", rec.id, rec.status.label(), rec.pid)))
        }
        Status::Diverged { step, .. } => {
            return re_export(Err(CliError::bad_input(format!(
                "run {} diverged at step {step}; start a new run with a lower lr instead",
                rec.id
            ))))
        }
        Status::Done if spec.train.steps <= rec.step && from_bundle.is_some() => {
            eprintln!("run {} is already done ({} steps): nothing to train", rec.id, rec.step);
            if args.json {
                let out = serde_json::json!({ "id": rec.id, "status": rec.status, "steps": rec.step, "trained": false });
                println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialise"));
            }
            return re_export(Ok(ExitCode::SUCCESS));
        }
        Status::Done if spec.train.steps <= rec.step => {
            return Err(CliError::bad_input(format!(
                "run {} is done ({} steps); pass --steps N with N > {} to train it further",
                rec.id, rec.step, rec.step
            )))
        }
        _ => {}
    }
    match &rec.checkpoint {
        None => eprintln!("note: run {} has no checkpoint; it starts again from step 0", rec.id),
        Some(c) => eprintln!("run {} continues from its checkpoint at step {} of {}", rec.id, c.step, spec.train.steps),
    }
    let device = resolve_device(spec.device)?;
    if spec != rec.spec {
        let new_spec = spec.clone();
        rec = store.update(rec.id, &mut |r| r.spec = new_spec.clone())?;
    }
    let job = Job { run: rec.id, uid: rec.uid.clone(), spec, resume: rec.checkpoint.clone(), train_s: rec.train_s };
    let bundle = args.bundle.target();
    execute(Some(store), job, device, args.json, args.ack_flushes, bundle)
}

/// Imports the one run of the bundle at `path` (idempotently: a run already here is matched
/// by its uid) and returns its id here.
fn import_one(store: &SledStore, path: &Path) -> Result<RunId, CliError> {
    let bad = |e: BundleError| match e {
        BundleError::Store(e) => CliError::from(e),
        e => CliError::bad_input(e),
    };
    if !path.exists() {
        return Err(CliError::bad_input(format!(
            "{}: no such bundle file (resume takes a run id or a bundle file)",
            path.display()
        )));
    }
    let runs = bundle::read(path).map_err(bad)?;
    if runs.len() != 1 {
        return Err(CliError::bad_input(format!(
            "{}: holds {} runs; resume takes a bundle of one run (`icl-lab import` it, then `icl-lab resume ID`)",
            path.display(),
            runs.len()
        )));
    }
    let from = runs[0].record.id;
    let report = bundle::merge(store, runs, path).map_err(bad)?;
    let id = report.ids_here().first().copied().ok_or_else(|| CliError::failed(format!("{}: nothing imported", path.display())))?;
    let what = if !report.added.is_empty() {
        "imported as"
    } else if !report.updated.is_empty() {
        "updates"
    } else {
        "already here (as far along or further) as"
    };
    eprintln!("{}: run {from} {what} run {id}", path.display());
    Ok(id)
}

fn resolve_device(spec: DeviceSpec) -> Result<Device, CliError> {
    let (device, fallback) = runtime::resolve(spec).map_err(CliError::bad_input)?;
    if let Some(why) = fallback {
        eprintln!("note: training on the CPU ({why})");
    }
    Ok(device)
}

/// Ctrl-C calls `stop` (runs end interrupted, resumable from their checkpoints); a second
/// Ctrl-C while stopping kills the process the usual way.
pub(super) fn on_ctrl_c(stop: impl Fn() + Send + 'static) {
    let mut stopping = false;
    let _ = ctrlc::set_handler(move || {
        if stopping {
            std::process::exit(exit::INTERRUPTED as i32);
        }
        stopping = true;
        eprintln!("\nstopping after the current step (Ctrl-C again to kill)");
        stop();
    });
}

/// Writes run `id` as a bundle at `path` (via a temporary file, renamed at the end).
fn write_bundle(store: &SledStore, id: RunId, path: &Path, checkpoints: BundleCheckpoints) -> Result<(), CliError> {
    bundle_folder(path)?;
    store::bundle::export_with(store, &[id], path, checkpoints).map_err(CliError::failed)?;
    eprintln!("run {id} written to {}", path.display());
    Ok(())
}

/// Runs one job on a one-slot pool, with a progress bar, and prints the result; with
/// `bundle_out`, writes the run there at the end, whatever its status.
fn execute(
    store: Option<Arc<SledStore>>,
    job: Job,
    device: Device,
    json: bool,
    ack_flushes: bool,
    bundle_out: Option<(&Path, BundleCheckpoints)>,
) -> CliResult {
    let writer = store.as_ref().map(|s| {
        let ack: Option<store::writer::FlushAck> = ack_flushes.then(|| {
            Box::new(|run, step| eprintln!("flushed run={run} step={step}")) as store::writer::FlushAck
        });
        Writer::spawn(s.clone() as Arc<dyn RunStore>, ack)
    });
    let pool = Arc::new(Pool::new(
        vec![(device, 1)],
        writer.as_ref().map(Writer::sender),
        store.as_ref().map(|s| s.path()),
    ));
    let weak = Arc::downgrade(&pool);
    on_ctrl_c(move || {
        if let Some(pool) = weak.upgrade() {
            pool.stop_all(StopReason::Interrupt);
        }
    });
    let events = pool.subscribe();
    let spec = job.spec.clone();
    let (run_id, start_step) = (job.run, job.resume.as_ref().map_or(0, |c| c.step));
    let progress = Progress::new(&spec, device, start_step);
    if let Some(s) = &store {
        eprintln!("run {run_id} in {}", s.path().display());
    }
    pool.submit(job).map_err(CliError::bad_input)?;
    let (status, summary) = loop {
        match events.recv() {
            Ok(PoolEvent::Train { event, .. }) => progress.event(event),
            Ok(PoolEvent::Finished { status, summary, .. }) => break (status, summary),
            Ok(PoolEvent::Started { .. }) => {}
            Err(_) => break (Status::Failed { reason: "the worker pool stopped".into() }, None),
        }
    };
    progress.finish();
    drop(pool);
    drop(writer); // flushes everything
    let rec = match &store {
        Some(s) => Some(s.get(run_id)?),
        None => None,
    };
    if let (Some(s), Some((path, checkpoints))) = (&store, bundle_out) {
        write_bundle(s, run_id, path, checkpoints)?;
    }
    let Some(summary) = summary else {
        return Err(CliError::failed(format!("run {run_id} {status}")));
    };
    print_result(&spec, device, &summary, rec.as_ref(), start_step, json);
    Ok(match status {
        Status::Done => ExitCode::SUCCESS,
        Status::Interrupted | Status::Cancelled => {
            eprintln!(
                "stopped cleanly after step {} of {} (Ctrl-C){}",
                summary.steps,
                spec.train.steps,
                match (rec, bundle_out) {
                    (Some(r), Some((b, _))) => format!("; continue with: icl-lab resume {} (elsewhere: icl-lab resume {})", r.id, b.display()),
                    (Some(r), None) => format!("; continue with: icl-lab resume {}", r.id),
                    _ => String::new(),
                }
            );
            ExitCode::from(exit::INTERRUPTED)
        }
        other => {
            eprintln!("run {run_id} {other}");
            ExitCode::from(exit::FAILED)
        }
    })
}

/// `resumed_from`: the checkpoint step training continued from (0 for a fresh run).
fn print_result(
    spec: &ExperimentSpec,
    device: Device,
    summary: &RunSummary,
    rec: Option<&RunRecord>,
    resumed_from: usize,
    json: bool,
) {
    if json {
        let mut out = report::run_json(spec, device, summary);
        if let Some(r) = rec {
            out["id"] = r.id.into();
            out["resumed_from"] = resumed_from.into();
            out["status"] = serde_json::to_value(&r.status).expect("status serialises");
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialise"));
    } else {
        print!("{}", report::run_text(spec, device, summary));
    }
}

/// The progress bar on a terminal; a line per evaluation when stderr is a log file.
struct Progress {
    bar: Option<ProgressBar>,
    /// Without a terminal: print a step line each time this many more steps are done.
    line_every: usize,
    last_line: std::cell::Cell<usize>,
}

impl Progress {
    fn new(spec: &ExperimentSpec, device: Device, start_step: usize) -> Self {
        let interactive = std::io::stderr().is_terminal();
        eprintln!(
            "{}: {} x {} on {device}, {} steps",
            spec.name,
            spec.task.kind(),
            spec.model.arch(),
            spec.train.steps
        );
        let bar = interactive.then(|| {
            let bar = ProgressBar::new(spec.train.steps as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {pos}/{len} {msg} {per_sec:.dim} ETA {eta}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.set_position(start_step as u64);
            bar.reset_eta();
            bar.set_message("starting");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, line_every: (spec.train.steps / 10).max(1), last_line: start_step.into() }
    }

    fn event(&self, ev: TrainEvent) {
        match (&self.bar, ev) {
            (_, TrainEvent::Started { stats, setup_s, .. }) => {
                let line = format!(
                    "model: {} parameters, {:.2} MFLOPs/token; ready in {setup_s:.1}s",
                    stats.params,
                    stats.flops_per_token / 1e6
                );
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
            (Some(bar), TrainEvent::Progress { step }) => bar.set_position(step as u64),
            (Some(bar), TrainEvent::Step(m)) => {
                bar.set_message(format!("loss {:.4} | {} pts, {} dims", m.loss, m.n_points, m.n_dims));
            }
            (None, TrainEvent::Step(m)) if m.step >= self.last_line.get() + self.line_every => {
                self.last_line.set(m.step);
                eprintln!(
                    "step {}: loss {:.4}, {:.1} steps/s, {} pts, {} dims",
                    m.step, m.loss, m.steps_per_s, m.n_points, m.n_dims
                );
            }
            (bar, TrainEvent::Eval(c)) => {
                let best = match c.best_baseline() {
                    Some((name, v)) => format!(" (best baseline {name} {v:.4})"),
                    None => String::new(),
                };
                let line = format!(
                    "eval @ step {} on {} examples: {} {:.4}{best}",
                    c.step,
                    c.n_points,
                    if c.metric.is_empty() { "error" } else { &c.metric },
                    c.final_error().unwrap_or(f32::NAN),
                );
                match bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
            _ => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

//! `icl-lab sweep FILE...`: expand sweep files into runs and train them all headless on this
//! machine's devices (the worker pool, N slots per device), or write them as a Slurm array job
//! (`--slurm DIR`, see `slurm.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::run::on_ctrl_c;
use super::{exit, open_store, slurm, CliError, CliResult};
use crate::report::runs::{fmt_opt, table};
use crate::runtime::device::{self, DeviceList};
use crate::runtime::lab::Lab;
use crate::runtime::{Pool, PoolEvent, StopReason};
use crate::spec::sweep::{scaled, SweepSpec};
use crate::spec::{ExperimentSpec, SpecError};
use crate::store::{RunId, Status};

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep files ([[models]] x seeds) or plain experiment files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Compress every run for a reduced budget: steps, evaluation and checkpoint intervals and
    /// the curriculum's intervals times F (0 < F <= 1).
    #[arg(long, value_name = "F")]
    pub scale: Option<f64>,
    /// Train only on these devices, e.g. cuda:0,cuda:1 (default: every GPU, else the CPU).
    /// A device listed twice gets two independent groups of slots.
    #[arg(long, value_name = "LIST", conflicts_with = "slurm")]
    pub devices: Option<DeviceList>,
    /// Runs at a time per device (default: 4 per GPU, fewer when the host has under 3 cores
    /// per slot; 1 on the CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64), conflicts_with = "slurm")]
    pub slots_per_device: Option<u32>,
    /// Train up to N runs of one model that differ only in seed as one stacked model per slot
    /// (one forward and backward a step for all of them: on a GPU, several runs for little more
    /// than the cost of one; `icl-lab bench members`). Default: 1, or `ICL_LAB_MEMBERS`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64), conflicts_with = "slurm")]
    pub members: Option<u32>,
    /// Tag every run (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// List the runs and exit: nothing is recorded, trained or written.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the results (or with --dry-run the runs) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
}

/// The runs of some sweep files, expanded, scaled and checked.
pub struct Expanded {
    /// The sweeps' names, in file order.
    pub names: Vec<String>,
    pub specs: Vec<ExperimentSpec>,
}

/// Expands every file (all problems of all files at once), applies `scale`, and refuses two
/// runs of the same name.
pub fn expand(files: &[PathBuf], scale: Option<f64>) -> Result<Expanded, CliError> {
    let mut problems = Vec::new();
    let mut out = Expanded { names: Vec::new(), specs: Vec::new() };
    let mut from: BTreeMap<String, &Path> = BTreeMap::new();
    for file in files {
        let result = SweepSpec::load(file).and_then(|s| Ok((s.name.clone(), s.expand()?)));
        let (name, specs) = match result {
            Ok(x) => x,
            Err(errs) => {
                // Parse and read errors name the file already; validation errors do not.
                problems.extend(errs.0.iter().map(|e| match e {
                    SpecError::Invalid { .. } => format!("{}: {e}", file.display()),
                    _ => e.to_string(),
                }));
                continue;
            }
        };
        out.names.push(name);
        for spec in specs {
            let spec = match scale {
                Some(f) => scaled(&spec, f).map_err(CliError::bad_input)?,
                None => spec,
            };
            if let Some(first) = from.insert(spec.name.clone(), file) {
                problems.push(format!(
                    "{}: run name {:?} is also a run of {}; rename one sweep",
                    file.display(),
                    spec.name,
                    first.display()
                ));
            }
            out.specs.push(spec);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(CliError::bad_input(problems.join("\n")))
    }
}

/// Tags are non-empty words without spaces or commas (they are filter terms).
fn check_tags(tags: &[String]) -> Result<BTreeSet<String>, CliError> {
    match tags.iter().find(|t| t.is_empty() || t.contains([',', ' '])) {
        Some(bad) => Err(CliError::bad_input(format!("bad tag {bad:?}: tags are non-empty, without spaces or commas"))),
        None => Ok(tags.iter().cloned().collect()),
    }
}

pub fn sweep(store_path: &Option<PathBuf>, args: SweepArgs) -> CliResult {
    let tags = check_tags(&args.tags)?;
    let expanded = expand(&args.files, args.scale)?;
    if args.dry_run {
        print_plan(&expanded.specs, args.json);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = &args.slurm.slurm {
        return slurm::write_job(store_path, dir, &args.slurm, &expanded, &tags, args.json);
    }
    let slots_per = args.slots_per_device.map(|n| n as usize);
    let slots = device::slot_groups(
        args.devices.as_ref().map(|d| d.0.as_slice()),
        slots_per,
        slots_per.unwrap_or(device::DEFAULT_CPU_SLOTS),
    )
    .map_err(CliError::bad_input)?;
    if let Some(s) = expanded.specs.iter().find(|s| !Pool::serves(&slots, s.device)) {
        return Err(CliError::bad_input(format!(
            "run {:?} asks for device {}, but the devices here are {}",
            s.name,
            s.device,
            Pool::describe(&slots)
        )));
    }
    run_here(store_path, expanded.specs, slots, args.members.map(|n| n as usize), &tags, &args.files, args.json)
}

fn print_plan(specs: &[ExperimentSpec], json: bool) {
    if json {
        let runs: Vec<_> = specs.iter().map(|s| serde_json::to_value(s).expect("specs serialise")).collect();
        println!("{}", serde_json::to_string_pretty(&runs).expect("JSON values serialise"));
        return;
    }
    let rows: Vec<Vec<String>> = specs
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.task.kind().into(),
                s.model.arch().into(),
                s.seed.to_string(),
                s.device.to_string(),
                s.train.steps.to_string(),
            ]
        })
        .collect();
    print!("{}", table(&["NAME", "TASK", "ARCH", "SEED", "DEVICE", "STEPS"], &rows));
    println!("{} run{} (dry run: nothing recorded)", specs.len(), if specs.len() == 1 { "" } else { "s" });
}

/// One finished run, as printed.
struct Finished {
    id: RunId,
    name: String,
    device: Option<String>,
    status: Status,
    final_error: Option<f32>,
    steps: usize,
    /// Steps over training seconds (start-up excluded, the first step's compilation included).
    steps_per_s: Option<f64>,
    /// The rate over the last logging window: the steady state, without the first steps.
    steady_steps_per_s: Option<f64>,
}

/// Records the runs as queued and trains them on the pool; a line per run as it finishes.
fn run_here(
    store_path: &Option<PathBuf>,
    specs: Vec<ExperimentSpec>,
    slots: Vec<(device::Device, usize)>,
    members: Option<usize>,
    tags: &BTreeSet<String>,
    files: &[PathBuf],
    json: bool,
) -> CliResult {
    let store = open_store(store_path)?;
    let store_dir = store.path();
    let lab = Arc::new(Lab::open(store, slots.clone()));
    if let Some(n) = members {
        lab.set_members(n);
    }
    let events = lab.events().ok_or_else(|| CliError::failed("the notebook has no worker pool"))?;
    let weak = Arc::downgrade(&lab);
    on_ctrl_c(move || {
        if let Some(lab) = weak.upgrade() {
            lab.stop_all(StopReason::Interrupt);
        }
    });
    let git_dir = files.first().and_then(|f| f.parent()).filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let started = Instant::now();
    let ids = lab.launch_tagged(specs.clone(), tags, git_dir).map_err(CliError::failed)?;
    let names: BTreeMap<RunId, String> = ids.iter().copied().zip(specs.iter().map(|s| s.name.clone())).collect();
    eprintln!(
        "queued {} run{} (ids {}-{}) in {} on {}",
        ids.len(),
        if ids.len() == 1 { "" } else { "s" },
        ids.first().copied().unwrap_or(0),
        ids.last().copied().unwrap_or(0),
        store_dir.display(),
        Pool::describe(&slots)
    );
    let mut devices: BTreeMap<RunId, String> = BTreeMap::new();
    let mut done: Vec<Finished> = Vec::new();
    while done.len() < ids.len() {
        let Ok(ev) = events.recv() else { break };
        match ev {
            PoolEvent::Started { run, device } => {
                eprintln!("start  #{run} {} on {device}", names.get(&run).map_or("", String::as_str));
                devices.insert(run, device.to_string());
            }
            PoolEvent::Finished { run, status, summary } => {
                let f = Finished {
                    id: run,
                    name: names.get(&run).cloned().unwrap_or_default(),
                    device: devices.get(&run).cloned(),
                    final_error: summary.as_ref().and_then(|s| s.final_eval.as_ref()).and_then(|c| c.model.mean.last().copied()),
                    steps: summary.as_ref().map_or(0, |s| s.steps),
                    steps_per_s: summary.as_ref().and_then(|s| {
                        let t = s.wall_s - s.setup_s;
                        (t > 0.0).then(|| s.steps as f64 / t)
                    }),
                    steady_steps_per_s: summary.as_ref().and_then(|s| s.last.as_ref()).map(|m| m.steps_per_s).filter(|&r| r > 0.0),
                    status,
                };
                eprintln!(
                    "finish #{} {} {}: final error {}, {} steps/s",
                    f.id,
                    f.name,
                    f.status,
                    fmt_opt(f.final_error),
                    f.steps_per_s.map_or("-".into(), |v| format!("{v:.1}"))
                );
                done.push(f);
            }
            PoolEvent::Train { .. } => {}
        }
    }
    let wall = started.elapsed().as_secs_f64();
    drop(events);
    drop(lab); // joins the workers, flushes the store
    summarize(&done, ids.len(), wall, json)
}

fn summarize(done: &[Finished], total: usize, wall_s: f64, json: bool) -> CliResult {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in done {
        *counts.entry(f.status.label()).or_default() += 1;
    }
    let steps: usize = done.iter().map(|f| f.steps).sum();
    if json {
        let runs: Vec<_> = done
            .iter()
            .map(|f| {
                json!({
                    "id": f.id, "name": f.name, "device": f.device, "status": f.status,
                    "final_error": f.final_error, "steps": f.steps, "steps_per_s": f.steps_per_s,
                    "steady_steps_per_s": f.steady_steps_per_s,
                })
            })
            .collect();
        let out = json!({ "runs": runs, "counts": counts, "wall_s": wall_s, "steps_per_s": steps as f64 / wall_s.max(1e-9) });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialise"));
    } else {
        let rows: Vec<Vec<String>> = done
            .iter()
            .map(|f| {
                vec![
                    f.id.to_string(),
                    f.name.clone(),
                    f.device.clone().unwrap_or_else(|| "-".into()),
                    f.status.label().into(),
                    fmt_opt(f.final_error),
                    f.steps_per_s.map_or("-".into(), |v| format!("{v:.1}")),
                ]
            })
            .collect();
        print!("{}", table(&["ID", "NAME", "DEVICE", "STATUS", "FINAL ERR", "STEPS/S"], &rows));
        let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "{total} runs: {}; {wall_s:.1} s, {:.1} steps/s in all",
            counts.join(", "),
            steps as f64 / wall_s.max(1e-9)
        );
    }
    let all_done = done.len() == total && done.iter().all(|f| f.status == Status::Done);
    let interrupted = done.iter().any(|f| matches!(f.status, Status::Interrupted | Status::Cancelled));
    Ok(if all_done {
        ExitCode::SUCCESS
    } else if interrupted {
        eprintln!("stopped; continue interrupted runs with: icl-lab resume ID");
        ExitCode::from(exit::INTERRUPTED)
    } else {
        ExitCode::from(exit::FAILED)
    })
}

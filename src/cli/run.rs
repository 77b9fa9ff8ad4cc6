//! `icl-lab run FILE`: train one experiment in the foreground.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::exit;
use crate::report;
use crate::runtime::{self, Device};
use crate::spec::{DeviceSpec, ExperimentSpec};
use crate::train::{Outcome, TrainEvent};

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
    /// Print the result as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunArgs) -> ExitCode {
    let mut spec = match ExperimentSpec::load(&args.file) {
        Ok(s) => s,
        Err(e) => return bad_input(&e.to_string()),
    };
    if let Some(steps) = args.steps {
        spec.train.steps = steps;
    }
    if let Some(seed) = args.seed {
        spec.seed = seed;
    }
    if let Some(device) = args.device {
        spec.device = device;
    }
    if let Err(e) = spec.validate() {
        return bad_input(&e.to_string());
    }
    let device = match runtime::resolve(spec.device) {
        Ok((device, fallback)) => {
            if let Some(why) = fallback {
                eprintln!("note: training on the CPU ({why})");
            }
            device
        }
        Err(e) => return bad_input(&e.to_string()),
    };

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // A second Ctrl-C while stopping kills the process the usual way.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(exit::INTERRUPTED as i32);
            }
            eprintln!("\nstopping after the current step (Ctrl-C again to kill)");
        });
    }

    let progress = Progress::new(&spec, device);
    let mut on_event = |ev: TrainEvent| progress.event(ev);
    let summary = match runtime::train_on(device, &spec, &cancel, &mut on_event) {
        Ok(s) => s,
        Err(e) => {
            progress.finish();
            eprintln!("error: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    progress.finish();

    if args.json {
        let out = report::run_json(&spec, device, &summary);
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialise"));
    } else {
        print!("{}", report::run_text(&spec, device, &summary));
    }
    match summary.outcome {
        Outcome::Done => ExitCode::SUCCESS,
        Outcome::Interrupted => {
            eprintln!("stopped cleanly after step {} of {} (Ctrl-C)", summary.steps, spec.train.steps);
            ExitCode::from(exit::INTERRUPTED)
        }
        Outcome::Diverged { loss } => {
            eprintln!("diverged at step {}: loss = {loss}", summary.steps);
            ExitCode::from(exit::FAILED)
        }
    }
}

fn bad_input(msg: &str) -> ExitCode {
    for line in msg.lines() {
        eprintln!("error: {line}");
    }
    ExitCode::from(exit::BAD_INPUT)
}

/// The progress bar on a terminal; a line per evaluation when stderr is a log file.
struct Progress {
    bar: Option<ProgressBar>,
    /// Without a terminal: print a step line each time this many more steps are done.
    line_every: usize,
    last_line: std::cell::Cell<usize>,
}

impl Progress {
    fn new(spec: &ExperimentSpec, device: Device) -> Self {
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
            bar.set_message("starting");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, line_every: (spec.train.steps / 10).max(1), last_line: 0.into() }
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
                let ls = c.baseline("least_squares").map_or(f32::NAN, |b| *b.mean.last().unwrap_or(&f32::NAN));
                let line = format!(
                    "eval @ step {}: error at {} examples {:.4} (least squares {:.4})",
                    c.step,
                    c.n_points.saturating_sub(1),
                    c.model.mean.last().copied().unwrap_or(f32::NAN),
                    ls
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

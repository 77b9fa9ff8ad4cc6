//! The command line: `icl-lab <command>`. Parsing here, one file per group of commands.

mod bench;
mod bench_adam;
mod bench_attention;
#[cfg(feature = "emulator")]
mod bench_host;
mod bench_matmul;
mod bench_members;
mod bench_conv;
mod bench_norm;
mod bench_baselines;
mod browse;
mod report;
mod run;
mod slurm;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::runtime::device::{self, DeviceList};
use crate::store::{SledStore, StoreError};

/// A terminal lab notebook for in-context-learning research.
#[derive(Debug, Parser)]
#[command(name = "icl-lab", version, about, long_about = None)]
pub struct Cli {
    /// The store directory (default: $ICL_LAB_HOME, else ~/.local/share/icl-lab).
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// TUI: browse only (a store held by another process is opened as a snapshot copy).
    #[arg(long)]
    pub read_only: bool,
    /// TUI: capture the mouse (text selection then needs Shift); toggle with M.
    #[arg(long)]
    pub mouse: bool,
    /// TUI: plain chart markers instead of Braille.
    #[arg(long)]
    pub ascii: bool,
    /// TUI: at most this many redraws per second (low for slow SSH links).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// TUI: worker slots per GPU (default: 4, fewer when the host has under 3 cores per slot).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub gpu_slots: Option<u32>,
    /// TUI: train only on these devices, e.g. cuda:0,cuda:1 (default: every GPU, else the
    /// CPU). A device listed twice gets two independent groups of slots.
    #[arg(long, value_name = "LIST")]
    pub devices: Option<DeviceList>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one experiment, record it in the store and print its ICL curve.
    Run(run::RunArgs),
    /// Train every run of sweep files here (all devices, N slots each), or write them as a
    /// Slurm array job (--slurm DIR).
    Sweep(sweep::SweepArgs),
    /// Follow a Slurm array job written by `sweep --slurm`: status, collect, resubmit.
    Slurm(slurm::SlurmCmd),
    /// Continue an interrupted run from its last checkpoint (a run here, or a bundle's run).
    Resume(run::ResumeArgs),
    /// List runs (filter, sort).
    Ls(browse::LsArgs),
    /// Show one run: record, spec, loss and latest ICL curve.
    Show(browse::ShowArgs),
    /// Compare runs: config keys that differ, final metrics side by side.
    Compare(browse::CompareArgs),
    /// Export runs as JSON, CSV or Markdown, or as a bundle for another store.
    Export(browse::ExportArgs),
    /// Merge run bundles into the store (idempotent).
    Import(browse::ImportArgs),
    /// Add or remove tags.
    Tag(browse::TagArgs),
    /// Add to (or replace) a run's note.
    Note(browse::NoteArgs),
    /// Delete runs with their metrics, curves and checkpoints.
    Rm(browse::RmArgs),
    /// The paper's task x architecture table from the store (marks by a stated rule, mean ±
    /// std over seeds, the paper's marks beside), with ICL curve plots as SVG.
    Report(report::ReportArgs),
    /// Benchmarks: the store and TUI on the CPU; the fused scan, the model matrix and
    /// concurrent runs on a GPU (`bench --help` lists them).
    Bench(bench::BenchArgs),
    /// Internal: train one run for a worker pool slot of a parent icl-lab (`runtime::child`).
    #[command(hide = true)]
    SlotWorker,
}

/// Exit codes: 0 ok, 1 the run failed, 2 bad input (spec, flags), 130 interrupted by Ctrl-C.
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const INTERRUPTED: u8 = 130;
}

/// An error at the edge: the message and the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn bad_input(message: impl ToString) -> Self {
        CliError { code: exit::BAD_INPUT, message: message.to_string() }
    }
    pub fn failed(message: impl ToString) -> Self {
        CliError { code: exit::FAILED, message: message.to_string() }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IsFile { .. }
            | StoreError::Foreign { .. }
            | StoreError::BadMarker { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::NoRun(_) => CliError::bad_input(e),
            _ => CliError::failed(e),
        }
    }
}

pub type CliResult = Result<ExitCode, CliError>;

/// Opens the store named by `--store`, `$ICL_LAB_HOME` or the XDG default.
pub fn open_store(path: &Option<PathBuf>) -> Result<SledStore, CliError> {
    let root = path.clone().unwrap_or_else(crate::store::default_home);
    Ok(SledStore::open(&root)?)
}

/// The command line's parser. Every value may look like a negative number, so that `--seed -1`
/// is refused as a bad seed, naming the flag, rather than as an unknown flag `-1`.
pub fn parser() -> clap::Command {
    fn numbers_are_values(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| if arg.get_action().takes_values() { arg.allow_negative_numbers(true) } else { arg })
            .mut_subcommands(numbers_are_values)
    }
    numbers_are_values(Cli::command())
}

fn parse() -> Result<Cli, clap::Error> {
    Cli::from_arg_matches(&parser().try_get_matches()?)
}

pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                let _ = e.print(); // --help, --version
                return ExitCode::SUCCESS;
            }
            // One line, like every other bad-input error; the usage hint adds nothing here.
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad arguments"));
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let store = cli.store;
    if let Ok(exe) = std::env::current_exe() {
        crate::runtime::child::register_worker_program(crate::runtime::child::WorkerCommand::icl_lab(exe));
    }
    let result = match cli.command {
        Some(Command::SlotWorker) => return ExitCode::from(crate::runtime::child::serve()),
        Some(Command::Run(args)) => run::run(&store, args),
        Some(Command::Resume(args)) => run::resume(&store, args),
        Some(Command::Sweep(args)) => sweep::sweep(&store, args),
        Some(Command::Slurm(cmd)) => slurm::slurm(&store, cmd),
        Some(Command::Ls(args)) => browse::ls(&store, args),
        Some(Command::Show(args)) => browse::show(&store, args),
        Some(Command::Compare(args)) => browse::compare(&store, args),
        Some(Command::Export(args)) => browse::export(&store, args),
        Some(Command::Import(args)) => browse::import(&store, args),
        Some(Command::Tag(args)) => browse::tag(&store, args),
        Some(Command::Note(args)) => browse::note(&store, args),
        Some(Command::Rm(args)) => browse::rm(&store, args),
        Some(Command::Report(args)) => report::report(&store, args),
        Some(Command::Bench(args)) => bench::bench(args),
        None => {
            let devices = cli.devices.as_ref().map(|d| d.0.as_slice());
            let slots = if cli.read_only {
                Vec::new()
            } else {
                match device::slot_groups(devices, cli.gpu_slots.map(|n| n as usize), device::DEFAULT_CPU_SLOTS) {
                    Ok(slots) => slots,
                    Err(e) => return report(Err(CliError::bad_input(e))),
                }
            };
            let opts = crate::tui::TuiOptions {
                store: store.clone().unwrap_or_else(crate::store::default_home),
                read_only: cli.read_only,
                mouse: cli.mouse,
                ascii: cli.ascii,
                fps: cli.fps,
                slots,
                experiments: PathBuf::from("experiments"),
            };
            match crate::tui::run(opts) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(crate::tui::TuiError::Store(e)) => Err(e.into()),
                Err(e) => Err(CliError::failed(e)),
            }
        }
    };
    report(result)
}

/// Prints an error, one `error:` line per line of it, and maps it to its exit code.
fn report(result: CliResult) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            for line in e.message.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_from(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::from_arg_matches(&parser().try_get_matches_from(args)?)
    }

    /// A negative number is the value of the flag before it, refused for that flag; before,
    /// clap took `-1` for an unknown flag and never named `--seed`.
    #[test]
    fn a_negative_number_is_a_bad_value_of_its_flag() {
        let e = parse_from(&["icl-lab", "run", "x.toml", "--seed", "-1"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        let text = e.to_string();
        assert!(text.contains("'-1'") && text.contains("--seed"), "{text}");
        let e = parse_from(&["icl-lab", "show", "-5"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
        // Nested subcommands too.
        let e = parse_from(&["icl-lab", "bench", "members", "--steps", "-3"]).unwrap_err();
        assert!(e.to_string().contains("'-3'"), "{e}");
        // A negative float reaches the command, which judges it.
        let cli = parse_from(&["icl-lab", "sweep", "s.toml", "--scale", "-0.5"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Sweep(ref s)) if s.scale == Some(-0.5)));
        // Flags that take no value are untouched, and an unknown flag is still unknown.
        let e = parse_from(&["icl-lab", "run", "x.toml", "-x"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}

//! Commands on the store: ls, show, compare, export, import, tag, note, rm.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::{open_store, CliError, CliResult};
use crate::report::runs as view;
use crate::store::query::{parse_ids, Query, SortKey};
use crate::store::{bundle, RunRecord, RunStore, SledStore};

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Filter terms: task:, arch:, status:, tag:, seed:, or words matched against name/tags.
    pub query: Vec<String>,
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    /// id, status, task, arch, params, step, loss, error, created, name.
    #[arg(long, default_value = "id")]
    pub sort: SortKey,
    /// Reverse the order.
    #[arg(long, short)]
    pub reverse: bool,
    /// Show at most this many runs (after sorting).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub id: u64,
    /// JSON with every metric point and curve.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two or more runs: `3 5`, `3,5`, `7-9`.
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Md,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Series {
    /// One row per run.
    Runs,
    /// Every logged metric point.
    Metrics,
    /// Every evaluation curve, per position and learner.
    Curves,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Runs: `3 5`, `3,5`, `7-9`; none with --all.
    pub ids: Vec<String>,
    /// Every run in the store.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// For CSV: which table.
    #[arg(long, value_enum, default_value = "runs")]
    pub series: Series,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write a run bundle (runs, metrics, curves, latest checkpoints) for `icl-lab import`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["format", "output"])]
    pub bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Bundle files, or directories of `*.bundle` files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Runs: `3`, `3,5`, `7-9`.
    pub ids: String,
    /// Tags to add (or remove with --remove).
    #[arg(required = true)]
    pub tags: Vec<String>,
    #[arg(long, short)]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    pub id: u64,
    /// Text appended as a new line of the note.
    #[arg(required_unless_present = "clear")]
    pub text: Option<String>,
    /// Replace the note instead of appending.
    #[arg(long)]
    pub set: bool,
    /// Remove the note.
    #[arg(long, conflicts_with_all = ["text", "set"])]
    pub clear: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Really delete (without it, only lists what would go).
    #[arg(long, short)]
    pub yes: bool,
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON values serialise"));
}

fn ids(args: &[String]) -> Result<Vec<u64>, CliError> {
    parse_ids(args).map_err(CliError::bad_input)
}

fn records(store: &SledStore, ids: &[u64]) -> Result<Vec<RunRecord>, CliError> {
    ids.iter().map(|&id| store.get(id).map_err(CliError::from)).collect()
}

pub fn ls(store: &Option<PathBuf>, args: LsArgs) -> CliResult {
    let mut text = args.query.join(" ");
    for (field, v) in [("task", &args.task), ("arch", &args.arch), ("status", &args.status), ("tag", &args.tag)] {
        if let Some(v) = v {
            text.push_str(&format!(" {field}:{v}"));
        }
    }
    let query = Query::parse(&text).map_err(CliError::bad_input)?;
    let store = open_store(store)?;
    let mut runs: Vec<RunRecord> = store.list()?.into_iter().filter(|r| query.matches(r)).collect();
    runs.sort_by(|a, b| args.sort.compare(a, b));
    if args.reverse {
        runs.reverse();
    }
    if let Some(n) = args.limit {
        runs.truncate(n);
    }
    if args.json {
        print_json(&serde_json::to_value(&runs).expect("records serialise"));
    } else if runs.is_empty() {
        eprintln!("no runs{}", if query.is_empty() { String::new() } else { format!(" match {text:?}") });
    } else {
        let out = view::runs_table(&runs);
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(store: &Option<PathBuf>, args: ShowArgs) -> CliResult {
    let store = open_store(store)?;
    let rec = store.get(args.id)?;
    let metrics = store.metrics(args.id)?;
    let evals = store.evals(args.id)?;
    if args.json {
        print_json(&json!({ "run": rec, "metrics": metrics, "evals": evals }));
    } else {
        print!("{}", view::run_detail(&rec, &metrics, &evals));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn compare(store: &Option<PathBuf>, args: CompareArgs) -> CliResult {
    let ids = ids(&args.ids)?;
    if ids.len() < 2 {
        return Err(CliError::bad_input("compare needs at least two runs"));
    }
    let store = open_store(store)?;
    let runs: Vec<(RunRecord, Vec<_>)> = ids
        .iter()
        .map(|&id| Ok((store.get(id)?, store.evals(id)?)))
        .collect::<Result<_, CliError>>()?;
    if args.json {
        let recs: Vec<RunRecord> = runs.iter().map(|(r, _)| r.clone()).collect();
        let diff: serde_json::Map<String, serde_json::Value> =
            view::config_diff(&recs).into_iter().map(|(k, v)| (k, json!(v))).collect();
        let finals: Vec<_> = runs
            .iter()
            .map(|(r, e)| {
                let m: serde_json::Map<String, serde_json::Value> =
                    view::final_metrics(r, e).into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                json!({ "id": r.id, "metrics": m })
            })
            .collect();
        print_json(&json!({ "ids": ids, "config_diff": diff, "final": finals }));
    } else {
        print!("{}", view::compare_text(&runs));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(store: &Option<PathBuf>, args: ExportArgs) -> CliResult {
    let store = open_store(store)?;
    let ids: Vec<u64> = if args.all {
        store.list()?.iter().map(|r| r.id).collect()
    } else {
        ids(&args.ids)?
    };
    let runs = records(&store, &ids)?;
    if let Some(path) = &args.bundle {
        let n = bundle::export(&store, &ids, path).map_err(CliError::failed)?;
        eprintln!("wrote {n} runs to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let text = match args.format {
        Format::Json => {
            let docs: Vec<_> = runs
                .iter()
                .map(|r| Ok(json!({ "run": r, "metrics": store.metrics(r.id)?, "evals": store.evals(r.id)? })))
                .collect::<Result<_, CliError>>()?;
            serde_json::to_string_pretty(&docs).expect("JSON values serialise") + "\n"
        }
        Format::Csv => match args.series {
            Series::Runs => view::runs_csv(&runs),
            Series::Metrics => view::metrics_csv(
                &runs.iter().map(|r| Ok((r.clone(), store.metrics(r.id)?))).collect::<Result<Vec<_>, CliError>>()?,
            ),
            Series::Curves => view::curves_csv(
                &runs.iter().map(|r| Ok((r.clone(), store.evals(r.id)?))).collect::<Result<Vec<_>, CliError>>()?,
            ),
        },
        Format::Md => view::runs_markdown(
            &runs.iter().map(|r| Ok((r.clone(), store.evals(r.id)?))).collect::<Result<Vec<_>, CliError>>()?,
        ),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?,
        None => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Bundle files named directly, and `*.bundle` files inside named directories.
fn bundle_files(args: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for p in args {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| CliError::bad_input(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "bundle"))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            return Err(CliError::bad_input(format!("{}: no such file", p.display())));
        }
    }
    Ok(files)
}

pub fn import(store: &Option<PathBuf>, args: ImportArgs) -> CliResult {
    let files = bundle_files(&args.files)?;
    // Check every bundle before the first write: a bad one imports nothing.
    for f in &files {
        bundle::read(f).map_err(CliError::bad_input)?;
    }
    let store = open_store(store)?;
    let mut reports = Vec::new();
    for f in &files {
        let report = bundle::import(&store, f).map_err(CliError::failed)?;
        if !args.json {
            eprintln!(
                "{}: {} added, {} updated, {} already here",
                f.display(),
                report.added.len(),
                report.updated.len(),
                report.unchanged.len()
            );
            for (from, to) in &report.added {
                eprintln!("  run {from} -> {to}");
            }
        }
        reports.push(json!({ "file": f, "report": report }));
    }
    if args.json {
        print_json(&json!(reports));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tag(store: &Option<PathBuf>, args: TagArgs) -> CliResult {
    let ids = ids(std::slice::from_ref(&args.ids))?;
    if let Some(bad) = args.tags.iter().find(|t| t.is_empty() || t.contains([',', ' '])) {
        return Err(CliError::bad_input(format!("bad tag {bad:?}: tags are non-empty, without spaces or commas")));
    }
    let store = open_store(store)?;
    records(&store, &ids)?; // every id exists before any edit
    for id in ids {
        let rec = store.update(id, &mut |r| {
            for t in &args.tags {
                if args.remove {
                    r.tags.remove(t);
                } else {
                    r.tags.insert(t.clone());
                }
            }
        })?;
        println!("{}: {}", rec.id, rec.tags.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    store.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn note(store: &Option<PathBuf>, args: NoteArgs) -> CliResult {
    let store = open_store(store)?;
    let text = args.text.unwrap_or_default();
    store.update(args.id, &mut |r| {
        if args.clear {
            r.note.clear();
        } else if args.set || r.note.is_empty() {
            r.note = text.clone();
        } else {
            r.note = format!("{}\n{}", r.note, text);
        }
    })?;
    store.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn rm(store: &Option<PathBuf>, args: RmArgs) -> CliResult {
    let ids = ids(&args.ids)?;
    let store = open_store(store)?;
    let runs = records(&store, &ids)?;
    if !args.yes {
        eprint!("{}", view::runs_table(&runs));
        return Err(CliError::bad_input(format!("would delete {} runs; pass --yes to delete them", runs.len())));
    }
    for r in &runs {
        store.delete(r.id)?;
    }
    eprintln!("deleted {} runs", runs.len());
    Ok(ExitCode::SUCCESS)
}

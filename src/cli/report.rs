//! `icl-lab report`: the paper's task x architecture table from the store (marks by the stated
//! rule, seed means ± std, the paper's marks beside) and, with `--plots DIR`, the ICL curves of
//! every task as SVG.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{open_store, CliError, CliResult};
use crate::report::matrix::{Cell, Matrix, ARCHS};
use crate::report::plot::{CurvePlot, Series};
use crate::store::{RunId, RunStore, SledStore};
use crate::tasks::baselines::ZERO;
use crate::train::EvalCurve;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only experiment families whose name starts with this (e.g. `reduced-`); a family is a
    /// sweep's name, a plain run's own name.
    #[arg(long, value_name = "PREFIX")]
    pub family: Option<String>,
    /// Also write one SVG of ICL curves per task and family into DIR.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// The table as JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
}

pub fn report(store_path: &Option<PathBuf>, args: ReportArgs) -> CliResult {
    let store = open_store(store_path)?;
    let runs = store.list()?;
    let matrix = Matrix::build(&runs, args.family.as_deref());
    if matrix.cells.is_empty() {
        let scope = args.family.as_deref().map_or(String::new(), |p| format!(" in families starting with {p:?}"));
        return Err(CliError::bad_input(format!("no runs{scope} in {}", store.root().display())));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&matrix.json()).map_err(CliError::failed)?);
    } else {
        print!("{}", matrix.markdown());
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).map_err(|e| CliError::failed(format!("--plots {}: {e}", dir.display())))?;
        for path in write_plots(&store, &matrix, dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One SVG per (family, task): each architecture's final curve averaged over its finished
/// seeds (else its unfinished runs' latest, labelled so), and the baselines of its first run
/// (every seed is scored on the same prompts).
fn write_plots(store: &SledStore, matrix: &Matrix, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut groups: Vec<(&str, &str)> = matrix.cells.values().map(|c| (c.family.as_str(), c.task.as_str())).collect();
    groups.dedup();
    let mut written = Vec::new();
    for (family, task) in groups {
        let cells: Vec<&Cell> = ARCHS
            .iter()
            .filter_map(|a| matrix.cells.get(&(family.to_string(), task.to_string(), a.to_string())))
            .filter(|c| !c.runs.is_empty() || !c.unfinished.is_empty())
            .collect();
        let mut models = Vec::new();
        let mut first: Option<EvalCurve> = None;
        for c in &cells {
            // Finished seeds; a cell with none shows its unfinished runs' latest evaluation.
            let (ids, unfinished): (Vec<RunId>, bool) = if c.runs.is_empty() {
                (c.unfinished.iter().map(|u| u.0).collect(), true)
            } else {
                (c.runs.iter().map(|r| r.0).collect(), false)
            };
            let mut curves = Vec::new();
            for id in ids {
                if let Some(last) = store.evals(id)?.into_iter().max_by_key(|e| e.step) {
                    curves.push(last);
                }
            }
            if let Some(mean) = mean_curve(&curves) {
                let name = if unfinished {
                    let step = curves.iter().map(|e| e.step).max().unwrap_or(0);
                    format!("{} (unfinished, step {step})", c.arch)
                } else {
                    let n = curves.len();
                    format!("{} ({n} seed{})", c.arch, if n == 1 { "" } else { "s" })
                };
                models.push(Series { name, points: mean });
            }
            if first.is_none() {
                first = curves.into_iter().next();
            }
        }
        let Some(first) = first else { continue };
        let baselines: Vec<Series> = first
            .baselines
            .iter()
            .map(|b| Series { name: b.name.clone(), points: indexed(&b.mean) })
            .collect();
        let trivial = first.baseline(ZERO).and_then(|z| z.mean.iter().copied().filter(|v| v.is_finite()).reduce(f32::max));
        let metric = if first.metric.is_empty() { format!("squared error / {}", first.scale) } else { first.metric.clone() };
        let plot = CurvePlot {
            title: format!("{task} ({family}, step {})", first.step),
            y_label: metric,
            models,
            baselines,
            y_max: trivial.map_or(1.5, |t| 1.5 * t),
        };
        let one_task = matrix.cells.values().filter(|c| c.family == family).all(|c| c.task == task);
        let path = dir.join(format!("{}.svg", file_stem(family, task, one_task)));
        plot.write_svg(&path).map_err(CliError::failed)?;
        written.push(path);
    }
    Ok(written)
}

fn indexed(v: &[f32]) -> Vec<(f32, f32)> {
    v.iter().enumerate().map(|(i, &y)| (i as f32, y)).collect()
}

/// Per-position mean over runs of their model curves (positions any run left unscored stay
/// NaN); None when there is none.
fn mean_curve(curves: &[EvalCurve]) -> Option<Vec<(f32, f32)>> {
    let n = curves.iter().map(|c| c.model.mean.len()).min()?;
    Some(
        (0..n)
            .map(|i| {
                let sum: f32 = curves.iter().map(|c| c.model.mean[i]).sum();
                (i as f32, sum / curves.len() as f32)
            })
            .collect(),
    )
}

/// `family.svg`, or `family-task.svg` when the family holds several tasks.
fn file_stem(family: &str, task: &str, one_task: bool) -> String {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect::<String>();
    if one_task { clean(family) } else { format!("{}-{}", clean(family), clean(task)) }
}

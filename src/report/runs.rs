//! Views of stored runs as text: the run table, one run in detail, a comparison, and the
//! CSV/Markdown exports. Shared by the CLI and (as data) the TUI.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::Local;
use serde_json::Value;

use crate::store::RunRecord;
use crate::train::{EvalCurve, StepMetrics};

/// A column of the run table: its title and how to render a record.
pub struct Column {
    pub title: &'static str,
    pub cell: fn(&RunRecord) -> String,
}

pub fn fmt_params(p: Option<usize>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p >= 1_000_000 => format!("{:.2}M", p as f64 / 1e6),
        Some(p) if p >= 1_000 => format!("{:.1}k", p as f64 / 1e3),
        Some(p) => p.to_string(),
    }
}

pub fn fmt_opt(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

pub fn fmt_time(r: &RunRecord) -> String {
    r.created.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string()
}

pub const COLUMNS: &[Column] = &[
    Column { title: "ID", cell: |r| r.id.to_string() },
    Column { title: "STATUS", cell: |r| r.status.label().to_string() },
    Column { title: "TASK", cell: |r| r.task().to_string() },
    Column { title: "ARCH", cell: |r| r.arch().to_string() },
    Column { title: "PARAMS", cell: |r| fmt_params(r.params) },
    Column { title: "STEP", cell: |r| format!("{}/{}", r.step, r.total_steps()) },
    Column { title: "LOSS", cell: |r| fmt_opt(r.last.as_ref().map(|m| m.loss)) },
    Column { title: "FINAL ERR", cell: |r| fmt_opt(r.final_error) },
    Column { title: "TAGS", cell: |r| r.tags.iter().cloned().collect::<Vec<_>>().join(",") },
    Column { title: "CREATED", cell: fmt_time },
    Column { title: "NAME", cell: |r| r.spec.name.clone() },
];

/// Left-aligned text columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        let mut s = String::new();
        for (cell, w) in cells.zip(&widths) {
            if !first {
                s.push_str("  ");
            }
            first = false;
            let _ = write!(s, "{cell:<w$}");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, &mut header.iter().copied());
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

/// The `icl-lab ls` table.
pub fn runs_table(runs: &[RunRecord]) -> String {
    let header: Vec<&str> = COLUMNS.iter().map(|c| c.title).collect();
    let rows: Vec<Vec<String>> = runs.iter().map(|r| COLUMNS.iter().map(|c| (c.cell)(r)).collect()).collect();
    table(&header, &rows)
}

/// `icl-lab show ID`: the record, the spec, the loss history in brief and the latest curve.
pub fn run_detail(r: &RunRecord, metrics: &[StepMetrics], evals: &[EvalCurve]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}  {}  ({})", r.id, r.spec.name, r.status);
    let _ = writeln!(out, "  task {}  arch {}  params {}  seed {}", r.task(), r.arch(), fmt_params(r.params), r.spec.seed);
    let _ = writeln!(
        out,
        "  step {}/{}  device {}  host {}  trained {:.1}s",
        r.step,
        r.total_steps(),
        r.device.as_deref().unwrap_or("-"),
        r.host,
        r.train_s
    );
    let _ = writeln!(out, "  created {}", r.created.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"));
    if let Some(f) = r.finished {
        let _ = writeln!(out, "  finished {}", f.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"));
    }
    if let Some(g) = &r.git_commit {
        let _ = writeln!(out, "  git {g}");
    }
    if let Some(c) = &r.checkpoint {
        let _ = writeln!(out, "  checkpoint at step {} ({})", c.step, c.dir);
    }
    if let Some(o) = &r.origin {
        let _ = writeln!(out, "  imported from {o}");
    }
    if !r.tags.is_empty() {
        let _ = writeln!(out, "  tags {}", r.tags.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    if !r.note.is_empty() {
        let _ = writeln!(out, "  note:");
        for line in r.note.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(out, "\nspec:");
    for line in r.spec.to_toml().lines() {
        let _ = writeln!(out, "  {line}");
    }
    if let (Some(first), Some(last)) = (metrics.first(), metrics.last()) {
        let _ = writeln!(
            out,
            "\nloss: {:.4} at step {} -> {:.4} at step {} ({} points, last {:.1} steps/s)",
            first.loss,
            first.step,
            last.loss,
            last.step,
            metrics.len(),
            last.steps_per_s
        );
    }
    if let Some(c) = evals.last() {
        out.push('\n');
        out.push_str(&super::curve_table(c));
    }
    out
}

/// Flattens a JSON value to dotted keys (`model.n_embd`).
pub fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The spec keys whose values differ between runs: (key, value per run; "-" if absent).
pub fn config_diff(runs: &[RunRecord]) -> Vec<(String, Vec<String>)> {
    let flat: Vec<BTreeMap<String, String>> = runs
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            flatten("", &serde_json::to_value(&r.spec).expect("specs serialise"), &mut m);
            m
        })
        .collect();
    let mut keys: Vec<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let vals: Vec<String> = flat.iter().map(|m| m.get(k).cloned().unwrap_or_else(|| "-".into())).collect();
            (vals.iter().any(|v| v != &vals[0])).then(|| (k.clone(), vals))
        })
        .collect()
}

/// Final metrics of a run, named, for side-by-side tables.
pub fn final_metrics(r: &RunRecord, evals: &[EvalCurve]) -> Vec<(&'static str, String)> {
    let last_eval = evals.last();
    let at_end = |name: &str| -> String {
        let c = last_eval.and_then(|e| if name == "model" { Some(&e.model) } else { e.baseline(name) });
        fmt_opt(c.and_then(|c| c.mean.last().copied()))
    };
    vec![
        ("status", r.status.label().to_string()),
        ("steps", format!("{}/{}", r.step, r.total_steps())),
        ("params", fmt_params(r.params)),
        ("final loss", fmt_opt(r.last.as_ref().map(|m| m.loss))),
        ("final error", fmt_opt(r.final_error)),
        ("last eval step", last_eval.map_or("-".into(), |e| e.step.to_string())),
        ("model err (last pos)", at_end("model")),
        ("least squares", at_end("least_squares")),
        ("3-NN", at_end("3nn")),
        ("averaging", at_end("averaging")),
        ("steps/s", r.last.as_ref().map_or("-".into(), |m| format!("{:.1}", m.steps_per_s))),
        ("train time", format!("{:.1}s", r.train_s)),
    ]
}

/// `icl-lab compare`: config diff and final metrics side by side.
pub fn compare_text(runs: &[(RunRecord, Vec<EvalCurve>)]) -> String {
    let recs: Vec<RunRecord> = runs.iter().map(|(r, _)| r.clone()).collect();
    let mut header = vec!["".to_string()];
    header.extend(recs.iter().map(|r| format!("#{} {}", r.id, r.spec.name)));
    let header_ref: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut out = String::new();
    let diff = config_diff(&recs);
    if diff.is_empty() {
        out.push_str("config: identical\n");
    } else {
        out.push_str("config (keys that differ):\n");
        let rows: Vec<Vec<String>> =
            diff.into_iter().map(|(k, vals)| std::iter::once(k).chain(vals).collect()).collect();
        out.push_str(&table(&header_ref, &rows));
    }
    out.push_str("\nfinal metrics:\n");
    let per_run: Vec<Vec<(&str, String)>> = runs.iter().map(|(r, e)| final_metrics(r, e)).collect();
    let rows: Vec<Vec<String>> = (0..per_run[0].len())
        .map(|i| std::iter::once(per_run[0][i].0.to_string()).chain(per_run.iter().map(|m| m[i].1.clone())).collect())
        .collect();
    out.push_str(&table(&header_ref, &rows));
    out
}

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per run.
pub fn runs_csv(runs: &[RunRecord]) -> String {
    let mut out = String::from(
        "id,uid,name,status,task,arch,params,seed,step,total_steps,final_loss,final_error,train_s,device,tags,created\n",
    );
    for r in runs {
        let cells = [
            r.id.to_string(),
            r.uid.clone(),
            r.spec.name.clone(),
            r.status.label().into(),
            r.task().into(),
            r.arch().into(),
            r.params.map_or(String::new(), |p| p.to_string()),
            r.spec.seed.to_string(),
            r.step.to_string(),
            r.total_steps().to_string(),
            r.last.as_ref().map_or(String::new(), |m| m.loss.to_string()),
            r.final_error.map_or(String::new(), |e| e.to_string()),
            format!("{:.3}", r.train_s),
            r.device.clone().unwrap_or_default(),
            r.tags.iter().cloned().collect::<Vec<_>>().join(" "),
            r.created.to_rfc3339(),
        ];
        out.push_str(&cells.iter().map(|c| csv_escape(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// Every metric point of the runs, long form.
pub fn metrics_csv(series: &[(RunRecord, Vec<StepMetrics>)]) -> String {
    let mut out = String::from("run,step,loss,grad_norm,lr,n_points,n_dims,wall_s,steps_per_s\n");
    for (r, points) in series {
        for m in points {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{:.4},{:.3}",
                r.id, m.step, m.loss, m.grad_norm, m.lr, m.n_points, m.n_dims, m.wall_s, m.steps_per_s
            );
        }
    }
    out
}

/// Every evaluation curve of the runs, long form: one row per learner and position.
pub fn curves_csv(series: &[(RunRecord, Vec<EvalCurve>)]) -> String {
    let mut out = String::from("run,step,learner,examples,mean,ci_low,ci_high\n");
    for (r, curves) in series {
        for c in curves {
            for curve in std::iter::once(&c.model).chain(&c.baselines) {
                let name = if std::ptr::eq(curve, &c.model) { "model" } else { curve.name.as_str() };
                for i in 0..curve.mean.len() {
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{},{},{}",
                        r.id, c.step, name, i, curve.mean[i], curve.ci_low[i], curve.ci_high[i]
                    );
                }
            }
        }
    }
    out
}

/// A Markdown report: the runs table and each run's final curve.
pub fn runs_markdown(runs: &[(RunRecord, Vec<EvalCurve>)]) -> String {
    let mut out = String::from("| id | name | status | task | arch | params | steps | final loss | final error |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for (r, _) in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {}/{} | {} | {} |",
            r.id,
            r.spec.name,
            r.status.label(),
            r.task(),
            r.arch(),
            fmt_params(r.params),
            r.step,
            r.total_steps(),
            fmt_opt(r.last.as_ref().map(|m| m.loss)),
            fmt_opt(r.final_error)
        );
    }
    for (r, evals) in runs {
        let Some(c) = evals.last() else { continue };
        let _ = writeln!(out, "\n### Run {}: {} (step {})\n", r.id, r.spec.name, c.step);
        let mut header = String::from("| examples | model |");
        let mut rule = String::from("|---|---|");
        for b in &c.baselines {
            let _ = write!(header, " {} |", b.name);
            rule.push_str("---|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for i in 0..c.model.mean.len() {
            let _ = write!(out, "| {i} | {:.4} |", c.model.mean[i]);
            for b in &c.baselines {
                let _ = write!(out, " {:.4} |", b.mean.get(i).copied().unwrap_or(f32::NAN));
            }
            out.push('\n');
        }
    }
    out
}

//! The task x architecture matrix of the paper's Table 1 from the store: finished runs grouped
//! by experiment family, task and architecture, their final errors averaged over seeds and
//! turned into marks by one rule (`marks`), beside the paper's marks. Shared by `icl-lab
//! report` and the TUI's Matrix view.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::marks::{mark, references, Mark, RULE};
use crate::spec::TaskSpec;
use crate::store::{RunId, RunRecord, Status};

/// Columns in the paper's order (Transformer, Mamba, MambaFormer first).
pub const ARCHS: [&str; 6] = ["gpt2", "mamba", "mambaformer", "s4", "s4_mamba", "hybrid"];

/// The paper's nine tasks in its order: every kind but the last (token MQAR, ours).
pub const PAPER_TASKS: &[&str] = match TaskSpec::KINDS.split_last() {
    Some((_, paper)) => paper,
    None => &[],
};

/// The paper's Table 1 marks (Transformer, Mamba, MambaFormer) as paper-spec §5 recalls them
/// (unverified there); the other architectures have no marks in the paper.
pub fn paper_mark(task: &str, arch: &str) -> Option<Mark> {
    use Mark::{Fails as X, Solved as S, Weaker as W};
    let row = match task {
        "linear_regression" | "sparse_linear_regression" | "relu_2nn_regression" | "chain_of_thought" => [S, S, S],
        "decision_tree" | "orthogonal_outlier_regression" => [S, W, S],
        "many_outlier_regression" => [W, S, S],
        "sparse_parity" => [X, S, S],
        "vector_mqar" => [S, X, S],
        _ => return None,
    };
    match arch {
        "gpt2" => Some(row[0]),
        "mamba" => Some(row[1]),
        "mambaformer" => Some(row[2]),
        _ => None,
    }
}

/// The experiment a run belongs to: its name without the `-{arch}-s{seed}` that `sweep`
/// appends (a plain run is its own family).
pub fn family(rec: &RunRecord) -> &str {
    let name = rec.spec.name.as_str();
    let arch = rec.spec.model.arch();
    let Some((head, seed)) = name.rsplit_once("-s") else { return name };
    if seed.is_empty() || !seed.bytes().all(|b| b.is_ascii_digit()) {
        return name;
    }
    head.strip_suffix(arch).and_then(|h| h.strip_suffix('-')).unwrap_or(name)
}

/// One cell: the finished runs of one family, task and architecture.
#[derive(Debug, Clone)]
pub struct Cell {
    pub family: String,
    pub task: String,
    pub arch: String,
    /// (run, seed, final error, best baseline, trivial), one per finished run.
    pub runs: Vec<(RunId, u64, f32, f32, f32)>,
    /// Runs of the cell that are not finished (queued, running, interrupted, failed): (run,
    /// seed, step reached, its latest error if it was evaluated).
    pub unfinished: Vec<(RunId, u64, usize, Option<f32>)>,
}

impl Cell {
    pub fn errors(&self) -> Vec<f32> {
        self.runs.iter().map(|r| r.2).collect()
    }
    /// Mean and sample standard deviation over seeds of the final error.
    pub fn error(&self) -> Option<(f32, f32)> {
        mean_std(&self.errors())
    }
    pub fn best_baseline(&self) -> Option<f32> {
        mean_std(&self.runs.iter().map(|r| r.3).collect::<Vec<_>>()).map(|m| m.0)
    }
    pub fn trivial(&self) -> Option<f32> {
        mean_std(&self.runs.iter().map(|r| r.4).collect::<Vec<_>>()).map(|m| m.0)
    }
    /// The rule applied to the seed means.
    pub fn mark(&self) -> Mark {
        match (self.error(), self.best_baseline(), self.trivial()) {
            (Some((e, _)), Some(b), Some(t)) => mark(e, b, t),
            _ => Mark::Unknown,
        }
    }
    /// The rule applied to each seed alone (how consistent the cell is).
    pub fn seed_marks(&self) -> Vec<Mark> {
        self.runs.iter().map(|r| mark(r.2, r.3, r.4)).collect()
    }
    pub fn paper(&self) -> Option<Mark> {
        paper_mark(&self.task, &self.arch)
    }
    /// The latest run of the cell (what the TUI opens).
    pub fn latest(&self) -> Option<RunId> {
        self.runs.iter().map(|r| r.0).max()
    }
}

/// (agreeing cells, cells with both a measured and a paper mark).
pub fn agreement<'a>(cells: impl Iterator<Item = &'a Cell>) -> (usize, usize) {
    let compared: Vec<&Cell> = cells.filter(|c| c.paper().is_some() && c.mark() != Mark::Unknown).collect();
    (compared.iter().filter(|c| Some(c.mark()) == c.paper()).count(), compared.len())
}

fn mean_std(v: &[f32]) -> Option<(f32, f32)> {
    let v: Vec<f64> = v.iter().filter(|x| x.is_finite()).map(|&x| x as f64).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    Some((mean as f32, var.sqrt() as f32))
}

/// The matrix: one cell per (family, task, arch) that has runs.
#[derive(Debug, Default)]
pub struct Matrix {
    pub cells: BTreeMap<(String, String, String), Cell>,
}

impl Matrix {
    /// Groups `runs`; with `family_prefix`, only families starting with it.
    pub fn build(runs: &[RunRecord], family_prefix: Option<&str>) -> Matrix {
        let mut m = Matrix::default();
        for r in runs {
            let fam = family(r);
            if family_prefix.is_some_and(|p| !fam.starts_with(p)) {
                continue;
            }
            let (task, arch) = (r.spec.task.kind().to_string(), r.spec.model.arch().to_string());
            let cell = m.cells.entry((fam.to_string(), task.clone(), arch.clone())).or_insert_with(|| Cell {
                family: fam.to_string(),
                task,
                arch,
                runs: Vec::new(),
                unfinished: Vec::new(),
            });
            match (&r.status, r.final_error) {
                (Status::Done, Some(e)) => {
                    let (best, trivial) = references(r);
                    cell.runs.push((r.id, r.spec.seed, e, best, trivial));
                }
                _ => cell.unfinished.push((r.id, r.spec.seed, r.step, r.final_error)),
            }
        }
        for c in m.cells.values_mut() {
            c.runs.sort_by_key(|r| (r.1, r.0));
        }
        m
    }

    /// For each task, the cells of the family with the most recent run of that task: what the
    /// TUI shows when the store holds several scales of the same task.
    pub fn latest_per_task(runs: &[RunRecord]) -> BTreeMap<(String, String), Cell> {
        let mut latest: BTreeMap<&str, (RunId, &str)> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.status == Status::Done) {
            let e = latest.entry(r.spec.task.kind()).or_insert((r.id, family(r)));
            if r.id > e.0 {
                *e = (r.id, family(r));
            }
        }
        let all = Matrix::build(runs, None);
        all.cells
            .into_values()
            .filter(|c| latest.get(c.task.as_str()).is_some_and(|(_, f)| *f == c.family))
            .map(|c| ((c.task.clone(), c.arch.clone()), c))
            .collect()
    }

    /// Tasks present, in the paper's order (token MQAR, ours, last).
    fn tasks(&self) -> Vec<String> {
        let present = |t: &str| self.cells.values().any(|c| c.task == t);
        TaskSpec::KINDS.iter().filter(|t| present(t)).map(|t| t.to_string()).collect()
    }

    fn families(&self) -> Vec<String> {
        // Cells are ordered by family first.
        let mut f: Vec<String> = self.cells.keys().map(|k| k.0.clone()).collect();
        f.dedup();
        f
    }

    /// (agreeing cells, cells with both a measured and a paper mark).
    pub fn agreement(&self) -> (usize, usize) {
        agreement(self.cells.values())
    }

    /// The table as Markdown: one row per task (and family), per architecture the measured
    /// mark with the seed-mean error ± std, the paper's mark beside.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Rule: {RULE}\n");
        let _ = writeln!(
            out,
            "Each cell: measured mark (each seed's mark) final error mean ± std over seeds [n seeds] / paper's mark.\n"
        );
        let _ = write!(out, "| task | family |");
        for a in ARCHS {
            let _ = write!(out, " {a} |");
        }
        let _ = write!(out, " best baseline | trivial |\n|---|---|");
        for _ in ARCHS {
            out.push_str("---|");
        }
        out.push_str("---|---|\n");
        for task in self.tasks() {
            for fam in self.families() {
                let row: Vec<Option<&Cell>> =
                    ARCHS.iter().map(|a| self.cells.get(&(fam.clone(), task.clone(), a.to_string()))).collect();
                let Some(any) = row.iter().flatten().next() else { continue };
                let _ = write!(out, "| {task} | {fam} |");
                for c in &row {
                    let _ = write!(out, " {} |", c.map_or("".to_string(), cell_text));
                }
                let b = any.best_baseline().map_or("-".into(), |v| format!("{v:.3}"));
                let t = any.trivial().map_or("-".into(), |v| format!("{v:.3}"));
                let _ = writeln!(out, " {b} | {t} |");
            }
        }
        let (agree, of) = self.agreement();
        let _ = writeln!(out, "\nAgreement with the paper's marks: {agree} of {of} cells compared.");
        out
    }

    pub fn json(&self) -> Value {
        let cells: Vec<Value> = self
            .cells
            .values()
            .map(|c| {
                let (mean, std) = c.error().map_or((None, None), |(m, s)| (Some(m), Some(s)));
                json!({
                    "family": c.family, "task": c.task, "arch": c.arch,
                    "mark": c.mark().word(), "paper": c.paper().map(Mark::word),
                    "seed_marks": c.seed_marks().into_iter().map(Mark::word).collect::<Vec<_>>(),
                    "error_mean": mean, "error_std": std,
                    "best_baseline": c.best_baseline(), "trivial": c.trivial(),
                    "runs": c.runs.iter().map(|r| json!({"id": r.0, "seed": r.1, "error": r.2})).collect::<Vec<_>>(),
                    "unfinished": c.unfinished.iter().map(|u| json!({"id": u.0, "seed": u.1, "step": u.2, "error": u.3})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let (agree, of) = self.agreement();
        json!({ "rule": RULE, "cells": cells, "agreement": { "agree": agree, "compared": of } })
    }
}

fn cell_text(c: &Cell) -> String {
    let paper = c.paper().map_or("–", |m| m.symbol(false));
    // Unfinished runs: not marked, but their latest evaluation says how far they got.
    let partial: Vec<String> = c
        .unfinished
        .iter()
        .map(|u| u.3.map_or(format!("s{} step {}", u.1, u.2), |e| format!("s{} {e:.3} @ step {}", u.1, u.2)))
        .collect();
    let partial = if partial.is_empty() { String::new() } else { format!(" (unfinished: {})", partial.join(", ")) };
    if c.runs.is_empty() {
        return format!("–{partial} / {paper}");
    }
    let seeds: String = c.seed_marks().into_iter().map(|m| m.symbol(false)).collect();
    let err = c.error().map_or("-".into(), |(m, s)| format!("{m:.3} ± {s:.3}"));
    format!("{} ({seeds}) {err} [{}]{partial} / {paper}", c.mark().symbol(false), c.runs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ExperimentSpec;

    const QUICK: &str = include_str!("../../experiments/quick/linear_regression.toml");

    /// A run of `name` (as `sweep` names them) with a final error against least squares 0.1
    /// and the zero predictor 1.0; `err` None = interrupted at step 300.
    fn run(id: RunId, name: &str, arch: &str, seed: u64, err: Option<f32>) -> RunRecord {
        let mut spec = ExperimentSpec::from_toml(QUICK).unwrap();
        spec.name = name.into();
        spec.seed = seed;
        if arch != "gpt2" {
            spec.model = crate::tui::form::model_spec(arch, 32, 2, 4, 11);
        }
        let status = if err.is_some() { "done" } else { "interrupted" };
        serde_json::from_value(json!({
            "id": id, "uid": format!("u{id}"), "spec": spec, "status": {"state": status},
            "created": "2026-12-01T12:00:00Z", "step": if err.is_some() { 1000 } else { 300 },
            "final_error": err.or(Some(0.7)),
            "final_baselines": {"least_squares": 0.1, "zero": 1.0},
        }))
        .unwrap()
    }

    #[test]
    fn family_strips_what_sweep_appends_and_nothing_else() {
        assert_eq!(family(&run(1, "reduced-lr-gpt2-s0", "gpt2", 0, None)), "reduced-lr");
        assert_eq!(family(&run(1, "reduced-lr-s4_mamba-s12", "s4_mamba", 12, None)), "reduced-lr");
        assert_eq!(family(&run(1, "my-own-run", "gpt2", 0, None)), "my-own-run");
        assert_eq!(family(&run(1, "wide-s2", "gpt2", 2, None)), "wide-s2", "no arch before the seed");
        assert_eq!(family(&run(1, "x-mamba-s", "mamba", 0, None)), "x-mamba-s");
    }

    #[test]
    fn cells_average_over_seeds_and_mark_the_mean() {
        let runs = vec![
            run(1, "r-gpt2-s0", "gpt2", 0, Some(0.10)),
            run(2, "r-gpt2-s1", "gpt2", 1, Some(0.20)),
            run(3, "r-gpt2-s2", "gpt2", 2, Some(0.30)),
            run(4, "r-mamba-s0", "mamba", 0, Some(0.95)),
            run(5, "r-mamba-s1", "mamba", 1, None),
            run(6, "other-gpt2-s0", "gpt2", 0, Some(0.9)),
        ];
        let m = Matrix::build(&runs, Some("r"));
        assert_eq!(m.cells.len(), 2, "the other family is left out");
        let gpt = &m.cells[&("r".into(), "linear_regression".into(), "gpt2".into())];
        let (mean, std) = gpt.error().unwrap();
        assert!((mean - 0.2).abs() < 1e-6 && (std - 0.1).abs() < 1e-6, "{mean} ± {std}");
        // 0.2 <= 0.1 + 0.1 x 1.0: solved on the mean although seed 2 alone is weaker.
        assert_eq!(gpt.mark(), Mark::Solved);
        assert_eq!(gpt.seed_marks(), vec![Mark::Solved, Mark::Solved, Mark::Weaker]);
        let mamba = &m.cells[&("r".into(), "linear_regression".into(), "mamba".into())];
        assert_eq!((mamba.mark(), mamba.runs.len()), (Mark::Fails, 1));
        assert_eq!(mamba.unfinished, vec![(5, 1, 300, Some(0.7))]);
        // Paper: both solve linear regression; we agree on gpt2 only.
        assert_eq!(m.agreement(), (1, 2));
        let md = m.markdown();
        assert!(md.contains("| linear_regression | r | ✓ (✓✓▲) 0.200 ± 0.100 [3] / ✓ |"), "{md}");
        assert!(md.contains("unfinished: s1 0.700 @ step 300"), "{md}");
        assert!(md.contains("1 of 2 cells"), "{md}");
        let j = m.json();
        assert_eq!(j["agreement"]["agree"], 1);
        assert_eq!(j["cells"][0]["seed_marks"][2], "weaker");
    }

    #[test]
    fn the_tui_shows_the_latest_family_of_each_task() {
        let runs = vec![
            run(1, "old-gpt2-s0", "gpt2", 0, Some(0.5)),
            run(2, "new-gpt2-s0", "gpt2", 0, Some(0.1)),
            run(3, "new-mamba-s0", "mamba", 0, None),
        ];
        let cells = Matrix::latest_per_task(&runs);
        assert_eq!(cells.len(), 2);
        assert!(cells.values().all(|c| c.family == "new"));
        assert_eq!(cells[&("linear_regression".into(), "gpt2".into())].latest(), Some(2));
    }

    #[test]
    fn paper_marks_cover_the_three_architectures_of_table_1() {
        assert_eq!(PAPER_TASKS.len(), 9);
        for t in PAPER_TASKS {
            for a in ["gpt2", "mamba", "mambaformer"] {
                assert!(paper_mark(t, a).is_some(), "{t} {a}");
            }
            assert_eq!(paper_mark(t, "s4"), None);
        }
        assert_eq!(paper_mark("sparse_parity", "gpt2"), Some(Mark::Fails));
        assert_eq!(paper_mark("vector_mqar", "mamba"), Some(Mark::Fails));
    }
}

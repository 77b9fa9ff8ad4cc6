//! `icl-lab bench baselines`: how long each task's classical learners take on one evaluation
//! (the paper's 1,280 prompts x 101 examples by default), the cost paid once per evaluation
//! length of a run.

use std::time::Instant;

use clap::Args;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{CliError, CliResult};
use crate::spec::{SubsetPer, TaskSpec};
use crate::tasks;

#[derive(Debug, Args)]
pub struct BaselinesArgs {
    /// Prompts per evaluation.
    #[arg(long, default_value_t = 1280)]
    prompts: usize,
    /// Examples per prompt (pairs for MQAR tasks have no baselines).
    #[arg(long, default_value_t = 101)]
    points: usize,
    /// Only this task kind (default: every task that has baselines).
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    json: bool,
}

/// The paper's task sizes (paper-spec §2).
fn paper_tasks() -> Vec<TaskSpec> {
    vec![
        TaskSpec::LinearRegression { n_dims: 20 },
        TaskSpec::SparseLinearRegression { n_dims: 20, sparsity: 3 },
        TaskSpec::Relu2nnRegression { n_dims: 20, hidden: 100 },
        TaskSpec::DecisionTree { n_dims: 20, depth: 4 },
        TaskSpec::OrthogonalOutlierRegression { n_dims: 20, p: 0.5 },
        TaskSpec::ManyOutlierRegression { n_dims: 20, p: 0.9 },
        TaskSpec::SparseParity { n_dims: 10, k: 2, subset_per: SubsetPer::Prompt },
        TaskSpec::ChainOfThought { n_dims: 10, hidden: 4 },
    ]
}

pub fn bench_baselines(args: BaselinesArgs) -> CliResult {
    let specs: Vec<TaskSpec> = paper_tasks().into_iter().filter(|t| args.task.as_deref().is_none_or(|k| k == t.kind())).collect();
    if specs.is_empty() {
        return Err(CliError::bad_input(format!(
            "--task {:?}: not a task with baselines (one of: {})",
            args.task.unwrap_or_default(),
            paper_tasks().iter().map(|t| t.kind()).collect::<Vec<_>>().join(", ")
        )));
    }
    let threads = rayon::current_num_threads();
    let mut rows = Vec::new();
    for spec in &specs {
        let task = tasks::build(spec);
        let sample = task.sample(&mut ChaCha8Rng::seed_from_u64(0), args.prompts, args.points, task.n_dims());
        let mut total = 0.0;
        for b in task.baselines() {
            let start = Instant::now();
            let pred = (b.predict)(&sample.batch);
            let errs = task.score(&sample.batch, &pred);
            let secs = start.elapsed().as_secs_f64();
            total += secs;
            let last: Vec<f32> = (0..sample.b()).map(|p| errs[p * args.points + args.points - 1]).filter(|e| e.is_finite()).collect();
            let err_last = last.iter().sum::<f32>() / last.len().max(1) as f32;
            rows.push(json!({"task": spec.kind(), "baseline": b.name, "seconds": secs, "error_last": err_last}));
        }
        rows.push(json!({"task": spec.kind(), "baseline": "(all)", "seconds": total}));
    }
    if args.json {
        println!("{}", json!({"prompts": args.prompts, "points": args.points, "threads": threads, "rows": rows}));
        return Ok(std::process::ExitCode::SUCCESS);
    }
    println!("baselines on {} prompts x {} examples, {threads} threads", args.prompts, args.points);
    println!("{:<32} {:<14} {:>9} {:>12}", "task", "baseline", "seconds", "err @ last");
    for r in &rows {
        let err = r["error_last"].as_f64().map_or(String::new(), |e| format!("{e:.4}"));
        println!(
            "{:<32} {:<14} {:>9.3} {:>12}",
            r["task"].as_str().unwrap_or(""),
            r["baseline"].as_str().unwrap_or(""),
            r["seconds"].as_f64().unwrap_or(0.0),
            err
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

//! `icl-lab bench store`: what the store costs. Training the same tiny run with and without
//! the store (overhead %), and `icl-lab ls` over a store of 10,000 runs (whole process).

use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{CliError, CliResult};
use crate::runtime::{Device, Job, Pool, PoolEvent};
use crate::spec::ExperimentSpec;
use crate::store::{NewRun, RunStore, SledStore, Status, Writer};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Store overhead on a tiny CPU run, and `ls` over many runs.
    Store {
        /// Runs in the `ls` store.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Repetitions of each timing (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Also print JSON.
        #[arg(long)]
        json: bool,
    },
}

const TINY: &str = include_str!("../../experiments/quick/linear_regression.toml");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Trains `spec` once on a one-slot CPU pool; returns wall seconds from submit to finish.
fn timed_run(spec: &ExperimentSpec, store: Option<&Arc<SledStore>>) -> f64 {
    let writer = store.map(|s| Writer::spawn(s.clone() as Arc<dyn RunStore>, None));
    let pool = Pool::new(vec![(Device::Cpu, 1)], writer.as_ref().map(Writer::sender), store.map(|s| s.path()));
    let (run, uid) = match store {
        Some(s) => {
            let r = s.create_run(NewRun { spec: spec.clone(), git_commit: None, tags: Default::default() }).unwrap();
            (r.id, r.uid)
        }
        None => (0, String::new()),
    };
    let events = pool.subscribe();
    let start = Instant::now();
    pool.submit(Job { run, uid, spec: spec.clone(), resume: None, train_s: 0.0 }).unwrap();
    while let Ok(ev) = events.recv() {
        if let PoolEvent::Finished { .. } = ev {
            break;
        }
    }
    drop(pool);
    drop(writer);
    start.elapsed().as_secs_f64()
}

pub fn bench(args: BenchArgs) -> CliResult {
    let BenchWhat::Store { runs, reps, json } = args.what;
    let tmp = std::env::temp_dir().join(format!("icl-lab-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let io = |e: crate::store::StoreError| CliError::failed(e);

    // 1. Overhead: 300 steps of the quick GPT-2, metrics every 10 steps, eval and checkpoint
    //    every 100 (more store traffic than the shipped experiments).
    let mut spec = ExperimentSpec::from_toml(TINY).map_err(CliError::failed)?;
    spec.train.steps = 300;
    spec.train.eval_every = 100;
    spec.train.checkpoint_every = Some(100);
    spec.device = crate::spec::DeviceSpec::Cpu;
    let store = Arc::new(SledStore::open(&tmp.join("overhead")).map_err(io)?);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    timed_run(&spec, None); // warm caches
    for _ in 0..reps {
        without.push(timed_run(&spec, None));
        with.push(timed_run(&spec, Some(&store)));
    }
    drop(store);
    let (w, wo) = (median(with), median(without));
    let overhead = (w / wo - 1.0) * 100.0;
    println!("store overhead: tiny run {wo:.2}s without store, {w:.2}s with ({overhead:+.1}%), median of {reps}");

    // 2. `ls` over `runs` runs, each with 100 metric points and 2 curves, as a user would run it.
    let ls_dir = tmp.join("ls");
    {
        let store = SledStore::open(&ls_dir).map_err(io)?;
        let base = store.create_run(NewRun { spec: spec.clone(), git_commit: None, tags: Default::default() }).map_err(io)?;
        let metrics: Vec<_> = (1..=100)
            .map(|s| crate::train::StepMetrics {
                step: s * 10,
                loss: 1.0 / s as f32,
                grad_norm: 1.0,
                lr: 1e-3,
                n_points: 11,
                n_dims: 5,
                wall_s: s as f64,
                steps_per_s: 10.0,
            })
            .collect();
        for i in 1..runs {
            let mut rec = base.clone();
            rec.uid = format!("bench{i}");
            rec.status = Status::Done;
            rec.step = 1000;
            rec.last = metrics.last().cloned();
            rec.tags.insert(format!("group{}", i % 7));
            store.insert_full(rec, &metrics, &[]).map_err(io)?;
        }
        store.flush().map_err(io)?;
    }
    let exe = std::env::current_exe().map_err(|e| CliError::failed(e))?;
    let ls = |args: &[&str]| -> f64 {
        let start = Instant::now();
        let status = Command::new(&exe)
            .arg("--store")
            .arg(&ls_dir)
            .arg("ls")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("run icl-lab ls");
        assert!(status.success());
        start.elapsed().as_secs_f64()
    };
    ls(&[]);
    let ls_all = median((0..reps).map(|_| ls(&[])).collect());
    let ls_filtered = median((0..reps).map(|_| ls(&["tag:group3", "--sort", "loss"])).collect());
    println!(
        "icl-lab ls over {runs} runs: {:.0} ms (all), {:.0} ms (filter + sort), whole process, median of {reps}",
        ls_all * 1e3,
        ls_filtered * 1e3
    );
    if json {
        println!(
            "{}",
            json!({
                "tiny_run_s": { "without_store": wo, "with_store": w, "overhead_pct": overhead },
                "ls_ms": { "runs": runs, "all": ls_all * 1e3, "filtered_sorted": ls_filtered * 1e3 },
            })
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ExitCode::SUCCESS)
}

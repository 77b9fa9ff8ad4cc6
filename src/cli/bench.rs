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
    /// TUI: startup (open the store, read every run, first frame) and one frame's render time
    /// over a store of many runs.
    Tui {
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Frames to render (the median is reported).
        #[arg(long, default_value_t = 50)]
        frames: usize,
        #[arg(long)]
        json: bool,
    },
    /// Baselines: each task's classical learners on one evaluation's prompts (default 1,280
    /// prompts of 101 examples), timed per learner.
    Baselines(super::bench_baselines::BaselinesArgs),
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
    match args.what {
        BenchWhat::Store { runs, reps, json } => bench_store(runs, reps, json),
        BenchWhat::Tui { runs, frames, json } => bench_tui(runs, frames, json),
        BenchWhat::Baselines(a) => super::bench_baselines::bench_baselines(a),
    }
}

/// A store of `runs` finished runs, each with 100 metric points (ids 1..=runs).
fn fill_store(dir: &std::path::Path, spec: &ExperimentSpec, runs: usize) -> Result<(), CliError> {
    let io = |e: crate::store::StoreError| CliError::failed(e);
    let store = SledStore::open(dir).map_err(io)?;
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
        rec.final_error = Some(1.0 / i as f32);
        rec.tags.insert(format!("group{}", i % 7));
        store.insert_full(rec, &metrics, &[]).map_err(io)?;
    }
    store.flush().map_err(io)?;
    Ok(())
}

fn bench_tui(runs: usize, frames: usize, json: bool) -> CliResult {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    let tmp = std::env::temp_dir().join(format!("icl-lab-bench-tui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let spec = ExperimentSpec::from_toml(TINY).map_err(CliError::failed)?;
    fill_store(&tmp, &spec, runs)?;
    let theme = crate::tui::ui::Theme { color: true, ascii: false };
    let start = Instant::now();
    let store = SledStore::open(&tmp).map_err(CliError::failed)?;
    let lab = crate::runtime::lab::Lab::read_only(store);
    let mut app = crate::tui::app::App::new(&lab, "experiments".into());
    let mut term = Terminal::new(TestBackend::new(200, 50)).map_err(CliError::failed)?;
    term.draw(|f| crate::tui::ui::draw(f, &app, theme)).map_err(CliError::failed)?;
    let startup = start.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for i in 0..frames {
        // Move the cursor so each frame differs, as when scrolling.
        app.cursor = (i * 37) % app.visible.len().max(1);
        let t = Instant::now();
        term.draw(|f| crate::tui::ui::draw(f, &app, theme)).map_err(CliError::failed)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let frame = median(times);
    if std::env::var_os("ICL_LAB_BENCH_DETAIL").is_some() {
        let t = Instant::now();
        drop(app);
        drop(lab);
        let store = SledStore::open(&tmp).map_err(CliError::failed)?;
        let open = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let n = crate::store::RunStore::list(&store).map_err(CliError::failed)?.len();
        eprintln!("detail: open {:.0} ms, list {n} runs {:.0} ms", open * 1e3, t.elapsed().as_secs_f64() * 1e3);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "tui over {runs} runs: startup {:.0} ms (open store, read runs, first frame), frame {:.2} ms (200x50, median of {frames})",
        startup * 1e3,
        frame * 1e3
    );
    if json {
        println!("{}", json!({ "runs": runs, "startup_ms": startup * 1e3, "frame_ms": frame * 1e3 }));
    }
    drop(app);
    drop(lab);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ExitCode::SUCCESS)
}

fn bench_store(runs: usize, reps: usize, json: bool) -> CliResult {
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
    fill_store(&ls_dir, &spec, runs)?;
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

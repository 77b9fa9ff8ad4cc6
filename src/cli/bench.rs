//! `icl-lab bench store`: what the store costs. Training the same tiny run with and without
//! the store (overhead %), and `icl-lab ls` over a store of 10,000 runs (whole process).
//! `icl-lab bench scan`: the fused CUDA selective scan against the tensor-op scan (errors with
//! `--check`, forward+backward time, and the memory-bandwidth floor).
//! `icl-lab bench models`: the model matrix of issue 7, each config trained in a fresh process.
//! `icl-lab bench slots`: N runs of one config at once in one pool, against one run.
//! `icl-lab bench members`: N seeds of one config as one stacked model, against one run.

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
    /// Fused causal attention on CUDA (GPT-2 e256 on 280 tokens by default): forward+backward
    /// and forward-only time against the tensor-op attention; `--check` compares them first.
    Attention(super::bench_attention::AttentionArgs),
    /// Fused LayerNorm on CUDA (GPT-2 e256's activations by default): forward+backward time
    /// against burn's LayerNorm; `--check` compares them first.
    LayerNorm(super::bench_norm::LayerNormArgs),
    /// Fused causal depthwise conv1d on CUDA (Mamba e128's by default): forward+backward time
    /// against the tensor ops it replaces; `--check` compares them first.
    Conv(super::bench_conv::ConvArgs),
    /// The matmuls of a GPT-2 block's linear layers on CUDA under each matmul strategy
    /// (burn without autotune runs one): forward, input and weight gradients.
    Matmul(super::bench_matmul::MatmulArgs),
    /// The fused optimiser step (global-norm clipping + Adam) on CUDA against burn's
    /// tensor-op form; `--check` compares them first.
    Adam(super::bench_adam::AdamArgs),
    /// Several seeds of one config trained as one stacked model in this process (`models::members`),
    /// for each number of members: steps/s per member and together, against one run.
    Members(super::bench_members::MembersArgs),
    /// The host's work a training step takes on the CUDA code path, with no GPU: the step runs
    /// on the CPU emulator of the GPU with its kernels compiled and recorded, not run (only in
    /// binaries built with `--features emulator`).
    #[cfg(feature = "emulator")]
    Host(super::bench_host::HostArgs),
    /// Fused selective scan on CUDA: forward+backward time at (batch 64, length 1024, d_inner
    /// 512, d_state 16), of the kernels alone and through autodiff, against the tensor-op scan
    /// and the memory-bandwidth floor.
    Scan {
        /// First compare the fused forward and gradients with the tensor-op scan on several
        /// shapes (fails when any relative error exceeds 1e-4).
        #[arg(long)]
        check: bool,
        /// Timed repetitions of the fused scan (the median is reported).
        #[arg(long, default_value_t = 20)]
        reps: usize,
        /// Tensor-op forms to time against (`ICL_LAB_SCAN` names, comma-separated), or `none`.
        /// The tensor-op default `chunked:16` needs over 100 GB at this size, and
        /// `sequential` took minutes, so neither is the default.
        #[arg(long, default_value = "chunked:4")]
        against: String,
        /// The timed shape, `b,l,e,n`.
        #[arg(long, default_value = "64,1024,512,16")]
        shape: String,
        /// The fused kernels' layout: a thread per (batch, channel) or per (batch, channel,
        /// state entry). Default: `ICL_LAB_SCAN_KERNEL`, else by size (per channel from 32,768 batch x channel pairs).
        #[arg(long, value_parser = ["channel", "state"])]
        kernel: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The model matrix (GPT-2, Mamba, MambaFormer on 82 tokens; GPT-2 e256 L12 and Mamba
    /// e256 L24 on 280; Mamba on 1,024), each trained in a fresh `icl-lab run` process:
    /// ms/step, steps/s, start to first step, peak memory.
    Models {
        /// Device for the runs.
        #[arg(long, default_value = "cuda")]
        device: String,
        /// Steps per config; steps/s is the rate over the second half.
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// Only these configs (labels, comma-separated).
        #[arg(long)]
        only: Option<String>,
        /// Seconds before a run is killed.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Several runs of one config at once in one notebook pool (`icl-lab sweep --devices DEV
    /// --slots-per-device N`: on CUDA each run in its own child process), for each N: steps/s
    /// per run and together, against one run. With `--members M`, each slot trains up to M
    /// seeds as one stacked model (`sweep --members M`, N/M slots).
    Slots {
        /// Device for the runs.
        #[arg(long, default_value = "cuda:0")]
        device: String,
        /// The numbers of concurrent runs to measure, comma-separated.
        #[arg(long, default_value = "1,4,8,16")]
        runs: String,
        /// The config (a label of `bench models`).
        #[arg(long, default_value = "gpt2-e128-l2-t82")]
        config: String,
        /// Steps per run; steps/s is each run's rate over its second half.
        #[arg(long, default_value_t = 300)]
        steps: usize,
        /// Seeds per slot trained as one stacked model (`sweep --members`).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        members: u32,
        /// Seconds before a sweep is killed.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
}

const TINY: &str = include_str!("../../experiments/quick/linear_regression.toml");

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median milliseconds of `reps` (at least one) timed calls of `run`, after `warmups` untimed
/// ones (the first calls compile kernels and grow memory pools). `run` must end with its
/// device's sync, so each time is the work's and not its launch's.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(super) fn median_ms(warmups: usize, reps: usize, mut run: impl FnMut()) -> f64 {
    for _ in 0..warmups {
        run();
    }
    median(
        (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
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
        BenchWhat::Attention(a) => super::bench_attention::bench_attention(a),
        BenchWhat::LayerNorm(a) => super::bench_norm::bench_layer_norm(a),
        BenchWhat::Conv(a) => super::bench_conv::bench_conv(a),
        BenchWhat::Matmul(a) => super::bench_matmul::bench_matmul(a),
        BenchWhat::Adam(a) => super::bench_adam::bench_adam(a),
        BenchWhat::Members(a) => super::bench_members::bench_members(a),
        #[cfg(feature = "emulator")]
        BenchWhat::Host(a) => super::bench_host::bench_host(a),
        BenchWhat::Scan { check, reps, against, shape, kernel, json } => bench_scan(check, reps, &against, &shape, kernel.as_deref(), json),
        BenchWhat::Models { device, steps, only, timeout, json } => bench_models(&device, steps, only.as_deref(), timeout, json),
        BenchWhat::Slots { device, runs, config, steps, members, timeout, json } => bench_slots(&device, &runs, &config, steps, members as usize, timeout, json),
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
    let exe = std::env::current_exe().map_err(CliError::failed)?;
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

/// `--shape`'s `N` comma-separated sizes, named by `names` (`b,l,e,n`) in the error.
pub(super) fn parse_sizes<const N: usize>(text: &str, names: &str) -> Result<[usize; N], CliError> {
    const COUNT: [&str; 5] = ["zero", "one", "two", "three", "four"];
    let bad = || CliError::bad_input(format!("--shape {text}: expected {} sizes {names}", COUNT.get(N).copied().unwrap_or("more")));
    let dims: Vec<usize> = text.split(',').map(|v| v.trim().parse()).collect::<Result<_, _>>().map_err(|_| bad())?;
    dims.try_into().map_err(|_| bad())
}

/// The largest batch the scan kernels take: a batch row is a row of their grid (CUDA's y
/// limit; `kernels/src/scan/cube.rs` asserts it).
const SCAN_MAX_BATCH: usize = 65_535;

/// `bench scan`'s `--shape b,l,e,n`: positive sizes, and a batch the kernels' grid holds.
fn parse_scan_shape(text: &str) -> Result<[usize; 4], CliError> {
    let dims: [usize; 4] = parse_sizes(text, "b,l,e,n")?;
    if dims.contains(&0) {
        return Err(CliError::bad_input(format!("--shape {text}: sizes must be positive")));
    }
    if dims[0] > SCAN_MAX_BATCH {
        return Err(CliError::bad_input(format!("--shape {text}: batch {} is past the kernels' {}", dims[0], SCAN_MAX_BATCH)));
    }
    Ok(dims)
}

/// The first CUDA device, with the kernel cache configured, for the kernel benches; `what`
/// names the command in the error when there is none.
#[cfg(feature = "cuda")]
pub(super) fn first_gpu(what: &str) -> Result<burn_cuda::CudaDevice, CliError> {
    match crate::runtime::device::cuda_device_count() {
        Ok(n) if n > 0 => {}
        Ok(_) => return Err(CliError::failed(format!("{what}: no CUDA device found"))),
        Err(why) => return Err(CliError::failed(format!("{what}: {why}"))),
    }
    crate::runtime::kernel_cache::configure(0);
    Ok(burn_cuda::CudaDevice::new(0))
}

/// HBM bandwidth of the H200 (bytes/s): the scan's floor where the driver reports none.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const H200_BYTES_PER_S: f64 = 4.8e12;

/// Bytes a forward+backward scan must move at least once (fp32): the forward reads x, Δ, B,
/// C, A, D and writes y; the backward reads them and ∂y and writes the six gradients.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn scan_floor_bytes([b, l, e, n]: [usize; 4]) -> f64 {
    let (ble, bln, en) = ((b * l * e) as f64, (b * l * n) as f64, (e * n) as f64);
    4.0 * (8.0 * ble + 6.0 * bln + 3.0 * en + 3.0 * e as f64)
}

#[cfg(not(feature = "cuda"))]
fn bench_scan(_: bool, _: usize, _: &str, shape: &str, _: Option<&str>, _: bool) -> CliResult {
    parse_scan_shape(shape)?;
    Err(CliError::failed("bench scan: this binary was built without the `cuda` feature"))
}

#[cfg(feature = "cuda")]
fn bench_scan(check: bool, reps: usize, against: &str, shape: &str, kernel: Option<&str>, json: bool) -> CliResult {
    use crate::models::scan::{compare_gated_modes, compare_modes, compare_raw_delta_modes, compare_stacked_modes, ScanMode, CHECK_SHAPES, COMPARED, COMPARED_GATED, STACKED_CHECK_SHAPES};
    use icl_lab_kernels::scan::{choose_layout, chosen_layout, Layout};
    type B = crate::runtime::CudaBackend;

    if let Some(name) = kernel {
        let layout = Layout::parse(name).ok_or_else(|| CliError::bad_input(format!("--kernel {name}: expected channel or state")))?;
        choose_layout(layout).map_err(|held| CliError::failed(format!("--kernel {name}: the layout was already fixed in this process ({held})")))?;
    }
    let choice = chosen_layout();

    let dims = parse_scan_shape(shape)?;
    let modes: Vec<(String, ScanMode)> = against
        .split(',')
        .filter(|m| against.trim() != "none" && !m.trim().is_empty())
        .map(|m| ScanMode::parse(m).map(|mode| (m.trim().to_string(), mode)).ok_or_else(|| CliError::bad_input(format!("--against: unknown scan form {m:?}"))))
        .collect::<Result<_, _>>()?;
    let device = first_gpu("bench scan")?;
    let mut report = serde_json::Map::new();

    let mut passed = true;
    if check {
        println!("fused scan (layout {choice}) vs tensor-op scan (chunked:16), max relative error:");
        println!("{:>22} {}", "[b, l, e, n]", COMPARED.map(|c| format!("{c:>9}")).join(""));
        let mut rows = Vec::new();
        // A row's errors by the name of what each compares (`names`: COMPARED or COMPARED_GATED).
        let named = |names: &[&str], errors: &[f64]| names.iter().zip(errors).map(|(c, e)| (c.to_string(), json!(e))).collect::<serde_json::Map<_, _>>();
        for (seed, dims) in CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_modes::<B>(dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(crate::models::scan::CHUNK));
            passed &= errors.iter().all(|&e| e <= 1e-4);
            // Shapes outside the verified set fall back to the tensor-op scan (errors ~0).
            let kernel = crate::models::scan::fused_verified(dims[2], dims[3]);
            let note = if kernel { "" } else { "  (not verified: tensor-op fallback)" };
            println!("{:>22} {}{note}", format!("{dims:?}"), errors.map(|e| format!("{e:>9.1e}")).join(""));
            rows.push(json!({ "shape": dims, "kernel": kernel, "errors": named(&COMPARED, &errors) }));
        }
        // Stacked scans (models::members): the kernels take the members' operands whole.
        for (seed, (members, dims)) in STACKED_CHECK_SHAPES.into_iter().enumerate() {
            let errors = compare_stacked_modes::<B>(members, dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(crate::models::scan::CHUNK));
            passed &= errors.iter().all(|&e| e <= 1e-4);
            println!("{:>22} {}", format!("{members} x {dims:?}"), errors.map(|e| format!("{e:>9.1e}")).join(""));
            rows.push(json!({ "members": members, "shape": dims, "errors": named(&COMPARED, &errors) }));
        }
        // Δ given before softplus, which our CUDA C++ applies as it reads it (the models' way).
        for (seed, (members, dims)) in [(1, CHECK_SHAPES[0]), (1, [64, 82, 256, 16]), STACKED_CHECK_SHAPES[1]].into_iter().enumerate() {
            let errors = compare_raw_delta_modes::<B>(members, dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(crate::models::scan::CHUNK));
            passed &= errors.iter().all(|&e| e <= 1e-4);
            println!("{:>22} {}", format!("{members} x {dims:?} raw Δ"), errors.map(|e| format!("{e:>9.1e}")).join(""));
            rows.push(json!({ "members": members, "shape": dims, "raw_delta": true, "errors": named(&COMPARED, &errors) }));
        }
        // Mamba's whole scan: Δ raw and y gated by z, a slice of wider rows (read in place).
        println!("{:>22} {}", "gated, Δ raw", COMPARED_GATED.map(|c| format!("{c:>9}")).join(""));
        for (seed, (members, dims)) in [(1, [2, 37, 128, 16]), (1, [64, 82, 256, 16]), STACKED_CHECK_SHAPES[1]].into_iter().enumerate() {
            let errors = compare_gated_modes::<B>(members, dims, seed as u64, &device, ScanMode::Fused, ScanMode::Chunked(crate::models::scan::CHUNK));
            passed &= errors.iter().all(|&e| e <= 1e-4);
            println!("{:>22} {}", format!("{members} x {dims:?}"), errors.map(|e| format!("{e:>9.1e}")).join(""));
            rows.push(json!({ "members": members, "shape": dims, "raw_delta": true, "gated": true, "errors": named(&COMPARED_GATED, &errors) }));
        }
        println!("check: {}", if passed { "all within 1e-4" } else { "FAILED: some error above 1e-4" });
        report.insert("check".into(), json!({ "passed": passed, "tolerance": 1e-4, "shapes": rows }));
    }

    // Forward + backward of Σ y ⊙ proj, synchronised; milliseconds.
    let time = |mode: ScanMode, reps: usize| -> f64 {
        use burn::prelude::*;
        let inp = crate::models::scan::random_inputs::<B>(dims, 0, &device);
        let proj = Tensor::<B, 3>::ones([dims[0], dims[1], dims[2]], &device);
        median_ms(2, reps, || {
            let y = crate::models::scan::selective_scan(inp.clone(), mode);
            let grads = (y * proj.clone()).sum().backward();
            <B as burn::tensor::backend::Backend>::sync(&device).expect("CUDA sync");
            drop(grads);
        })
    };
    let (bandwidth, bandwidth_source) = match crate::runtime::device::cuda_peak_bandwidth(0) {
        Ok(b) => (b, "this GPU's"),
        Err(_) => (H200_BYTES_PER_S, "an H200's"),
    };
    let floor_ms = scan_floor_bytes(dims) / bandwidth * 1e3;
    let fused = time(ScanMode::Fused, reps);
    // The forward alone and the kernels alone share one set of inputs (the same as `time`'s).
    let inputs = crate::models::scan::random_inputs::<B>(dims, 0, &device);
    // The forward alone: the inputs detached, so the kernel runs without saving states.
    let forward = {
        let inp = inputs.clone();
        let inp = crate::models::scan::ScanInputs {
            x: inp.x.detach(),
            delta: inp.delta.detach(),
            a: inp.a.detach(),
            b_in: inp.b_in.detach(),
            c: inp.c.detach(),
            d: inp.d.detach(),
        };
        median_ms(1, reps, || {
            let y = crate::models::scan::selective_scan(inp.clone(), ScanMode::Fused);
            <B as burn::tensor::backend::Backend>::sync(&device).expect("CUDA sync");
            drop(y);
        })
    };
    // The kernels alone: the forward saving its states, then the backward given ∂y = 1 (the
    // autodiff time above adds the loss's sum over y and the graph's own work).
    let run_layout = choice.layout_for(dims[0] * dims[2], dims[3]);
    let split = icl_lab_kernels::scan::chosen_time_split();
    // What runs the per-channel kernels for this N: our CUDA C++ (split over time) or CubeCL's.
    let code = icl_lab_kernels::scan::channel_code_for(dims[3], icl_lab_kernels::scan::chosen_channel_code());
    let segments = |backward| match code {
        icl_lab_kernels::scan::ChannelCode::Source => split.segments(dims[0] * dims[2], dims[1], backward),
        icl_lab_kernels::scan::ChannelCode::Cubecl => 1,
    };
    let segments = [segments(false), segments(true)];
    // How far ahead our CUDA C++'s walks ask a cache for their inputs (ICL_LAB_SCAN_PREFETCH).
    let prefetch = icl_lab_kernels::scan::chosen_prefetch();
    // State entries a thread in the forward and the backward (ICL_LAB_SCAN_ENTRIES).
    let chosen = icl_lab_kernels::scan::chosen_entries();
    let entries = [chosen.for_scan(false, dims[3]), chosen.for_scan(true, dims[3])];
    // The kernels alone in their plain form, and in Mamba's (Δ raw, y gated by z).
    let (kernels, mamba_form) = {
        use burn::prelude::*;
        use burn::tensor::ops::FloatTensor;
        use icl_lab_kernels::scan::{Scan, ScanKernels};
        type Inner = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
        fn prim<const D: usize>(t: Tensor<B, D>) -> FloatTensor<Inner> {
            t.inner().into_primitive().tensor()
        }
        let inp = inputs;
        let scan = Scan { x: prim(inp.x), delta: prim(inp.delta), a: prim(inp.a), b: prim(inp.b_in), c: prim(inp.c), d: prim(inp.d) };
        let [b, l, e, _] = dims;
        let dy = Tensor::<Inner, 3>::ones([b, l, e], &device).into_primitive().tensor();
        let time_form = |gate: Option<FloatTensor<Inner>>, softplus: bool| {
            median_ms(1, reps, || {
                let (y, saved) = Inner::scan_forward(scan.clone(), gate.clone(), softplus, true, run_layout, split);
                let (grads, dz) = Inner::scan_backward(scan.clone(), gate.clone(), softplus, saved.expect("states saved"), dy.clone(), split);
                <Inner as burn::tensor::backend::Backend>::sync(&device).expect("CUDA sync");
                drop((y, grads, dz));
            })
        };
        // z as Mamba's is: the upper half of rows twice as wide (in_proj's output).
        let wide = Tensor::<Inner, 3>::random([b, l, 2 * e], burn::tensor::Distribution::Default, &device);
        let z = wide.narrow(2, e, e).into_primitive().tensor();
        (time_form(None, false), time_form(Some(z), true))
    };
    let timed_kernel = run_layout.name();
    let tile = icl_lab_kernels::scan::chosen_tile();
    let tiling = match run_layout {
        Layout::PerState => format!(" (cubes of {}, chunks of {})", tile.block, tile.chunk),
        // Our CUDA C++ where it takes the scan, else CubeCL's (ICL_LAB_SCAN_CODE).
        Layout::PerChannel => match code {
            icl_lab_kernels::scan::ChannelCode::Source => {
                format!(" ({code} code, {} and {} state entries a thread, segments of time: {} forward, {} backward; prefetch {prefetch})", entries[0], entries[1], segments[0], segments[1])
            }
            icl_lab_kernels::scan::ChannelCode::Cubecl => format!(" ({code} code)"),
        },
    };
    println!("forward+backward at [b, l, e, n] = {dims:?}, {timed_kernel} kernels{tiling}, median:");
    println!(
        "  kernels              {kernels:>10.3} ms   ({:.1}x the bandwidth floor of {floor_ms:.3} ms at {bandwidth_source} {:.2} TB/s)",
        kernels / floor_ms,
        bandwidth / 1e12
    );
    println!("  kernels, Mamba's form {mamba_form:>9.3} ms   (Δ raw through softplus, y gated by z: {:.2}x the plain form)", mamba_form / kernels);
    println!("  through autodiff     {fused:>10.3} ms   (Σ y as the loss)");
    println!("  fused, forward only  {forward:>10.3} ms   (the model's call, not the kernel alone)");
    let mut tensor_ms = serde_json::Map::new();
    for (name, mode) in modes {
        let ms = time(mode, (reps / 5).max(2));
        println!("  tensor-op {name:<10} {ms:>10.3} ms   (through autodiff; fused is {:.1}x faster)", ms / fused);
        tensor_ms.insert(name, json!(ms));
    }
    report.insert(
        "timing".into(),
        json!({ "shape": dims, "kernel": timed_kernel, "channel_code": code.to_string(), "time_split": split.to_string(), "segments": segments, "prefetch": prefetch.to_string(), "entries_per_thread": entries, "tile": [tile.block, tile.chunk], "kernels_ms": kernels, "kernels_mamba_form_ms": mamba_form, "fused_ms": fused, "fused_forward_ms": forward, "tensor_ms": tensor_ms, "floor_ms": floor_ms, "floor_bytes": scan_floor_bytes(dims), "bandwidth_bytes_per_s": bandwidth }),
    );
    finish_check(report, json, passed)
}

/// One config of the models matrix: linear-regression prompts of `points` (x, y) pairs in
/// `n_dims` dimensions (2·points tokens), batch 64.
pub(super) struct ModelCase {
    pub(super) label: &'static str,
    model: &'static str,
    n_dims: usize,
    points: usize,
}

/// Issue 7's matrix. The 280-token shapes are the sparse-parity sizes, with linear-regression
/// data (d = 10, 140 points), as in `tests/gpu/scan_and_large.sh`.
const MODEL_MATRIX: [ModelCase; 6] = [
    ModelCase { label: "gpt2-e128-l2-t82", model: "arch = \"gpt2\"\nn_embd = 128\nn_layer = 2\nn_head = 8\nn_positions = 101", n_dims: 20, points: 41 },
    ModelCase { label: "mamba-e128-l4-t82", model: "arch = \"mamba\"\nn_embd = 128\nn_layer = 4", n_dims: 20, points: 41 },
    ModelCase { label: "mambaformer-e128-l4-t82", model: "arch = \"mambaformer\"\nn_embd = 128\nn_layer = 4", n_dims: 20, points: 41 },
    ModelCase { label: "gpt2-e256-l12-t280", model: "arch = \"gpt2\"\nn_embd = 256\nn_layer = 12\nn_head = 8\nn_positions = 300", n_dims: 10, points: 140 },
    ModelCase { label: "mamba-e256-l24-t280", model: "arch = \"mamba\"\nn_embd = 256\nn_layer = 24", n_dims: 10, points: 140 },
    ModelCase { label: "mamba-e128-l4-t1024", model: "arch = \"mamba\"\nn_embd = 128\nn_layer = 4", n_dims: 20, points: 512 },
];

impl ModelCase {
    /// The experiment file: fixed prompt length, no evaluation before the end.
    pub(super) fn spec(&self, steps: usize) -> String {
        let (d, p) = (self.n_dims, self.points);
        format!(
            "name = \"bench-{}\"\nseed = 0\n[task]\nkind = \"linear_regression\"\nn_dims = {d}\n[model]\n{}\n\
             [train]\nsteps = {steps}\nbatch_size = 64\nlr = 1e-4\neval_every = 1000000\neval_prompts = 64\nlog_every = {}\n\
             [train.curriculum]\ndims = {{ start = {d}, end = {d} }}\npoints = {{ start = {p}, end = {p} }}\n",
            self.label,
            self.model,
            (steps / 2).max(1)
        )
    }
}

/// GPU memory in use on device 0 (MiB), from nvidia-smi; None without it.
fn gpu_used_mib() -> Option<f64> {
    let out = Command::new("nvidia-smi").args(["--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// Peak resident memory of a live process (MiB), from /proc.
fn host_peak_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn bench_models(device: &str, steps: usize, only: Option<&str>, timeout: u64, json: bool) -> CliResult {
    let exe = std::env::current_exe().map_err(CliError::failed)?;
    let wanted: Option<Vec<&str>> = only.map(|o| o.split(',').map(str::trim).collect());
    if let Some(w) = &wanted {
        if let Some(bad) = w.iter().find(|l| !MODEL_MATRIX.iter().any(|c| c.label == **l)) {
            let labels: Vec<_> = MODEL_MATRIX.iter().map(|c| c.label).collect();
            return Err(CliError::bad_input(format!("--only {bad}: not a config; the configs are {}", labels.join(", "))));
        }
    }
    let tmp = std::env::temp_dir().join(format!("icl-lab-bench-models-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(CliError::failed)?;
    println!("{:<26} {:>10} {:>9} {:>8} {:>14} {:>13} {:>14}", "config", "params", "ms/step", "steps/s", "start→step 1 s", "GPU peak MiB", "host peak MiB");
    let mut rows = Vec::new();
    for case in MODEL_MATRIX.iter().filter(|c| wanted.as_ref().is_none_or(|w| w.contains(&c.label))) {
        let file = tmp.join(format!("{}.toml", case.label));
        std::fs::write(&file, case.spec(steps)).map_err(CliError::failed)?;
        let out_path = tmp.join(format!("{}.json", case.label));
        let out_file = std::fs::File::create(&out_path).map_err(CliError::failed)?;
        let gpu_base = gpu_used_mib();
        let start = Instant::now();
        let mut child = Command::new(&exe)
            .arg("run")
            .arg(&file)
            .args(["--device", device, "--no-store", "--json"])
            .stdout(out_file)
            .stderr(Stdio::null())
            .spawn()
            .map_err(CliError::failed)?;
        let (mut gpu_peak, mut host_peak) = (None::<f64>, None::<f64>);
        let status = wait_or_kill(&mut child, start, timeout, 200, |pid| {
            if let (Some(base), Some(now)) = (gpu_base, gpu_used_mib()) {
                gpu_peak = Some(gpu_peak.unwrap_or(0.0).max(now - base));
            }
            if let Some(h) = host_peak_mib(pid) {
                host_peak = Some(h);
            }
        })?;
        let process_s = start.elapsed().as_secs_f64();
        let result: Option<serde_json::Value> = std::fs::read_to_string(&out_path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let row = match (status, result) {
            (Some(st), Some(r)) if st.success() => {
                let steps_per_s = r["last"]["steps_per_s"].as_f64();
                // The run reports times from the start of training; what came before (process
                // start, CUDA initialisation) is the process time not spent training.
                let (wall, first) = (r["wall_s"].as_f64(), r["first_step_s"].as_f64());
                let start_to_first = wall.zip(first).map(|(w, f)| process_s - w + f);
                json!({
                    "config": case.label, "params": r["params"], "steps": steps, "ms_per_step": steps_per_s.map(|s| 1e3 / s),
                    "steps_per_s": steps_per_s, "start_to_first_step_s": start_to_first, "process_s": process_s,
                    "gpu_peak_mib": gpu_peak, "host_peak_mib": host_peak,
                })
            }
            (None, _) => json!({ "config": case.label, "error": format!("killed after {timeout} s"), "process_s": process_s, "gpu_peak_mib": gpu_peak }),
            (Some(st), _) => json!({ "config": case.label, "error": format!("run failed ({st})"), "process_s": process_s, "gpu_peak_mib": gpu_peak }),
        };
        let num = |k: &str, digits: usize| row[k].as_f64().map_or("-".to_string(), |v| format!("{v:.digits$}"));
        match row["error"].as_str() {
            Some(err) => println!("{:<26} {err}", case.label),
            None => println!(
                "{:<26} {:>10} {:>9} {:>8} {:>14} {:>13} {:>14}",
                case.label,
                row["params"],
                num("ms_per_step", 1),
                num("steps_per_s", 1),
                num("start_to_first_step_s", 1),
                num("gpu_peak_mib", 0),
                num("host_peak_mib", 0)
            ),
        }
        rows.push(row);
    }
    if json {
        println!("{}", json!({ "device": device, "steps": steps, "batch_size": 64, "configs": rows }));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ExitCode::SUCCESS)
}

/// Waits for `child`, calling `tick` with its pid every `poll_ms`; kills it once `timeout`
/// seconds have passed since `start` (then None).
fn wait_or_kill(
    child: &mut std::process::Child,
    start: Instant,
    timeout: u64,
    poll_ms: u64,
    mut tick: impl FnMut(u32),
) -> Result<Option<std::process::ExitStatus>, CliError> {
    loop {
        if let Some(status) = child.try_wait().map_err(CliError::failed)? {
            return Ok(Some(status));
        }
        if start.elapsed().as_secs() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        tick(child.id());
        std::thread::sleep(std::time::Duration::from_millis(poll_ms));
    }
}

/// `--runs 1,4,8`: each a count of concurrent runs, 1 to 64.
/// A comma-separated list of run counts (1 to 64), as option `flag` gave it.
pub(super) fn parse_run_counts(flag: &str, list: &str) -> Result<Vec<usize>, CliError> {
    list.split(',')
        .map(|n| match n.trim().parse::<usize>() {
            Ok(k) if (1..=64).contains(&k) => Ok(k),
            _ => Err(CliError::bad_input(format!("{flag}: {:?} is not a number of runs from 1 to 64", n.trim()))),
        })
        .collect()
}

/// The config of the models matrix labelled `label` (option `--config`).
pub(super) fn model_case(label: &str) -> Result<&'static ModelCase, CliError> {
    MODEL_MATRIX.iter().find(|c| c.label == label).ok_or_else(|| {
        let labels: Vec<_> = MODEL_MATRIX.iter().map(|c| c.label).collect();
        CliError::bad_input(format!("--config {label}: not a config; the configs are {}", labels.join(", ")))
    })
}

fn bench_slots(device: &str, runs: &str, config: &str, steps: usize, members: usize, timeout: u64, json: bool) -> CliResult {
    let counts = parse_run_counts("--runs", runs)?;
    let case = model_case(config)?;
    let exe = std::env::current_exe().map_err(CliError::failed)?;
    let tmp = std::env::temp_dir().join(format!("icl-lab-bench-slots-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(CliError::failed)?;
    println!("{config}, {steps} steps a run, on {device}, up to {members} seed(s) a slot as one model");
    println!("{:>5} {:>18} {:>10} {:>12} {:>8}", "runs", "steps/s per run", "together", "vs one run", "wall s");
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut one_run: Option<f64> = None;
    for &n in &counts {
        let seeds: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let spec = case.spec(steps).replacen("seed = 0", &format!("seeds = [{}]", seeds.join(", ")), 1);
        let file = tmp.join(format!("slots-{n}.toml"));
        std::fs::write(&file, spec).map_err(CliError::failed)?;
        let store = tmp.join(format!("store-{n}"));
        let out_path = tmp.join(format!("slots-{n}.json"));
        let out_file = std::fs::File::create(&out_path).map_err(CliError::failed)?;
        let start = Instant::now();
        let mut child = Command::new(&exe)
            .arg("--store")
            .arg(&store)
            .arg("sweep")
            .arg(&file)
            .args(["--devices", device, "--slots-per-device", &n.div_ceil(members).to_string(), "--members", &members.to_string(), "--json"])
            .stdout(out_file)
            .stderr(Stdio::null())
            .spawn()
            .map_err(CliError::failed)?;
        let status = wait_or_kill(&mut child, start, timeout, 100, |_| {})?;
        let wall = start.elapsed().as_secs_f64();
        let result: Option<serde_json::Value> = std::fs::read_to_string(&out_path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let rates: Vec<f64> = result
            .as_ref()
            .and_then(|r| r["runs"].as_array())
            .map(|runs| runs.iter().filter(|r| r["status"]["state"] == "done").filter_map(|r| r["steady_steps_per_s"].as_f64()).collect())
            .unwrap_or_default();
        let row = match status {
            Some(st) if st.success() && rates.len() == n => {
                let per_run = median(rates.clone());
                let together: f64 = rates.iter().sum();
                if n == 1 {
                    one_run = Some(per_run);
                }
                let vs_one = one_run.map(|o| together / o);
                println!(
                    "{n:>5} {per_run:>18.1} {together:>10.1} {:>12} {wall:>8.1}",
                    vs_one.map_or("-".into(), |v| format!("{v:.2}x"))
                );
                json!({ "runs": n, "steps_per_s_per_run": rates, "median_per_run": per_run, "together": together, "vs_one_run": vs_one, "wall_s": wall })
            }
            None => {
                println!("{n:>5} killed after {timeout} s");
                json!({ "runs": n, "error": format!("killed after {timeout} s"), "wall_s": wall })
            }
            Some(st) => {
                println!("{n:>5} {} of {n} runs done ({st})", rates.len());
                json!({ "runs": n, "error": format!("{} of {n} runs done ({st})", rates.len()), "wall_s": wall })
            }
        };
        rows.push(row);
    }
    if json {
        println!("{}", json!({ "device": device, "config": config, "steps": steps, "rows": rows }));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let failed = rows.iter().any(|r| r.get("error").is_some());
    Ok(if failed { ExitCode::from(super::exit::FAILED) } else { ExitCode::SUCCESS })
}

/// The end of a GPU bench with a `--check`: the report as one JSON line when asked, and the
/// exit code (FAILED when the check did not pass).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub fn finish_check(report: serde_json::Map<String, serde_json::Value>, json: bool, passed: bool) -> CliResult {
    if json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(super::exit::FAILED) })
}

/// The error table of a `--check`: a row per shape with our kernel's largest errors beside a
/// reference form's (for scale), the verdict on ours, and the rows as JSON. Each method gives
/// a line to print.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub struct CheckTable {
    /// The compared values, in the order of a row's errors.
    names: &'static [&'static str],
    /// The JSON key of the reference's errors (`burn_errors`, `tensor_op_errors`).
    other_key: &'static str,
    shape_width: usize,
    tolerance: f64,
    passed: bool,
    rows: Vec<serde_json::Value>,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl CheckTable {
    pub fn new(names: &'static [&'static str], other_key: &'static str, shape_width: usize, tolerance: f64) -> Self {
        CheckTable { names, other_key, shape_width, tolerance, passed: true, rows: Vec::new() }
    }

    /// The column heads: the shape's, ours, then the reference's.
    pub fn header(&self, shape: &str, ours: &[&str], other: &[&str]) -> String {
        let heads = |h: &[&str]| h.iter().map(|c| format!("{c:>9}")).collect::<String>();
        format!("{shape:>w$} {}   {}", heads(ours), heads(other), w = self.shape_width)
    }

    /// One shape's errors, ours and the reference's; ours count towards the verdict.
    pub fn row(&mut self, shape: &[usize], ours: &[f64], other: &[f64]) -> String {
        self.passed &= ours.iter().all(|&e| e <= self.tolerance);
        let cols = |v: &[f64]| v.iter().map(|e| format!("{e:>9.1e}")).collect::<String>();
        let named = |v: &[f64]| self.names.iter().zip(v).map(|(c, e)| (c.to_string(), json!(e))).collect::<serde_json::Map<_, _>>();
        self.rows.push(json!({ "shape": shape, "errors": named(ours), self.other_key: named(other) }));
        format!("{:>w$} {}   {}", format!("{shape:?}"), cols(ours), cols(other), w = self.shape_width)
    }

    pub fn passed(&self) -> bool {
        self.passed
    }

    /// `check: all within …` or `check: FAILED: …`.
    pub fn verdict(&self) -> String {
        let tol = format!("{:.0e}", self.tolerance);
        format!("check: {}", if self.passed { format!("all within {tol}") } else { format!("FAILED: some error above {tol}") })
    }

    /// `{passed, tolerance, shapes: [{shape, errors, <other_key>}]}`.
    pub fn into_json(self) -> serde_json::Value {
        json!({ "passed": self.passed, "tolerance": self.tolerance, "shapes": self.rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_table_lines_verdict_and_json() {
        let mut table = CheckTable::new(&["y", "dx"], "burn_errors", 16, 1e-4);
        assert_eq!(table.header("[b, t, e]", &["y", "dx"], &["burn y", "burn dx"]), "       [b, t, e]         y       dx      burn y  burn dx");
        assert_eq!(table.row(&[1, 1, 32], &[2.0e-6, 0.0], &[3.5e-6, 3.3e-7]), "      [1, 1, 32]    2.0e-6    0.0e0      3.5e-6   3.3e-7");
        assert!(table.passed());
        assert_eq!(table.verdict(), "check: all within 1e-4");
        // The reference's errors never fail the check; ours above the tolerance do.
        table.row(&[2, 3, 64], &[1e-5, 2e-4], &[1.0, 1.0]);
        assert!(!table.passed());
        assert_eq!(table.verdict(), "check: FAILED: some error above 1e-4");
        let json = table.into_json();
        assert_eq!(json["passed"], false);
        assert_eq!(json["shapes"][1]["shape"], json!([2, 3, 64]));
        assert_eq!(json["shapes"][1]["errors"]["dx"], json!(2e-4));
        assert_eq!(json["shapes"][0]["burn_errors"]["y"], json!(3.5e-6));
        assert_eq!(CheckTable::new(&["y"], "x", 4, 2e-3).verdict(), "check: all within 2e-3");
    }

    #[test]
    fn run_counts_parse_and_name_a_bad_entry() {
        assert_eq!(parse_run_counts("--runs", "1, 4,16").ok(), Some(vec![1, 4, 16]));
        for bad in ["0", "1,x", "65", "1,,2"] {
            let Err(e) = parse_run_counts("--runs", bad) else { panic!("{bad} parsed") };
            let e = e.message;
            assert!(e.starts_with("--runs: ") && e.contains("is not a number of runs from 1 to 64"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_matrix_config_is_a_valid_experiment_of_its_prompt_length() {
        for case in &MODEL_MATRIX {
            let spec = ExperimentSpec::from_toml(&case.spec(100)).unwrap_or_else(|e| panic!("{}: {e}", case.label));
            assert_eq!(spec.train.steps, 100);
            assert_eq!(spec.train.curriculum.points.start, case.points, "{}", case.label);
            assert_eq!(spec.train.curriculum.points.end, case.points, "{}", case.label);
        }
        let tokens: Vec<usize> = MODEL_MATRIX.iter().map(|c| 2 * c.points).collect();
        assert_eq!(tokens, [82, 82, 82, 280, 280, 1024]);
    }

    #[test]
    fn scan_shapes_name_what_is_wrong() {
        assert_eq!(parse_scan_shape("64, 1024,512,16").ok(), Some([64, 1024, 512, 16]));
        for (bad, why) in [("1,2", "expected four sizes b,l,e,n"), ("0,5,4,4", "sizes must be positive"), ("4,5,0,4", "sizes must be positive"), ("70000,2,4,4", "batch 70000 is past the kernels' 65535")] {
            let Err(e) = parse_scan_shape(bad) else { panic!("{bad} parsed") };
            assert_eq!(e.message, format!("--shape {bad}: {why}"));
        }
    }

    #[test]
    fn the_scan_floor_counts_each_tensor_once() {
        // (64, 1024, 512, 16): 8 [b, l, e] and 6 [b, l, n] tensors, plus A, dA, D, dD.
        let bytes = scan_floor_bytes([64, 1024, 512, 16]);
        assert_eq!(bytes, 4.0 * (8.0 * 33_554_432.0 + 6.0 * 1_048_576.0 + 3.0 * 8192.0 + 3.0 * 512.0));
        assert!((bytes / H200_BYTES_PER_S * 1e3 - 0.229).abs() < 0.001);
    }
}

//! `icl-lab bench host` (built with `--features emulator`): the host's share of a training
//! step on the CUDA code path, measured with no GPU. The step runs on the CPU emulator of the
//! GPU (`kernels/emu`) with every kernel compiled as for CUDA and recorded, not run: what is
//! left is burn's graph and autodiff, burn-fusion, CubeCL's client and device thread, and our
//! kernels' launches, less the CUDA driver's own launch cost (a few µs a launch on a GPU
//! machine). A small model's step on a GPU is bound by this work (docs/performance.md), so
//! it is what to shrink for the small configs' 2x PyTorch goal; the launches a step, which it
//! also counts (`--kernels`: by kernel), are exact. CubeCL's device channel spin-waits, so
//! the times need free cores (a run keeps about three busy): on a 2-core machine they are
//! mostly spinning. Data the kernels would
//! compute is never computed (reads give zeros), so losses here mean nothing.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::bench::{model_case, parse_run_counts};
use super::{CliError, CliResult};
use crate::runtime::EmuBackend;
use crate::spec::ExperimentSpec;
use crate::train::{self, TrainControl, TrainEvent};

#[derive(Args, Debug)]
pub struct HostArgs {
    /// The config (a label of `bench models`).
    #[arg(long, default_value = "gpt2-e128-l2-t82")]
    config: String,
    /// The numbers of members (seeds as one stacked model) to measure, comma-separated.
    #[arg(long, default_value = "1")]
    members: String,
    /// Steps per measurement; the rate is taken over the second half.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Also list the launches a step of each kernel (by entry point), most first.
    #[arg(long)]
    kernels: bool,
    #[arg(long)]
    json: bool,
}

/// One measurement over the second half: host ms a step, kernel launches a step, and those
/// a step of each kernel (by entry point), most first.
struct HostStep {
    ms: f64,
    launches: f64,
    by_kernel: Vec<(String, f64)>,
}

pub fn bench_host(args: HostArgs) -> CliResult {
    let counts = parse_run_counts("--members", &args.members)?;
    let case = model_case(&args.config)?;
    if args.steps < 4 {
        return Err(CliError::bad_input(format!("--steps {}: at least 4 (the rate is taken over the second half)", args.steps)));
    }
    let base = ExperimentSpec::from_toml(&case.spec(args.steps)).map_err(CliError::failed)?;
    icl_lab_emu::set_execute(false);
    println!("{}, {} steps, host work only (CUDA code path on the emulator, kernels recorded, not run)", case.label, args.steps);
    println!("{:>7} {:>14} {:>16}", "members", "host ms/step", "launches/step");
    let mut rows = Vec::new();
    for &k in &counts {
        let m = measure(&base, k)?;
        println!("{k:>7} {:>14.3} {:>16.1}", m.ms, m.launches);
        if args.kernels {
            for (name, n) in &m.by_kernel {
                println!("{:>24.1}  {name}", n);
            }
        }
        let by_kernel: serde_json::Map<String, serde_json::Value> = m.by_kernel.iter().map(|(name, n)| (name.clone(), json!(n))).collect();
        rows.push(json!({ "members": k, "host_ms_per_step": m.ms, "launches_per_step": m.launches, "launches_per_step_by_kernel": by_kernel }));
    }
    if args.json {
        println!("{}", json!({ "config": case.label, "steps": args.steps, "rows": rows }));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn measure(base: &ExperimentSpec, k: usize) -> Result<HostStep, CliError> {
    let specs: Vec<ExperimentSpec> = (0..k as u64).map(|seed| ExperimentSpec { seed, ..base.clone() }).collect();
    let never = AtomicBool::new(false);
    let ctls: Vec<TrainControl> = (0..k).map(|_| TrainControl::new(&never)).collect();
    let (half, last) = (base.train.steps / 2, base.train.steps);
    let mut marks: Vec<(Instant, u64, std::collections::HashMap<String, u64>)> = Vec::new();
    train::train_members::<EmuBackend>(&specs, &icl_lab_emu::EmuDevice, &ctls, &mut |member, event| {
        if let (0, TrainEvent::Progress { step }) = (member, event) {
            if step == half || step == last {
                // Launches are counted on CubeCL's device thread: wait for it.
                let _ = <EmuBackend as burn::tensor::backend::Backend>::sync(&icl_lab_emu::EmuDevice);
                marks.push((Instant::now(), icl_lab_emu::launches(), icl_lab_emu::launches_by_kernel()));
            }
        }
    });
    let [(t0, l0, ref k0), (t1, l1, ref k1)] = marks[..] else {
        return Err(CliError::failed(format!("{k} members: the run ended before step {last}")));
    };
    let steps = (last - half) as f64;
    let mut by_kernel: Vec<(String, f64)> =
        k1.iter().map(|(name, &n)| (name.clone(), (n - k0.get(name).copied().unwrap_or(0)) as f64 / steps)).filter(|(_, n)| *n > 0.0).collect();
    by_kernel.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(HostStep { ms: (t1 - t0).as_secs_f64() * 1e3 / steps, launches: (l1 - l0) as f64 / steps, by_kernel })
}

//! `icl-lab bench members`: K seeds of one `bench models` config trained as the members of one
//! stacked model (`models::members`) in this process, for each K: the group's step time, each
//! member's steps/s, and the members' steps/s together against one run's. Issue 7 asks for 16
//! runs on one GPU at 8x one run's rate; separate processes reach about 1x (`bench slots`).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::bench::{model_case, parse_run_counts};
use super::{CliError, CliResult};
use crate::runtime::{self, Device};
use crate::spec::{DeviceSpec, ExperimentSpec};
use crate::train::{Outcome, TrainControl};

#[derive(Args, Debug)]
pub struct MembersArgs {
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cuda")]
    device: DeviceSpec,
    /// The numbers of members to measure, comma-separated.
    #[arg(long, default_value = "1,4,16")]
    members: String,
    /// The config (a label of `bench models`).
    #[arg(long, default_value = "gpt2-e128-l2-t82")]
    config: String,
    /// Steps per group; steps/s is the rate over the second half.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    #[arg(long)]
    json: bool,
}

pub fn bench_members(args: MembersArgs) -> CliResult {
    let counts = parse_run_counts("--members", &args.members)?;
    let case = model_case(&args.config)?;
    if args.steps < 2 {
        return Err(CliError::bad_input(format!("--steps {}: at least 2 (the rate is taken over the second half)", args.steps)));
    }
    let (device, fallback) = runtime::resolve(args.device).map_err(CliError::bad_input)?;
    if let Some(why) = fallback {
        eprintln!("note: training on the CPU ({why})");
    }
    let base = ExperimentSpec::from_toml(&case.spec(args.steps)).map_err(CliError::failed)?;
    println!("{}, {} steps, on {device}", case.label, args.steps);
    println!("{:>7} {:>13} {:>20} {:>10} {:>12} {:>8}", "members", "ms/step", "steps/s per member", "together", "vs one run", "wall s");
    let mut rows = Vec::new();
    let mut one_run: Option<f64> = None;
    for &k in &counts {
        let row = measure(&base, k, device)?;
        let rate = row["steps_per_s"].as_f64().unwrap_or(f64::NAN);
        let together = rate * k as f64;
        if k == 1 {
            one_run = Some(together);
        }
        let ratio = one_run.map(|one| together / one);
        println!(
            "{k:>7} {:>13.2} {rate:>20.1} {together:>10.1} {:>12} {:>8.1}",
            1e3 / rate,
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            row["wall_s"].as_f64().unwrap_or(f64::NAN)
        );
        rows.push(json!({ "members": k, "ms_per_step": 1e3 / rate, "steps_per_s_per_member": rate, "steps_per_s_together": together, "vs_one_run": ratio, "wall_s": row["wall_s"], "first_step_s": row["first_step_s"] }));
    }
    if args.json {
        println!("{}", json!({ "config": case.label, "device": device.to_string(), "steps": args.steps, "rows": rows }));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// One group of `k` members (seeds 0..k) of `base`: its steady rate (steps/s over the second
/// half), wall and first-step seconds.
fn measure(base: &ExperimentSpec, k: usize, device: Device) -> Result<serde_json::Value, CliError> {
    let specs: Vec<ExperimentSpec> = (0..k as u64).map(|seed| ExperimentSpec { seed, ..base.clone() }).collect();
    let never = AtomicBool::new(false);
    let ctls: Vec<TrainControl> = (0..k).map(|_| TrainControl::new(&never)).collect();
    let start = Instant::now();
    let summaries = runtime::train_members_on(device, &specs, &ctls, &mut |_, _| {}).map_err(CliError::failed)?;
    let wall = start.elapsed().as_secs_f64();
    let first = &summaries[0];
    if let Some(bad) = summaries.iter().find(|s| s.outcome != Outcome::Done) {
        return Err(CliError::failed(format!("{k} members: a member ended {:?} after {} steps", bad.outcome, bad.steps)));
    }
    let rate = first.last.as_ref().map_or(f64::NAN, |m| m.steps_per_s);
    Ok(json!({ "steps_per_s": rate, "wall_s": wall, "first_step_s": first.first_step_s }))
}

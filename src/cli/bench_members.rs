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
use crate::train::{Outcome, TrainControl, TrainEvent};

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
    println!(
        "{:>7} {:>13} {:>20} {:>10} {:>12} {:>8} {:>15}",
        "members", "ms/step", "steps/s per member", "together", "vs one run", "wall s", "seed 0 loss Δ"
    );
    let mut rows = Vec::new();
    let mut one_run: Option<(f64, Vec<f32>)> = None;
    for &k in &counts {
        let group = measure(&base, k, device)?;
        let together = group.steps_per_s * k as f64;
        if k == 1 {
            one_run = Some((together, group.seed0_losses.clone()));
        }
        let ratio = one_run.as_ref().map(|(one, _)| together / one);
        // Member 0 has seed 0, as the lone run: its logged losses should match the lone run's up
        // to rounding (TF32 matmuls, another summation order), a check that the stacked paths
        // train what the plain ones do on this device.
        let loss_delta = one_run.as_ref().map(|(_, lone)| max_relative_gap(lone, &group.seed0_losses));
        println!(
            "{k:>7} {:>13.2} {:>20.1} {together:>10.1} {:>12} {:>8.1} {:>15}",
            1e3 / group.steps_per_s,
            group.steps_per_s,
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            group.wall_s,
            loss_delta.map_or("-".into(), |d| format!("{d:.1e}")),
        );
        rows.push(json!({
            "members": k, "ms_per_step": 1e3 / group.steps_per_s, "steps_per_s_per_member": group.steps_per_s,
            "steps_per_s_together": together, "vs_one_run": ratio, "wall_s": group.wall_s,
            "first_step_s": group.first_step_s, "seed0_losses": group.seed0_losses, "seed0_loss_rel_gap": loss_delta,
        }));
    }
    if args.json {
        println!("{}", json!({ "config": case.label, "device": device.to_string(), "steps": args.steps, "rows": rows }));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What one group of members did.
struct Group {
    /// Steady rate: steps/s over the second half.
    steps_per_s: f64,
    wall_s: f64,
    first_step_s: Option<f64>,
    /// Member 0's (seed 0's) logged losses, in step order.
    seed0_losses: Vec<f32>,
}

/// One group of `k` members (seeds 0..k) of `base`.
fn measure(base: &ExperimentSpec, k: usize, device: Device) -> Result<Group, CliError> {
    let specs: Vec<ExperimentSpec> = (0..k as u64).map(|seed| ExperimentSpec { seed, ..base.clone() }).collect();
    let never = AtomicBool::new(false);
    let ctls: Vec<TrainControl> = (0..k).map(|_| TrainControl::new(&never)).collect();
    let mut seed0_losses = Vec::new();
    let start = Instant::now();
    let summaries = runtime::train_members_on(device, &specs, &ctls, &mut |member, event| {
        if let (0, TrainEvent::Step(m)) = (member, event) {
            seed0_losses.push(m.loss);
        }
    })
    .map_err(CliError::failed)?;
    let wall_s = start.elapsed().as_secs_f64();
    let first = &summaries[0];
    if let Some(bad) = summaries.iter().find(|s| s.outcome != Outcome::Done) {
        return Err(CliError::failed(format!("{k} members: a member ended {:?} after {} steps", bad.outcome, bad.steps)));
    }
    let steps_per_s = first.last.as_ref().map_or(f64::NAN, |m| m.steps_per_s);
    Ok(Group { steps_per_s, wall_s, first_step_s: first.first_step_s, seed0_losses })
}

/// The largest |a - b| / |a| over paired losses (NaN when the counts differ).
fn max_relative_gap(lone: &[f32], member: &[f32]) -> f64 {
    if lone.len() != member.len() || lone.is_empty() {
        return f64::NAN;
    }
    lone.iter().zip(member).map(|(&a, &b)| ((a - b).abs() / a.abs().max(f32::MIN_POSITIVE)) as f64).fold(0.0, f64::max)
}

//! Rendering results: the ICL curve table and JSON documents.

pub mod marks;
pub mod matrix;
pub mod plot;
pub mod runs;

use serde_json::{json, Value};

use crate::runtime::Device;
use crate::spec::ExperimentSpec;
use crate::train::{Curve, EvalCurve, Outcome, RunSummary};

/// The end-of-run text: a summary line and the ICL curve table.
pub fn run_text(spec: &ExperimentSpec, device: Device, s: &RunSummary) -> String {
    let mut out = String::new();
    let status = match &s.outcome {
        Outcome::Done => "done".to_string(),
        Outcome::Interrupted => "interrupted".to_string(),
        Outcome::Diverged { loss } => format!("diverged (loss {loss})"),
    };
    let rate = s.last.as_ref().map_or(0.0, |m| m.step as f64 / m.wall_s.max(1e-9));
    out.push_str(&format!(
        "{}: {status} after {} steps on {device} in {:.1}s ({:.1} steps/s, first step after {:.1}s); final loss {}\n",
        spec.name,
        s.steps,
        s.wall_s,
        rate,
        s.first_step_s.unwrap_or(s.setup_s),
        s.last.as_ref().map_or("-".into(), |m| format!("{:.4}", m.loss)),
    ));
    if let Some(curve) = &s.final_eval {
        out.push('\n');
        out.push_str(&curve_table(curve));
    }
    out
}

/// Per-position errors of the model, its variants and each baseline; positions no prompt
/// scored (MQAR keys never asked for) are left out.
pub fn curve_table(c: &EvalCurve) -> String {
    let metric = if c.metric.is_empty() { format!("squared error / {}", c.scale) } else { c.metric.clone() };
    let mut out = format!(
        "ICL curve at step {}: {metric} over {} prompts (90% CI of the model in brackets); summary {}\n",
        c.step,
        c.prompts,
        c.final_error().map_or("-".into(), |e| format!("{e:.4}")),
    );
    let others: Vec<&Curve> = c.variants.iter().chain(&c.baselines).collect();
    out.push_str(&format!("{:>8}  {:>24}", "position", "model"));
    for o in &others {
        out.push_str(&format!("  {:>13}", o.name));
    }
    out.push('\n');
    let m = &c.model;
    for i in (0..m.mean.len()).filter(|&i| m.mean[i].is_finite()) {
        out.push_str(&format!("{i:>8}  {:>8.4} [{:>6.4}, {:>6.4}]", m.mean[i], m.ci_low[i], m.ci_high[i]));
        for o in &others {
            let v = o.mean.get(i).copied().unwrap_or(f32::NAN);
            if v.is_finite() {
                out.push_str(&format!("  {v:>13.4}"));
            } else {
                out.push_str(&format!("  {:>13}", "-"));
            }
        }
        out.push('\n');
    }
    out
}

/// The JSON form of a finished run (`icl-lab run --json`).
pub fn run_json(spec: &ExperimentSpec, device: Device, s: &RunSummary) -> Value {
    json!({
        "name": spec.name,
        "task": spec.task.kind(),
        "arch": spec.model.arch(),
        "device": device.to_string(),
        "seed": spec.seed,
        "spec": spec,
        "outcome": s.outcome,
        "steps": s.steps,
        "params": s.stats.params,
        "flops_per_token": s.stats.flops_per_token,
        "setup_s": s.setup_s,
        "first_step_s": s.first_step_s,
        "wall_s": s.wall_s,
        "last": s.last,
        "final_eval": s.final_eval,
    })
}

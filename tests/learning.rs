//! A tiny GPT-2 really learns linear regression in context on the CPU (under a minute):
//! its error with 10 examples beats the zero predictor by far and heads for least squares.

use std::sync::atomic::AtomicBool;

use icl_lab::runtime::{train_on, Device};
use icl_lab::spec::ExperimentSpec;
use icl_lab::train::Outcome;

#[test]
fn tiny_gpt2_learns_linear_regression_in_context() {
    let spec = ExperimentSpec::from_toml(include_str!("../experiments/quick/linear_regression.toml")).unwrap();
    let summary = train_on(Device::Cpu, &spec, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(summary.outcome, Outcome::Done);
    let curve = summary.final_eval.expect("a final evaluation");
    let last = curve.model.mean.len() - 1;
    let model = curve.model.mean[last];
    let zero = curve.baseline("zero").unwrap().mean[last];
    let ls = curve.baseline("least_squares").unwrap().mean[last];
    eprintln!("error at {last} examples: model {model:.4}, zero {zero:.4}, least squares {ls:.6}");
    assert!((0.7..1.3).contains(&zero), "zero predictor should score ~1, got {zero}");
    assert!(model < 0.5, "model error {model} not below 0.5");
    // With no examples nothing can be learned: the model is near the zero predictor there.
    assert!(curve.model.mean[0] > 0.5);
    // More examples help.
    assert!(curve.model.mean[last] < curve.model.mean[2]);
}

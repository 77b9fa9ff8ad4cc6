//! `icl-lab bench adam`: the fused optimiser step (global-norm clipping + Adam, one
//! operation) against burn's tensor-op form: `--check` compares them first, then each form's
//! step time on GPT-2 e256 L12's parameters.

use clap::Args;

use super::CliResult;

#[derive(Args, Debug)]
pub struct AdamArgs {
    /// First compare the forms' steps on a small GPT-2, each from the same weights, gradients
    /// and state (fails when a parameter or the norm differs by more than 1e-4).
    #[arg(long)]
    check: bool,
    /// Timed steps of each form (the median is reported).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    #[arg(long)]
    json: bool,
}

#[cfg(not(feature = "cuda"))]
pub fn bench_adam(_args: AdamArgs) -> CliResult {
    Err(super::CliError::failed("bench adam: this binary was built without the `cuda` feature"))
}

#[cfg(feature = "cuda")]
pub fn bench_adam(args: AdamArgs) -> CliResult {
    use std::time::Instant;

    use burn::optim::GradientsParams;
    use burn::prelude::*;
    use serde_json::json;

    use crate::models::IclModel;
    use crate::spec::ModelSpec;
    use crate::train::optim::{compare_forms, TrainOptim};
    type B = crate::runtime::CudaBackend;

    let device = super::bench::first_gpu("bench adam")?;
    let mut report = serde_json::Map::new();
    let mut passed = true;
    if args.check {
        println!("fused step against burn's from the same state (small GPT-2, clipping active at step 1, states passed between the forms):");
        println!("{:>8} {:>6} {:>12} {:>12}", "members", "step", "params", "norm");
        let mut rows = Vec::new();
        // Three seeds as one stacked model: each clipped by its own norm (some clipped, some not).
        for members in [1, 3] {
            for (i, d) in compare_forms::<B>(&device, 4, members).iter().enumerate() {
                println!("{:>8} {:>6} {:>12.1e} {:>12.1e}", members, i + 1, d.params, d.norm);
                passed &= d.params <= 1e-4 && d.norm <= 1e-4;
                rows.push(json!({ "members": members, "step": i + 1, "params": d.params, "norm": d.norm }));
            }
        }
        println!("check: {}", if passed { "all within 1e-4" } else { "FAILED: some difference above 1e-4" });
        report.insert("check".into(), json!({ "passed": passed, "steps": rows }));
    }

    let spec = ModelSpec::Gpt2 { n_embd: 256, n_layer: 12, n_head: 8, n_positions: 300 };
    let model = IclModel::<B>::new(&spec, 11, 1, 0, &device);
    let x = Tensor::<B, 3>::random([64, 280, 11], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let sync = || <B as burn::tensor::backend::Backend>::sync(&device).expect("CUDA sync");
    let time = |fused: bool| -> f64 {
        let mut optim = TrainOptim::<B>::with_fused(fused);
        let mut model = model.clone();
        let mut reps = Vec::new();
        for rep in 0..args.reps.max(1) + 2 {
            let grads = GradientsParams::from_grads(model.forward(x.clone()).powf_scalar(2.0).mean().backward(), &model);
            sync();
            let start = Instant::now();
            let (next, norm) = optim.step(1e-4, model, grads, 1.0);
            model = next;
            drop(norm);
            sync();
            if rep >= 2 {
                reps.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        super::bench::median(reps)
    };
    let (fused, tensor) = (time(true), time(false));
    println!("optimiser step on GPT-2 e256 L12's parameters, median: fused {fused:.3} ms, burn's {tensor:.3} ms ({:.1}x)", tensor / fused);
    report.insert("timing".into(), json!({ "fused_ms": fused, "tensor_ms": tensor }));
    super::bench::finish_check(report, args.json, passed)
}

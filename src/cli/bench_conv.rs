//! `icl-lab bench conv`: the fused CUDA causal depthwise conv1d (Mamba's) against the tensor
//! ops it replaces (errors with `--check`, then forward+backward times).

use clap::Args;

use super::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct ConvArgs {
    /// First compare the fused forward and gradients with the tensor-op conv in f64 on the
    /// CPU on several shapes (fails when any relative error exceeds 1e-4).
    #[arg(long)]
    check: bool,
    /// Timed repetitions of each form (the median is reported).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// The timed shape, `b,l,c` (default: Mamba e128's conv on 82 tokens, batch 64).
    #[arg(long, default_value = "64,82,256")]
    shape: String,
    /// Filter taps (Mamba's d_conv).
    #[arg(long, default_value_t = 4)]
    taps: usize,
    #[arg(long)]
    json: bool,
}

/// `b,l,c` and a tap count the kernels take.
fn parse_shape(text: &str, taps: usize) -> Result<[usize; 3], CliError> {
    let dims: [usize; 3] = super::bench::parse_sizes(text, "b,l,c")?;
    if dims.contains(&0) {
        return Err(CliError::bad_input(format!("--shape {text}: sizes must be positive")));
    }
    if !icl_lab_kernels::conv::supports_width(taps) {
        return Err(CliError::bad_input(format!("--taps {taps}: no kernel for it (one of {:?})", icl_lab_kernels::conv::WIDTHS)));
    }
    Ok(dims)
}

#[cfg(not(feature = "cuda"))]
pub fn bench_conv(args: ConvArgs) -> CliResult {
    parse_shape(&args.shape, args.taps)?;
    Err(CliError::failed("bench conv: this binary was built without the `cuda` feature"))
}

#[cfg(feature = "cuda")]
pub fn bench_conv(args: ConvArgs) -> CliResult {
    use burn::prelude::*;
    use serde_json::json;

    use crate::models::mamba::{compare_causal_conv, CausalConv1d, CONV_CHECK_SHAPES, CONV_COMPARED};
    type B = crate::runtime::CudaBackend;

    let dims @ [b, l, c] = parse_shape(&args.shape, args.taps)?;
    let device = super::bench::first_gpu("bench conv")?;
    let mut report = serde_json::Map::new();

    let mut passed = true;
    if args.check {
        println!("against the tensor-op conv in f64 on the CPU, max relative error (members x [b, l, c], taps):");
        let mut table = super::bench::CheckTable::new(&CONV_COMPARED, "tensor_op_errors", 20, 1e-4);
        println!("{}", table.header("[K, b, l, c, k]", &CONV_COMPARED, &["ops y", "ops dx", "ops dw", "ops db"]));
        for (seed, (members, dims, k)) in CONV_CHECK_SHAPES.into_iter().enumerate() {
            let fused = compare_causal_conv::<B>(members, dims, k, seed as u64, &device, true);
            let tensor = compare_causal_conv::<B>(members, dims, k, seed as u64, &device, false);
            println!("{}", table.row(&[members, dims[0], dims[1], dims[2], k], &fused, &tensor));
        }
        println!("{}", table.verdict());
        passed = table.passed();
        report.insert("check".into(), table.into_json());
    }

    let sync = || <B as burn::tensor::backend::Backend>::sync(&device).expect("CUDA sync");
    let mut init = crate::models::init::Init::<B>::new(0, &device);
    let conv = CausalConv1d::new(&mut init, c, args.taps);
    let x = Tensor::<B, 3>::random([b, l, c], burn::tensor::Distribution::Uniform(-2.0, 2.0), &device);
    let proj = Tensor::<B, 3>::ones([b, l, c], &device);
    let time = |fused: bool| -> f64 {
        super::bench::median_ms(2, args.reps, || {
            let grads = (conv.forward_with(x.clone().require_grad(), fused) * proj.clone()).sum().backward();
            sync();
            drop(grads);
        })
    };
    let (fused, tensor) = (time(true), time(false));
    println!("causal conv ({} taps) forward+backward at [b, l, c] = {dims:?}, median: fused {fused:.3} ms, tensor ops {tensor:.3} ms ({:.1}x)", args.taps, tensor / fused);
    report.insert("timing".into(), json!({ "shape": dims, "taps": args.taps, "fused_ms": fused, "tensor_ops_ms": tensor }));
    super::bench::finish_check(report, args.json, passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_taps_must_have_a_kernel() {
        assert_eq!(parse_shape("64, 82, 256", 4).unwrap(), [64, 82, 256]);
        for (bad, taps, names) in [("64,82", 4, "--shape"), ("0,82,256", 4, "--shape"), ("x,y,z", 4, "--shape"), ("64,82,256", 7, "--taps 7")] {
            let Err(why) = parse_shape(bad, taps) else { panic!("{bad}, {taps} taps was accepted") };
            assert_eq!(why.code, crate::cli::exit::BAD_INPUT, "{bad}");
            assert!(why.message.contains(names), "{bad}: {}", why.message);
        }
    }
}

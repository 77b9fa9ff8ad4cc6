//! `icl-lab bench layer-norm`: the fused CUDA LayerNorm against burn's (errors with
//! `--check`, then forward+backward times).

use clap::Args;

use super::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct LayerNormArgs {
    /// First compare the fused forward and gradients with burn's LayerNorm in f64 on the CPU
    /// on several shapes (fails when any relative error exceeds 1e-4).
    #[arg(long)]
    check: bool,
    /// Timed repetitions of each form (the median is reported).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// The timed shape, `b,t,e` (default: GPT-2 e256 on 280 tokens, batch 64).
    #[arg(long, default_value = "64,280,256")]
    shape: String,
    #[arg(long)]
    json: bool,
}

/// `b,t,e` with a width the kernels take.
fn parse_shape(text: &str) -> Result<[usize; 3], CliError> {
    let bad = |why: &str| CliError::bad_input(format!("--shape {text}: {why}"));
    let dims: [usize; 3] = super::bench::parse_sizes(text, "b,t,e")?;
    if dims.contains(&0) {
        return Err(bad("sizes must be positive"));
    }
    if !icl_lab_kernels::layer_norm::supports_width(dims[2]) {
        return Err(bad(&format!("width e = {} has no kernel (a multiple of 32 up to 1,024)", dims[2])));
    }
    Ok(dims)
}

#[cfg(not(feature = "cuda"))]
pub fn bench_layer_norm(args: LayerNormArgs) -> CliResult {
    parse_shape(&args.shape)?;
    Err(CliError::failed("bench layer-norm: this binary was built without the `cuda` feature"))
}

#[cfg(feature = "cuda")]
pub fn bench_layer_norm(args: LayerNormArgs) -> CliResult {
    use burn::prelude::*;
    use serde_json::json;

    use crate::models::norm::{compare_layer_norm, layer_norm, CHECK_SHAPES, COMPARED, STACKED_CHECK_SHAPES};
    type B = crate::runtime::CudaBackend;

    let dims @ [b, t, e] = parse_shape(&args.shape)?;
    let device = super::bench::first_gpu("bench layer-norm")?;
    let mut report = serde_json::Map::new();

    let mut passed = true;
    if args.check {
        println!("against burn's LayerNorm in f64 on the CPU, max relative error:");
        let mut table = super::bench::CheckTable::new(&COMPARED, "burn_errors", 16, 1e-4);
        let burn_heads = COMPARED.map(|c| format!("burn {c}"));
        println!("{}", table.header("[b, t, e]", &COMPARED, &burn_heads.each_ref().map(String::as_str)));
        for (seed, dims) in CHECK_SHAPES.into_iter().enumerate() {
            let fused = compare_layer_norm::<B>(1, dims, seed as u64, &device, true);
            let burn = compare_layer_norm::<B>(1, dims, seed as u64, &device, false);
            println!("{}", table.row(&dims, &fused, &burn));
        }
        // Stacked models' norms (models::members): each member's γ and β for its rows.
        let ks: Vec<String> = STACKED_CHECK_SHAPES.iter().map(|(k, _)| k.to_string()).collect();
        println!("stacked, [K·b, t, e] with K = {} members:", ks.join(", "));
        for (seed, (members, dims)) in STACKED_CHECK_SHAPES.into_iter().enumerate() {
            let stacked = [members * dims[0], dims[1], dims[2]];
            let fused = compare_layer_norm::<B>(members, dims, seed as u64, &device, true);
            let burn = compare_layer_norm::<B>(members, dims, seed as u64, &device, false);
            println!("{}", table.row(&stacked, &fused, &burn));
        }
        println!("{}", table.verdict());
        passed = table.passed();
        report.insert("check".into(), table.into_json());
    }

    let sync = || <B as burn::tensor::backend::Backend>::sync(&device).expect("CUDA sync");
    let ln = crate::models::init::Init::<B>::new(0, &device).layer_norm(e);
    let x = Tensor::<B, 3>::random([b, t, e], burn::tensor::Distribution::Uniform(-2.0, 2.0), &device);
    let proj = Tensor::<B, 3>::ones([b, t, e], &device);
    let time = |fused: bool| -> f64 {
        super::bench::median_ms(2, args.reps, || {
            let grads = (layer_norm(&ln, x.clone().require_grad(), fused) * proj.clone()).sum().backward();
            sync();
            drop(grads);
        })
    };
    let (fused, burn) = (time(true), time(false));
    println!("layer norm forward+backward at [b, t, e] = {dims:?}, median: fused {fused:.3} ms, burn's {burn:.3} ms ({:.1}x)", burn / fused);
    report.insert("timing".into(), json!({ "shape": dims, "fused_ms": fused, "burn_ms": burn }));
    super::bench::finish_check(report, args.json, passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_must_have_a_kernel_width() {
        assert_eq!(parse_shape("64, 280, 256").unwrap(), [64, 280, 256]);
        for bad in ["64,280", "64,280,100", "0,280,256", "64,280,2048", "x,y,z"] {
            let Err(why) = parse_shape(bad) else { panic!("{bad} was accepted") };
            assert_eq!(why.code, crate::cli::exit::BAD_INPUT, "{bad}");
            assert!(why.message.contains(&format!("--shape {bad}")), "{bad}: {}", why.message);
        }
    }
}

//! `icl-lab bench attention`: the fused CUDA causal attention against the tensor-op form
//! (errors with `--check`, then forward+backward and forward-only times).

use clap::Args;

use super::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct AttentionArgs {
    /// First compare the fused forward and gradient with the tensor-op attention in f64 on the
    /// CPU on several shapes (fails when any relative error exceeds 1e-4).
    #[arg(long)]
    check: bool,
    /// Timed repetitions of each form (the median is reported).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// The timed shape, `b,t,e,heads` (default: GPT-2 e256 on 280 tokens, batch 64).
    #[arg(long, default_value = "64,280,256,8")]
    shape: String,
    #[arg(long)]
    json: bool,
}

/// `b,t,e,heads` with heads dividing e into a head size the kernels take.
fn parse_shape(text: &str) -> Result<[usize; 4], CliError> {
    let bad = |why: &str| CliError::bad_input(format!("--shape {text}: {why}"));
    let dims: [usize; 4] = super::bench::parse_sizes(text, "b,t,e,heads")?;
    let [b, t, e, h] = dims;
    if b == 0 || t == 0 || h == 0 || e % h != 0 {
        return Err(bad("sizes must be positive and heads must divide e"));
    }
    if !icl_lab_kernels::attention::supports_head_size(e / h) {
        return Err(bad(&format!("head size e / heads = {} has no kernel (one of {:?})", e / h, icl_lab_kernels::attention::HEAD_SIZES)));
    }
    Ok(dims)
}

#[cfg(not(feature = "cuda"))]
pub fn bench_attention(args: AttentionArgs) -> CliResult {
    parse_shape(&args.shape)?;
    Err(CliError::failed("bench attention: this binary was built without the `cuda` feature"))
}

#[cfg(feature = "cuda")]
pub fn bench_attention(args: AttentionArgs) -> CliResult {
    use burn::prelude::*;
    use serde_json::json;

    use crate::models::attention::{causal_attention, compare_attention, AttentionMode, CHECK_SHAPES, COMPARED};
    type B = crate::runtime::CudaBackend;

    let dims @ [b, t, e, heads] = parse_shape(&args.shape)?;
    let device = super::bench::first_gpu("bench attention")?;
    let mut report = serde_json::Map::new();

    let mut passed = true;
    if args.check {
        println!("against tensor-op attention in f64 on the CPU, max relative error:");
        let mut table = super::bench::CheckTable::new(&COMPARED, "tensor_op_errors", 22, 1e-4);
        println!("{}", table.header("[b, t, e, heads]", &["fused y", "dqkv"], &["tensor y", "dqkv"]));
        for (seed, dims) in CHECK_SHAPES.into_iter().enumerate() {
            let fused = compare_attention::<B>(dims, seed as u64, &device, AttentionMode::Fused);
            // The tensor-op form on the same GPU, for scale: its matmuls round to TF32.
            let tensor = compare_attention::<B>(dims, seed as u64, &device, AttentionMode::Tensor);
            println!("{}", table.row(&dims, &fused, &tensor));
        }
        println!("{}", table.verdict());
        passed = table.passed();
        report.insert("check".into(), table.into_json());
    }

    let sync = || <B as burn::tensor::backend::Backend>::sync(&device).expect("CUDA sync");
    let qkv = Tensor::<B, 3>::random([b, t, 3 * e], burn::tensor::Distribution::Uniform(-2.0, 2.0), &device);
    let proj = Tensor::<B, 3>::ones([b, t, e], &device);
    // Milliseconds, median of `reps` after two warm-up calls; with `backward`, of Σ y ⊙ proj.
    let time = |mode: AttentionMode, backward: bool| -> f64 {
        super::bench::median_ms(2, args.reps, || {
            if backward {
                let x = qkv.clone().require_grad();
                let grads = (causal_attention(x, heads, mode) * proj.clone()).sum().backward();
                sync();
                drop(grads);
            } else {
                let y = causal_attention(qkv.clone(), heads, mode);
                sync();
                drop(y);
            }
        })
    };
    let [fused, fused_fwd, tensor, tensor_fwd] = [(AttentionMode::Fused, true), (AttentionMode::Fused, false), (AttentionMode::Tensor, true), (AttentionMode::Tensor, false)].map(|(m, bw)| time(m, bw));
    println!("causal attention at [b, t, e, heads] = {dims:?} (head size {}), median:", e / heads);
    println!("  fused      forward+backward {fused:>9.3} ms   forward {fused_fwd:>8.3} ms");
    println!("  tensor-op  forward+backward {tensor:>9.3} ms   forward {tensor_fwd:>8.3} ms   (fused is {:.1}x / {:.1}x faster)", tensor / fused, tensor_fwd / fused_fwd);
    report.insert(
        "timing".into(),
        json!({ "shape": dims, "fused_ms": fused, "fused_forward_ms": fused_fwd, "tensor_ms": tensor, "tensor_forward_ms": tensor_fwd }),
    );
    super::bench::finish_check(report, args.json, passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_must_have_a_kernel_head_size() {
        assert_eq!(parse_shape("64, 280, 256, 8").unwrap(), [64, 280, 256, 8]);
        for bad in ["64,280,256", "64,280,256,7", "64,280,96,8", "0,280,256,8", "a,b,c,d"] {
            let Err(why) = parse_shape(bad) else { panic!("{bad} was accepted") };
            assert_eq!(why.code, crate::cli::exit::BAD_INPUT, "{bad}");
            assert!(why.message.contains(&format!("--shape {bad}")), "{bad}: {}", why.message);
        }
        let Err(why) = parse_shape("1,10,96,8") else { panic!("head size 12 was accepted") };
        assert!(why.message.contains("head size e / heads = 12"), "{}", why.message);
    }
}

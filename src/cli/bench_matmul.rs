//! `icl-lab bench matmul`: the matmuls of a GPT-2 block's linear layers under each of
//! `cubek-matmul`'s strategies (burn without autotune runs `auto` only), with errors against
//! f64 on the CPU under `--check`.

use clap::Args;

use super::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct MatmulArgs {
    /// First compare every strategy and form with f64 on the CPU at a small shape (reported,
    /// not judged: the tensor-core strategies round their inputs to TF32), then the models'
    /// linear layers with the chosen strategies on several shapes (fails when any error
    /// exceeds TF32's rounding).
    #[arg(long)]
    check: bool,
    /// Timed repetitions of each matmul (the median is reported).
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Activations `b,t,e`: the block's four linears are e→3e, e→e, e→4e and 4e→e
    /// (default: GPT-2 e256 on 280 tokens, batch 64).
    #[arg(long, default_value = "64,280,256")]
    shape: String,
    /// Strategies to time, comma-separated (default: all): names of cubek's, cubek tilings of
    /// one's own (`icl_lab_kernels::matmul::Tiles::GRAMMAR`, e.g. tile-tma-m4x2-n4-k4-s), or
    /// our own kernel's tilings (`icl_lab_kernels::gemm::Tiling::GRAMMAR`, e.g. gemm-128x64-w2x2-s3).
    #[arg(long)]
    strategies: Option<String>,
    #[arg(long)]
    json: bool,
}

/// The strategies named in `list` (all when `None`), each checked against the known names.
fn parse_strategies(list: Option<&str>) -> Result<Vec<String>, CliError> {
    let known = icl_lab_kernels::matmul::STRATEGIES;
    let Some(list) = list else { return Ok(known.iter().map(|k| k.to_string()).collect()) };
    list.split(',')
        .map(|name| {
            let name = name.trim();
            if icl_lab_kernels::matmul::choice(name).is_some() {
                Ok(name.to_string())
            } else {
                Err(CliError::bad_input(format!("--strategies: unknown strategy {name:?} (known: {}, or {}, or {})", known.join(", "), icl_lab_kernels::matmul::Tiles::GRAMMAR, icl_lab_kernels::gemm::Tiling::GRAMMAR)))
            }
        })
        .collect()
}

fn parse_shape(text: &str) -> Result<[usize; 3], CliError> {
    let dims: [usize; 3] = super::bench::parse_sizes(text, "b,t,e")?;
    if dims.contains(&0) {
        return Err(CliError::bad_input(format!("--shape {text}: sizes must be positive")));
    }
    Ok(dims)
}

/// The (in, out) widths of a GPT-2 block's linear layers at width `e`.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn block_linears(e: usize) -> [(usize, usize); 4] {
    [(e, 3 * e), (e, e), (e, 4 * e), (4 * e, e)]
}

#[cfg(not(feature = "cuda"))]
pub fn bench_matmul(args: MatmulArgs) -> CliResult {
    parse_shape(&args.shape)?;
    parse_strategies(args.strategies.as_deref())?;
    Err(CliError::failed("bench matmul: this binary was built without the `cuda` feature"))
}

#[cfg(feature = "cuda")]
pub fn bench_matmul(args: MatmulArgs) -> CliResult {
    use std::time::Instant;

    use burn::prelude::*;
    use burn::tensor::{Distribution, TensorPrimitive};
    use icl_lab_kernels::matmul::{choice, run_form, CudaCube as C, Form};
    use serde_json::json;

    let [b, t, e] = parse_shape(&args.shape)?;
    let names = parse_strategies(args.strategies.as_deref())?;
    let device = super::bench::first_gpu("bench matmul")?;
    let mut report = serde_json::Map::new();
    let mut passed = true;
    let operands = |b: usize, t: usize, d_in: usize, d_out: usize| {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<C, 3>::random([b, t, d_in], normal, &device);
        let w = Tensor::<C, 2>::random([d_in, d_out], normal, &device);
        let dy = Tensor::<C, 3>::random([b, t, d_out], normal, &device);
        (x, w, dy)
    };
    let prim = |t: Tensor<C, 3>| t.into_primitive().tensor();

    if args.check {
        let (cb, ct, ci, co) = (4, 40, 64, 192);
        let (x, w, dy) = operands(cb, ct, ci, co);
        let host = |t: Vec<f32>| t.into_iter().map(f64::from).collect::<Vec<_>>();
        let (hx, hw, hdy) = (host(x.to_data().to_vec().unwrap()), host(w.to_data().to_vec().unwrap()), host(dy.to_data().to_vec().unwrap()));
        let reference = |form: Form| -> Vec<f64> {
            let (rows, inner, cols) = match form {
                Form::Forward => (cb * ct, ci, co),
                Form::InputGrad => (cb * ct, co, ci),
                _ => (ci, cb * ct, co),
            };
            let mut out = vec![0.0; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    out[r * cols + c] = (0..inner)
                        .map(|k| match form {
                            Form::Forward => hx[r * ci + k] * hw[k * co + c],
                            Form::InputGrad => hdy[r * co + k] * hw[c * co + k],
                            _ => hx[k * ci + r] * hdy[k * co + c],
                        })
                        .sum();
                }
            }
            out
        };
        let (px, pw, pdy) = (prim(x), w.into_primitive().tensor(), prim(dy));
        println!("relative error against f64 on the CPU at b={cb} t={ct} {ci}→{co} (max |error| / max |reference|):");
        println!("{:>22} {}", "strategy", Form::ALL.map(|f| format!("{:>11}", f.name())).join(""));
        let mut rows = Vec::new();
        let refs = Form::ALL.map(reference);
        for name in &names {
            let s = choice(name).expect("a strategy parse_strategies accepted");
            let outcomes: Vec<Result<f64, String>> = Form::ALL
                .iter()
                .zip(&refs)
                .map(|(&form, want)| {
                    let got = run_form(&s, form, &px, &pw, &pdy)?;
                    let got: Vec<f32> = Tensor::<C, 1>::from_primitive(TensorPrimitive::Float(got)).flatten::<1>(0, 0).to_data().to_vec().map_err(|e| format!("{e:?}"))?;
                    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    Ok(got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs())) / scale)
                })
                .collect();
            let cols = outcomes.iter().map(|e| e.as_ref().map_or(format!("{:>11}", "n/a"), |e| format!("{e:>11.1e}"))).collect::<String>();
            println!("{name:>22} {cols}");
            // Why a strategy could not run a form (cubek's setup error, or what our kernel refuses),
            // so "n/a" can be acted on.
            for (form, why) in Form::ALL.iter().zip(&outcomes).filter_map(|(f, o)| o.as_ref().err().map(|why| (f, why))) {
                let why: String = why.chars().take(240).collect();
                println!("{:>22}   n/a {}: {why}", "", form.name());
            }
            let errors: Vec<Option<f64>> = outcomes.iter().map(|o| o.as_ref().ok().copied()).collect();
            rows.push(json!({ "strategy": name, "errors": Form::ALL.iter().zip(&errors).map(|(f, e)| (f.name().to_string(), json!(e))).collect::<serde_json::Map<_, _>>() }));
        }
        report.insert("check".into(), json!(rows));

        // The models' linear layers (`models::dense`) with the chosen strategies, through
        // autodiff, against burn's Linear in f64; burn's own CUDA path beside for scale.
        use crate::models::dense::{compare_linear, CHECK_SHAPES, COMPARED, TF32_TOLERANCE};
        type Ad = crate::runtime::CudaBackend;
        println!("linear layers (chosen strategies | burn's) against burn's Linear in f64 on the CPU, max |error| / max |reference|:");
        let mut table = super::bench::CheckTable::new(&COMPARED, "burn_errors", 26, TF32_TOLERANCE);
        let burn_heads = COMPARED.map(|c| format!("burn {c}"));
        println!("{}", table.header("[members, b, t, in, out]", &COMPARED, &burn_heads.each_ref().map(String::as_str)));
        for (seed, dims) in CHECK_SHAPES.into_iter().enumerate() {
            let chosen = compare_linear::<Ad>(dims, seed as u64, &device, true);
            let burn = compare_linear::<Ad>(dims, seed as u64, &device, false);
            println!("{}", table.row(&dims, &chosen, &burn));
        }
        println!("{}", table.verdict());
        passed &= table.passed();
        report.insert("linear_check".into(), table.into_json());
    }

    let sync = || C::sync(&device).expect("CUDA sync");
    let linears: Vec<_> = block_linears(e).iter().map(|&(i, o)| operands(b, t, i, o)).map(|(x, w, dy)| (prim(x), w.into_primitive().tensor(), prim(dy))).collect();
    let flops_per_form = 2.0 * (b * t) as f64 * block_linears(e).iter().map(|&(i, o)| (i * o) as f64).sum::<f64>();
    println!("one GPT-2 block's linears at b={b} t={t} e={e}, ms (median of {} reps, summed over the four linears; TFLOP/s of the forward):", args.reps);
    println!("{:>22} {} {:>9} {:>9}", "strategy", Form::ALL.map(|f| format!("{:>11}", f.name())).join(""), "layer", "fwd TF/s");
    let mut rows = Vec::new();
    for name in &names {
        let s = choice(name).expect("a strategy parse_strategies accepted");
        let times: Vec<Option<f64>> = Form::ALL
            .iter()
            .map(|&form| {
                let mut total = 0.0;
                for (x, w, dy) in &linears {
                    run_form(&s, form, x, w, dy).ok()?;
                    sync();
                    let mut reps = Vec::new();
                    for _ in 0..args.reps.max(1) {
                        let start = Instant::now();
                        let out = run_form(&s, form, x, w, dy).ok()?;
                        sync();
                        reps.push(start.elapsed().as_secs_f64() * 1e3);
                        drop(out);
                    }
                    total += super::bench::median(reps);
                }
                Some(total)
            })
            .collect();
        // One layer's step: forward, input gradient and the faster weight-gradient form.
        let layer = match (times[0], times[1], times[2], times[3]) {
            (Some(f), Some(d), w1, w2) => w1.into_iter().chain(w2).reduce(f64::min).map(|w| f + d + w),
            _ => None,
        };
        let cell = |v: Option<f64>, w: usize| v.map_or(format!("{:>w$}", "n/a"), |v| format!("{v:>w$.3}"));
        let tflops = times[0].map(|ms| flops_per_form / (ms * 1e-3) / 1e12);
        println!("{name:>22} {} {} {}", times.iter().map(|v| cell(*v, 11)).collect::<String>(), cell(layer, 9), tflops.map_or(format!("{:>9}", "n/a"), |v| format!("{v:>9.1}")));
        rows.push(json!({ "strategy": name, "ms": Form::ALL.iter().zip(&times).map(|(f, v)| (f.name().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(), "layer_ms": layer }));
    }
    report.insert("timing".into(), json!({ "shape": [b, t, e], "reps": args.reps, "strategies": rows }));
    super::bench::finish_check(report, args.json, passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_are_checked_by_name() {
        assert_eq!(parse_strategies(None).unwrap().len(), icl_lab_kernels::matmul::STRATEGIES.len());
        assert_eq!(parse_strategies(Some("auto, unit")).unwrap(), ["auto", "unit"]);
        let why = parse_strategies(Some("auto,fastest")).unwrap_err();
        assert_eq!(why.code, crate::cli::exit::BAD_INPUT);
        assert!(why.message.contains("\"fastest\""), "{}", why.message);
        assert_eq!(parse_strategies(Some("tile-tma-m4x2-n8-k4-s, tile-dtma-m4x2-n4-k4-s-mma")).unwrap(), ["tile-tma-m4x2-n8-k4-s", "tile-dtma-m4x2-n4-k4-s-mma"]);
        assert!(parse_strategies(Some("tile-tma-m4-n8-k4-s")).is_err(), "planes and rows are both needed");
    }

    #[test]
    fn every_strategy_name_resolves() {
        for name in icl_lab_kernels::matmul::STRATEGIES {
            assert!(icl_lab_kernels::matmul::strategy(name).is_some(), "{name}");
        }
    }

    #[test]
    fn shapes_must_be_three_positive_sizes() {
        assert_eq!(parse_shape("64,280,256").unwrap(), [64, 280, 256]);
        for bad in ["64,280", "0,280,256", "a,b,c"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }
}

//! The CUDA C++ that CubeCL generates for the fused scan kernels, with no GPU, or that of our
//! matmul kernel.
//!
//! `... --example cuda_source -- OUT_DIR gemm [TILING ...]` writes the matmul kernel's source
//! for each tiling (default `icl_lab_kernels::linear`'s) in all four operand layouts.
//!
//! `cargo run --release -p icl-lab-kernels --features cuda --example cuda_source -- OUT_DIR
//! [b,l,e,n ...]` runs each scan (forward and backward, both layouts, and per channel Mamba's
//! form: Δ raw, y gated) on the emulator's
//! runtime (`icl-lab-emu`, kernels/emu) with launches recorded, not run (so no memory is allocated,
//! and any shape can be asked for): its kernels are compiled by CubeCL's own CUDA compiler,
//! for an sm_90 GPU, and written out. `kernels/sass.py` compiles what it writes to SASS
//! (NVRTC and ptxas from NVIDIA's PyPI wheels) and counts instructions: a kernel's cost in
//! instructions can be read here, its time only on a GPU.

use std::path::PathBuf;

use burn::tensor::{Distribution, Tensor};
use burn_cubecl::tensor::CubeTensor;
use icl_lab_kernels::scan::{chosen_time_split, Layout, Scan, ScanKernels};

use icl_lab_emu as emu_runtime;
use emu_runtime::{EmuBackend as B, EmuDevice, EmuRuntime};

/// `b,l,e,n` → the four sizes.
fn parse_shape(text: &str) -> Result<[usize; 4], String> {
    let v: Vec<usize> = text.split(',').map(|p| p.trim().parse::<usize>().map_err(|_| format!("{text:?}: expected b,l,e,n"))).collect::<Result<_, _>>()?;
    v.try_into().map_err(|_| format!("{text:?}: expected four sizes b,l,e,n"))
}

/// A scan's operands, random, as the raw tensors the kernels take.
fn scan_inputs([b, l, e, n]: [usize; 4]) -> Scan<CubeTensor<EmuRuntime>> {
    let device = EmuDevice;
    fn raw<const D: usize>(shape: [usize; D], device: &EmuDevice) -> CubeTensor<EmuRuntime> {
        Tensor::<B, D>::random(shape, Distribution::Default, device).into_primitive().tensor()
    }
    Scan {
        x: raw([b, l, e], &device),
        delta: raw([b, l, e], &device),
        a: raw([e, n], &device),
        b: raw([b, l, n], &device),
        c: raw([b, l, n], &device),
        d: raw([e], &device),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: cuda_source OUT_DIR [b,l,e,n ...]   (default shape 64,82,256,16)");
        std::process::exit(2);
    };
    let args: Vec<String> = args.collect();
    if args.first().map(String::as_str) == Some("gemm") {
        return write_gemm_sources(&out, &args[1..]);
    }
    let shapes: Vec<[usize; 4]> = match args.iter().map(|a| parse_shape(a)).collect::<Result<Vec<_>, _>>() {
        Ok(s) if s.is_empty() => vec![[64, 82, 256, 16]],
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    for shape in shapes {
        for layout in [Layout::PerState, Layout::PerChannel] {
            let layout = layout.for_state_size(shape[3]);
            let inp = scan_inputs(shape);
            let (y, saved) = B::scan_forward(inp.clone(), None, false, true, layout, chosen_time_split());
            let _ = B::scan_backward(inp, None, false, saved.expect("saved states"), y, chosen_time_split());
        }
        // Mamba's form: Δ raw and y gated by z (our CUDA C++ takes both; per channel).
        let [b, l, e, _] = shape;
        let inp = scan_inputs(shape);
        let z: CubeTensor<EmuRuntime> = Tensor::<B, 3>::random([b, l, e], Distribution::Default, &EmuDevice).into_primitive().tensor();
        let layout = Layout::PerChannel.for_state_size(shape[3]);
        let (y, saved) = B::scan_forward(inp.clone(), Some(z.clone()), true, true, layout, chosen_time_split());
        let _ = B::scan_backward(inp, Some(z), true, saved.expect("saved states"), y, chosen_time_split());
    }
    // Launches reach the server on CubeCL's device thread: wait for them.
    <B as burn::tensor::backend::Backend>::sync(&EmuDevice).expect("sync");
    let recorded = emu_runtime::recorded();
    for (i, k) in recorded.iter().enumerate() {
        let path = out.join(format!("{i:02}_{}.cu", k.name));
        std::fs::write(&path, &k.source).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        println!("{}", path.display());
    }
}

/// Our matmul kernel's CUDA C++ for each tiling named (or the default one), in every layout.
fn write_gemm_sources(out: &std::path::Path, names: &[String]) {
    use icl_lab_kernels::gemm::{source, Layout, Tiling};
    let defaults = [icl_lab_kernels::gemm::DEFAULT.to_string()];
    let names = if names.is_empty() { &defaults[..] } else { names };
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    for name in names {
        let Some(tiling) = Tiling::parse(name) else {
            eprintln!("{name:?}: not a tiling ({})", Tiling::GRAMMAR);
            std::process::exit(2);
        };
        for a_k_contiguous in [true, false] {
            for b_n_contiguous in [true, false] {
                let layout = Layout { a_k_contiguous, b_n_contiguous };
                // The forward (x w) also with the linear layers' bias in its epilogue.
                for bias in [false, true].into_iter().filter(|&bias| !bias || (a_k_contiguous && b_n_contiguous)) {
                    let path = out.join(format!("{}.cu", source::entry_point(tiling, layout, bias)));
                    std::fs::write(&path, source::cuda(tiling, layout, bias)).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
                    println!("{}", path.display());
                }
            }
        }
    }
}

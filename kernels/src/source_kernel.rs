//! Kernels we write in CUDA C++ ourselves ([`crate::gemm`], the per-channel scan in
//! [`crate::scan`]), launched through CubeCL like its own.
//!
//! CubeCL launches kernels it compiled from its own IR. A [`SourceTask`] compiles a skeleton
//! kernel (for the cube size and dynamic shared memory CubeCL's CUDA runtime reads from it)
//! and hands CubeCL our source and entry point in its place, so the kernel runs on CubeCL's
//! stream and memory, and its kernel cache (and the shipped seed) keep its PTX as they keep
//! every other kernel's. The emulator (kernels/emu) runs the same source on the CPU. Scalars
//! go in CubeCL's `info` parameter as 32-bit words (`info.scalars_uint32[i]`).

use std::fmt::Debug;
use std::hash::Hash;

use cubecl::prelude::*;
use cubecl::server::{Binding, KernelArguments, MetadataBindingInfo};
use cubecl::{CompilationError, Compiler, CubeTask};

/// A kernel of our own source: what names it, what it is, what it needs to launch.
pub(crate) trait CudaSource: Copy + Eq + Hash + Debug + Send + Sync + 'static {
    /// The name in profiles and logs.
    const NAME: &'static str;
    /// The `extern "C"` function in [`CudaSource::cuda`]; it names every compile-time
    /// parameter, since kernels are told apart by it.
    fn entry_point(&self) -> String;
    /// The CUDA C++: buffers `buffer_0..` in launch order, then `const __grid_constant__
    /// info_st info` holding `uint32 scalars_uint32[..]`.
    fn cuda(&self) -> String;
    /// Threads a cube (one dimension).
    fn threads(&self) -> u32;
    /// Floats of dynamic shared memory a cube (`extern __shared__ ... dynamic_shared_mem[]`).
    fn shared_floats(&self) -> usize;
}

/// Whether `R` compiles to CUDA C++ (the CUDA runtime, or the emulator): the only compiler
/// our sources are written for.
pub(crate) fn compiles_cuda<R: Runtime>() -> bool {
    #[cfg(feature = "cuda")]
    {
        std::any::TypeId::of::<R::Compiler>() == std::any::TypeId::of::<cubecl::cuda::CudaCompiler>()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// Only for its compiled form: the cube size, and shared memory of `words` floats, that
/// CubeCL's CUDA runtime reads from a kernel's representation when it launches it.
#[cube(launch_unchecked)]
fn source_skeleton(#[comptime] words: usize) {
    let mut shared = SharedMemory::<f32>::new(words);
    shared[UNIT_POS as usize] = f32::new(0.0);
}

/// One of our kernels as a CubeCL task: the skeleton compiled, its source and entry point
/// replaced by ours. The source is written only when CubeCL compiles (a kernel not cached).
struct SourceTask<R: Runtime, S: CudaSource> {
    skeleton: KernelTask<R::Compiler, source_skeleton::SourceSkeleton<R>>,
    kernel: S,
}

impl<R: Runtime, S: CudaSource> KernelMetadata for SourceTask<R, S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().cube_dim(CubeDim::new_1d(self.kernel.threads())).info(self.kernel)
    }

    fn address_type(&self) -> StorageType {
        self.skeleton.address_type()
    }
}

impl<R: Runtime, S: CudaSource> CubeTask<R::Compiler> for SourceTask<R, S> {
    fn compile(
        &self,
        compiler: &mut R::Compiler,
        options: &<R::Compiler as Compiler>::CompilationOptions,
        mode: ExecutionMode,
        address_type: StorageType,
    ) -> Result<CompiledKernel<R::Compiler>, CompilationError> {
        let mut compiled = self.skeleton.compile(compiler, options, mode, address_type)?;
        compiled.entrypoint_name = self.kernel.entry_point();
        compiled.source = self.kernel.cuda();
        compiled.debug_name = Some(S::NAME);
        Ok(compiled)
    }
}

/// Launches `kernel` over `count` cubes with `buffers` (in the source's order) and `scalars`.
pub(crate) fn launch<R: Runtime, S: CudaSource>(client: &ComputeClient<R>, kernel: S, count: CubeCount, buffers: Vec<Binding>, scalars: &[u32]) {
    let settings = KernelSettings::default().cube_dim(CubeDim::new_1d(kernel.threads()));
    // The skeleton writes one float a thread, so it needs at least that many.
    let words = kernel.shared_floats().max(kernel.threads() as usize);
    let skeleton = source_skeleton::SourceSkeleton::<R>::new(settings, client.clone(), words);
    let task = SourceTask::<R, S> { skeleton: KernelTask::new(skeleton), kernel };
    let info: Vec<u64> = scalars.chunks(2).map(|p| u64::from(p[0]) | (u64::from(*p.get(1).unwrap_or(&0)) << 32)).collect();
    let info_len = info.len();
    let arguments = buffers.into_iter().fold(KernelArguments::new(), KernelArguments::with_buffer).with_info(MetadataBindingInfo::new(info, info_len));
    client.launch(Box::new(task), count, arguments);
}

/// What each of our sources starts with: the integer types they use and the `info`
/// parameter of `scalars` 32-bit words.
pub(crate) fn prelude(scalars: usize) -> String {
    format!(
        r#"typedef unsigned int uint32;
typedef unsigned long long int uint64;
typedef unsigned char uint8;

struct info_st {{
    uint32 scalars_uint32[{scalars}];
}};
"#
    )
}

/// The kernel's first lines: each scalar of `names` read from `info` into a `const uint32` of
/// that name.
pub(crate) fn read_scalars(names: &[&str]) -> String {
    names.iter().enumerate().map(|(i, s)| format!("    const uint32 {s} = info.scalars_uint32[{i}];\n")).collect()
}

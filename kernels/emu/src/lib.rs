//! A CubeCL runtime with no GPU behind it: kernels are compiled by CubeCL's own CUDA compiler
//! for an sm_90 GPU (H100/H200), as `burn-cuda` compiles them, and then either recorded
//! (their CUDA C++ kept, for reading and counting: `kernels/examples/cuda_source.rs`, and
//! their launches counted: `icl-lab bench host`) or run on the
//! CPU: the CUDA C++ is built with the host's C++ compiler against `cuda_emu.h` (a fiber per
//! GPU thread, warp shuffles and cube barriers where fibers wait for each other) and called on
//! buffers in host memory. `burn_cubecl::CubeBackend<EmuRuntime, ..>` is then a burn backend
//! that runs the very kernels a GPU would, slowly: tests check our fused kernels' results
//! with it in CI, where there is no GPU (`kernels/tests/emulated.rs`). Tensor-core (mma)
//! kernels are not modelled: the device reports none, and CubeCL's matmul picks kernels
//! without them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use burn_cubecl::CubeBackend;
use cubecl::cuda::{CudaCompiler, CudaRuntime};
use cubecl::prelude::*;
use cubecl_common::backtrace::BackTrace;
use cubecl_common::bytes::Bytes;
use cubecl_common::device::{Device as _, DeviceId, DeviceService};
use cubecl_common::future::DynFut;
use cubecl_common::profile::{ProfileDuration, TimingMethod};
use cubecl_common::stream_id::StreamId;
use cubecl_cpp::shared::{CompilationOptions, CppSupportedFeatures};
use cubecl_ir::features::Plane;
use cubecl_ir::{DeviceProperties, HardwareProperties, MemoryDeviceProperties, TargetProperties, VectorSize};
use cubecl_runtime::allocator::ContiguousMemoryLayoutPolicy;
use cubecl_runtime::compiler::CubeTask;
use cubecl_runtime::id::KernelId;
use cubecl_runtime::logging::ServerLogger;
use cubecl_runtime::memory_management::{
    ManagedMemoryHandle, MemoryAllocationMode, MemoryConfiguration, MemoryManagement, MemoryManagementOptions, MemoryUsage,
};
use cubecl_runtime::server::{
    Binding, ComputeServer, CopyDescriptor, ExecutionMode, IoError, KernelArguments, ProfileError, ProfilingToken,
    ServerCommunication, ServerError, ServerUtilities,
};
use cubecl_runtime::storage::{ComputeStorage, ManagedResource, StorageHandle, StorageId, StorageUtilization};
use cubecl_runtime::timestamp_profiler::TimestampProfiler;
use cubecl_zspace::{Shape, Strides};

/// burn's CubeCL backend on [`EmuRuntime`].
pub type EmuBackend = CubeBackend<EmuRuntime, f32, i32, u8>;

/// The emulated counterpart of `burn_cuda::Cuda<f32, i32>`: burn-fusion over [`EmuBackend`].
pub type EmuFusion = burn_fusion::Fusion<EmuBackend>;

static LAUNCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Launches so far by kernel entry point.
static BY_KERNEL: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Kernel launches that reached the server so far (recorded or run).
pub fn launches() -> u64 {
    LAUNCHES.load(Ordering::SeqCst)
}

/// Launches so far of each kernel, by entry point name.
pub fn launches_by_kernel() -> HashMap<String, u64> {
    BY_KERNEL.lock().expect("launch counts").clone().unwrap_or_default()
}

/// One kernel as CubeCL compiled it: its entry point and CUDA C++.
#[derive(Clone)]
pub struct Recorded {
    pub name: String,
    pub source: String,
}

/// Every distinct kernel launched so far (by kernel id), in launch order.
static RECORDED: Mutex<Vec<Recorded>> = Mutex::new(Vec::new());
/// Whether launches run (else they are only recorded). Off by default.
static EXECUTE: AtomicBool = AtomicBool::new(false);

/// Launches from now on run on the CPU (`true`) or are only recorded (`false`).
pub fn set_execute(on: bool) {
    EXECUTE.store(on, Ordering::SeqCst);
}

/// The kernels recorded so far. Launches reach the server on CubeCL's device thread: sync the
/// device first.
pub fn recorded() -> Vec<Recorded> {
    RECORDED.lock().expect("recorded").clone()
}

/// The one (pretend) device.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct EmuDevice;

impl cubecl_common::device::Device for EmuDevice {
    fn from_id(_: DeviceId) -> Self {
        EmuDevice
    }
    fn to_id(&self) -> DeviceId {
        // A type id no real runtime uses, so its device thread is its own.
        DeviceId { type_id: 0x5ec0, index_id: 0 }
    }
}

impl burn::tensor::backend::DeviceOps for EmuDevice {}

/// A buffer in host memory: where a binding's bytes start, and how many.
#[derive(Debug)]
pub struct HostBuffer {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the pointer is into a `Box` that `HostStorage` keeps alive until `dealloc`, and
// CubeCL's memory management only hands out a resource while its allocation is bound.
unsafe impl Send for HostBuffer {}

impl HostBuffer {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies in a live allocation (see `Send` above).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; the server thread is the only one touching it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Host memory, 16-byte aligned (vector loads), zeroed; allocated when first touched, so
/// recording the kernels of large shapes takes none.
#[derive(Debug, Default)]
pub struct HostStorage {
    blocks: HashMap<StorageId, Block>,
}

/// An allocation's size, and its memory once touched.
type Block = (u64, Option<Box<[u128]>>);

impl ComputeStorage for HostStorage {
    type Resource = HostBuffer;

    fn alignment(&self) -> usize {
        512
    }
    fn get(&mut self, handle: &StorageHandle) -> HostBuffer {
        let (size, block) = self.blocks.get_mut(&handle.id).expect("a live allocation");
        let block = block.get_or_insert_with(|| vec![0u128; (*size as usize).div_ceil(16)].into_boxed_slice());
        let base = block.as_mut_ptr() as *mut u8;
        // SAFETY: CubeCL keeps `offset + size` within the allocation it made.
        HostBuffer { ptr: unsafe { base.add(handle.offset() as usize) }, len: handle.size() as usize }
    }
    fn alloc(&mut self, size: u64) -> Result<StorageHandle, IoError> {
        let id = StorageId::new();
        self.blocks.insert(id, (size, None));
        Ok(StorageHandle::new(id, StorageUtilization { offset: 0, size }))
    }
    fn dealloc(&mut self, id: StorageId) {
        self.blocks.remove(&id);
    }
    fn flush(&mut self) {}
}

/// What CubeCL's CUDA runtime reports for an sm_90 GPU (H100/H200), as far as kernel code
/// generation reads it: 32-lane warps, plane operations, 1,024 threads and 227 KB of shared
/// memory a cube.
fn sm90_properties() -> DeviceProperties {
    let memory = MemoryDeviceProperties { max_page_size: 1 << 32, alignment: 512 };
    let hardware = HardwareProperties {
        load_width: 128,
        plane_size_min: 32,
        plane_size_max: 32,
        max_bindings: 1024,
        max_shared_memory_size: 232_448,
        max_cube_count: (i32::MAX as u32, 65_535, 65_535),
        max_units_per_cube: 1024,
        max_cube_dim: (1024, 1024, 64),
        num_streaming_multiprocessors: Some(132),
        num_tensor_cores: Some(4),
        min_tensor_cores_dim: Some(8),
        num_cpu_cores: None,
        max_vector_size: VectorSize::MAX,
    };
    let mut props = DeviceProperties::new(Default::default(), memory, hardware, TimingMethod::System);
    cubecl_cpp::register_supported_types(&mut props);
    props.features.plane.insert(Plane::Ops);
    props.features.plane.insert(Plane::Sync);
    props.features.plane.insert(Plane::NonUniformControlFlow);
    props.features.memory_reinterpret = true;
    props.features.alignment = true;
    props
}

/// The CUDA runtime's compilation options for sm_90 (CUDA ≥ 12.8).
fn sm90_options() -> CompilationOptions {
    CompilationOptions {
        warp_size: 32,
        supports_features: CppSupportedFeatures { grid_constants: true, clusters: true, fast_math: true, fast_tanh: true, elect_sync: true },
    }
}

/// A kernel built for the CPU: its library, cube size and buffer parameters.
struct Built {
    library: libloading::Library,
    cube_dim: (u32, u32, u32),
    buffers: usize,
}

type RunFn = unsafe extern "C" fn(*const *mut u8, *const u8, *const u8, u32, u32, u32);

/// CubeCL's CUDA compiler in place of a driver, host memory in place of the GPU's.
#[derive(Debug)]
pub struct EmuServer {
    memory: MemoryManagement<HostStorage>,
    timestamps: TimestampProfiler,
    utilities: Arc<ServerUtilities<Self>>,
    /// Kernels compiled (and recorded) so far, and those built for the CPU.
    compiled: std::collections::HashSet<KernelId>,
    /// Each kernel's entry point name.
    names: HashMap<KernelId, String>,
    built: HashMap<KernelId, Arc<BuiltHandle>>,
    /// The first launch that failed (a kernel that did not compile or build, a bad binding):
    /// later launches are skipped and reads and syncs return it, as a GPU's sticky error
    /// does, so no caller reads memory a kernel never wrote.
    failure: Option<String>,
}

/// `Built`, made `Debug` for the server.
pub struct BuiltHandle(Built);

impl std::fmt::Debug for BuiltHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel library, cube {:?}", self.0.cube_dim)
    }
}

impl DeviceService for EmuServer {
    fn init(_: DeviceId) -> Self {
        let props = sm90_properties();
        let memory = MemoryManagement::from_configuration(
            HostStorage::default(),
            &props.memory,
            MemoryConfiguration::default(),
            Arc::new(ServerLogger::default()),
            MemoryManagementOptions::new("emulated"),
        );
        let utilities = Arc::new(ServerUtilities::new(props, Arc::new(ServerLogger::default()), (), ContiguousMemoryLayoutPolicy::new(512)));
        EmuServer { memory, timestamps: TimestampProfiler::default(), utilities, compiled: Default::default(), names: HashMap::new(), built: HashMap::new(), failure: None }
    }

    fn utilities(&self) -> Arc<dyn std::any::Any + Send + Sync> {
        self.utilities.clone() as Arc<dyn std::any::Any + Send + Sync>
    }
}

impl ServerCommunication for EmuServer {
    const SERVER_COMM_ENABLED: bool = false;
}

/// Where built kernels are kept: `target/emu-kernels` of this workspace.
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/emu-kernels")
}

/// The C++ that runs `source`'s kernel `name` over a grid: the kernel's parameters (buffers,
/// then the dynamic metadata and the info struct CubeCL passes) from the launch's arguments;
/// and how many buffers it takes (a launch must bind as many, as a GPU would read them all).
fn wrapper(name: &str, source: &str, cube_dim: (u32, u32, u32)) -> (String, usize) {
    let body: String = source
        .lines()
        .filter(|l| !l.starts_with("#include <cuda_runtime.h>") && !l.trim_start().starts_with("extern __shared__"))
        .map(|l| format!("{l}\n"))
        .collect();
    let open = source.find(&format!("{name} (")).expect("the kernel's signature") + name.len() + 2;
    let close = open + source[open..].find(')').expect("the end of the kernel's parameters");
    let args: Vec<String> = source[open..close]
        .split(',')
        .map(|param| {
            let param = param.trim();
            let (ty, ident) = param.rsplit_once(' ').expect("a typed parameter");
            if let Some(i) = ident.strip_prefix("buffer_") {
                format!("({ty})buffers[{i}]")
            } else if ident == "dynamic_meta" {
                format!("({ty})dynamic_meta")
            } else if ident == "info" {
                "*(const info_st*)info".to_string()
            } else {
                panic!("kernel {name}: parameter {param:?} not known to the emulator")
            }
        })
        .collect();
    let buffers = args.iter().filter(|a| a.contains(")buffers[")).count();
    let (x, y, z) = cube_dim;
    let text = format!(
        "#include \"cuda_emu.h\"\n{body}\nextern \"C\" void emu_run(void** buffers, const void* info, const void* dynamic_meta, unsigned gx, unsigned gy, unsigned gz) {{\n    (void)info; (void)dynamic_meta;\n    emu::launch({{gx, gy, gz}}, {{{x}u, {y}u, {z}u}}, [&] {{ {name}({}); }});\n}}\n",
        args.join(", ")
    );
    (text, buffers)
}

/// Builds the wrapper into a shared library (kept by a hash of its text, so each kernel is
/// built once per checkout).
fn build(text: &str) -> libloading::Library {
    let dir = build_dir();
    std::fs::create_dir_all(&dir).expect("target/emu-kernels");
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in text.bytes().chain(include_str!("cuda_emu.h").bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let lib = dir.join(format!("{hash:016x}.so"));
    if !lib.exists() {
        let cpp = dir.join(format!("{hash:016x}.cpp"));
        std::fs::write(&cpp, text).expect("write the kernel's C++");
        let tmp = dir.join(format!("{hash:016x}.{}.so", std::process::id()));
        let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let out = std::process::Command::new(std::env::var("CXX").unwrap_or_else(|_| "g++".into()))
            .args(["-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-w", "-I"])
            .arg(&include)
            .arg(&cpp)
            .arg("-o")
            .arg(&tmp)
            .output()
            .expect("a C++ compiler (g++, or $CXX)");
        assert!(out.status.success(), "{} failed to build:\n{}", cpp.display(), String::from_utf8_lossy(&out.stderr));
        std::fs::rename(&tmp, &lib).expect("keep the built kernel");
    }
    // SAFETY: a library this function just built (or an earlier run built from the same text):
    // no initialisers beyond the C++ runtime's.
    unsafe { libloading::Library::new(&lib).expect("load the built kernel") }
}

impl EmuServer {
    /// `Err` with the first failed launch's reason once one has failed.
    fn healthy(&self) -> Result<(), ServerError> {
        match &self.failure {
            None => Ok(()),
            Some(why) => Err(ServerError::Generic { reason: format!("an earlier launch failed on the emulator: {why}"), backtrace: BackTrace::capture() }),
        }
    }

    /// Compiles (once) and runs `kernel` on the host.
    fn launch_now(&mut self, kernel: Box<dyn CubeTask<CudaCompiler>>, count: CubeCount, bindings: KernelArguments, mode: ExecutionMode) {
        LAUNCHES.fetch_add(1, Ordering::Relaxed);
        let id = kernel.id();
        let name = match self.names.get(&id) {
            Some(name) => name.clone(),
            None => {
                let name = kernel.compile(&mut Default::default(), &sm90_options(), mode, kernel.address_type()).expect("CubeCL compiles the kernel").entrypoint_name;
                self.names.insert(id.clone(), name.clone());
                name
            }
        };
        *BY_KERNEL.lock().expect("launch counts").get_or_insert_with(HashMap::new).entry(name).or_insert(0) += 1;
        let execute = EXECUTE.load(Ordering::SeqCst);
        let known = self.compiled.contains(&id);
        if known && !execute {
            return;
        }
        if !known || !self.built.contains_key(&id) {
            let compiled = kernel.compile(&mut Default::default(), &sm90_options(), mode, kernel.address_type()).expect("CubeCL compiles the kernel");
            if self.compiled.insert(id.clone()) {
                RECORDED.lock().expect("recorded").push(Recorded { name: compiled.entrypoint_name.clone(), source: compiled.source.clone() });
            }
            if !execute {
                return;
            }
            let dim = (compiled.cube_dim.x, compiled.cube_dim.y, compiled.cube_dim.z);
            let (text, buffers) = wrapper(&compiled.entrypoint_name, &compiled.source, dim);
            let library = build(&text);
            self.built.insert(id.clone(), Arc::new(BuiltHandle(Built { library, cube_dim: dim, buffers })));
        }
        let built = self.built[&id].clone();
        let CubeCount::Static(gx, gy, gz) = count else { panic!("the emulator takes static cube counts only") };
        let mut resources: Vec<HostBuffer> = bindings
            .buffers
            .into_iter()
            .map(|b| self.memory.get_resource(b.memory, b.offset_start, b.offset_end).expect("a bound buffer"))
            .collect();
        let pointers: Vec<*mut u8> = resources.iter_mut().map(|r| r.ptr).collect();
        // A GPU reads every parameter the kernel declares: too few bound is a launch error there.
        assert_eq!(pointers.len(), built.0.buffers, "kernel {id:?}: {} buffers bound, {} declared", pointers.len(), built.0.buffers);
        let info: &[u8] = bytemuck_u64(&bindings.info.data);
        let dynamic = bytemuck_u64(&bindings.info.data[bindings.info.dynamic_metadata_offset.min(bindings.info.data.len())..]);
        // SAFETY: `emu_run` is the wrapper's entry point with this signature; every buffer
        // pointer is a live host allocation of the size CubeCL bound, as on a GPU.
        unsafe {
            let run: libloading::Symbol<RunFn> = built.0.library.get(b"emu_run").expect("emu_run");
            run(pointers.as_ptr(), info.as_ptr(), dynamic.as_ptr(), gx, gy, gz);
        }
    }
}

impl ComputeServer for EmuServer {
    type Kernel = Box<dyn CubeTask<CudaCompiler>>;
    type Info = ();
    type MemoryLayoutPolicy = ContiguousMemoryLayoutPolicy;
    type Storage = HostStorage;

    fn initialize_memory(&mut self, memory: ManagedMemoryHandle, size: u64, _: StreamId) {
        let reserved = self.memory.reserve(size).expect("host memory");
        self.memory.bind(reserved, memory, 0).expect("bind");
    }

    fn logger(&self) -> Arc<ServerLogger> {
        self.utilities.logger.clone()
    }

    fn utilities(&self) -> Arc<ServerUtilities<Self>> {
        self.utilities.clone()
    }

    fn read(&mut self, descriptors: Vec<CopyDescriptor>, _: StreamId) -> DynFut<Result<Vec<Bytes>, ServerError>> {
        if let Err(e) = self.healthy() {
            return Box::pin(async move { Err(e) });
        }
        let out: Vec<Bytes> = descriptors
            .into_iter()
            .map(|d| {
                let size = d.handle.size_in_used() as usize;
                let resource = self.memory.get_resource(d.handle.memory, d.handle.offset_start, d.handle.offset_end).expect("resource");
                Bytes::from_bytes_vec(resource.bytes()[..size].to_vec())
            })
            .collect();
        Box::pin(async move { Ok(out) })
    }

    fn write(&mut self, descriptors: Vec<(CopyDescriptor, Bytes)>, _: StreamId) {
        for (d, data) in descriptors {
            let mut resource = self.memory.get_resource(d.handle.memory, d.handle.offset_start, d.handle.offset_end).expect("resource");
            resource.bytes_mut()[..data.len()].copy_from_slice(&data);
        }
    }

    fn sync(&mut self, _: StreamId) -> DynFut<Result<(), ServerError>> {
        let health = self.healthy();
        Box::pin(async move { health })
    }

    fn get_resource(&mut self, binding: Binding, _: StreamId) -> Result<ManagedResource<HostBuffer>, ServerError> {
        let resource = self.memory.get_resource(binding.memory.clone(), binding.offset_start, binding.offset_end)?;
        Ok(ManagedResource::new(binding.memory, resource))
    }

    unsafe fn launch(&mut self, kernel: Self::Kernel, count: CubeCount, bindings: KernelArguments, mode: ExecutionMode, _: StreamId) {
        if self.failure.is_some() {
            return;
        }
        // A failure here would otherwise unwind through the channel's server thread, and every
        // later read would see memory as it was.
        let launched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.launch_now(kernel, count, bindings, mode)));
        if let Err(payload) = launched {
            let why = payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
            self.failure = Some(why.unwrap_or_else(|| "a panic".into()));
        }
    }

    fn flush(&mut self, _: StreamId) -> Result<(), ServerError> {
        self.healthy()
    }

    fn memory_usage(&mut self, _: StreamId) -> Result<MemoryUsage, ServerError> {
        Ok(self.memory.memory_usage())
    }

    fn memory_cleanup(&mut self, _: StreamId) {
        self.memory.cleanup(true);
    }

    fn start_profile(&mut self, _: StreamId) -> Result<ProfilingToken, ServerError> {
        Ok(self.timestamps.start())
    }

    fn end_profile(&mut self, _: StreamId, token: ProfilingToken) -> Result<ProfileDuration, ProfileError> {
        self.timestamps.stop(token)
    }

    fn allocation_mode(&mut self, mode: MemoryAllocationMode, _: StreamId) {
        self.memory.mode(mode)
    }
}

fn bytemuck_u64(words: &[u64]) -> &[u8] {
    // SAFETY: any u64 is 8 valid bytes; the slice's lifetime is the words'.
    unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, std::mem::size_of_val(words)) }
}

/// A CubeCL runtime that compiles for CUDA and records or emulates instead of running on a GPU.
#[derive(Clone, Debug)]
pub struct EmuRuntime;

impl Runtime for EmuRuntime {
    type Compiler = CudaCompiler;
    type Server = EmuServer;
    type Device = EmuDevice;

    fn client(device: &Self::Device) -> ComputeClient<Self> {
        ComputeClient::load(device)
    }

    fn name(_: &ComputeClient<Self>) -> &'static str {
        "emulated (cuda sm_90)"
    }

    fn max_cube_count() -> (u32, u32, u32) {
        (i32::MAX as u32, 65_535, 65_535)
    }

    fn can_read_tensor(_: &Shape, _: &Strides) -> bool {
        true
    }

    fn target_properties() -> TargetProperties {
        CudaRuntime::target_properties()
    }

    fn enumerate_devices(_: u16, _: &()) -> Vec<DeviceId> {
        vec![EmuDevice.to_id()]
    }
}

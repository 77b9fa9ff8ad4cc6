//! The CUDA C++ that CubeCL generates for the fused scan kernels, with no GPU.
//!
//! `cargo run --release -p icl-lab-kernels --features cuda --example cuda_source -- OUT_DIR
//! [b,l,e,n ...]` runs each scan (forward and backward, both layouts) on [`RecordingRuntime`]:
//! a CubeCL runtime whose kernels are compiled by CubeCL's own CUDA compiler, for an sm_90
//! GPU, and written out instead of run. `kernels/sass.py` compiles what it writes to SASS
//! (NVRTC and ptxas from NVIDIA's PyPI wheels) and counts instructions: a kernel's cost in
//! instructions can be read here, its time only on a GPU. The data the kernels would compute
//! is never computed (memory stays zeros).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::tensor::{Distribution, Tensor};
use burn_cubecl::CubeBackend;
use cubecl::cuda::{CudaCompiler, CudaRuntime};
use cubecl::prelude::*;
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
use cubecl_runtime::logging::ServerLogger;
use cubecl_runtime::memory_management::{
    ManagedMemoryHandle, MemoryAllocationMode, MemoryConfiguration, MemoryManagement, MemoryManagementOptions, MemoryUsage,
};
use cubecl_runtime::server::{
    Binding, ComputeServer, CopyDescriptor, ExecutionMode, KernelArguments, ProfileError, ProfilingToken, ServerCommunication,
    ServerError, ServerUtilities,
};
use cubecl_runtime::server::IoError;
use cubecl_runtime::storage::{ComputeStorage, ManagedResource, StorageHandle, StorageId, StorageUtilization};
use cubecl_runtime::timestamp_profiler::TimestampProfiler;
use cubecl_zspace::{Shape, Strides};
use burn_cubecl::tensor::CubeTensor;
use icl_lab_kernels::scan::{Layout, Scan, ScanKernels};

/// One kernel as compiled: its entry point and CUDA C++.
struct Recorded {
    name: String,
    source: String,
}

/// Every distinct kernel launched so far (by kernel id), in launch order.
static RECORDED: Mutex<Vec<Recorded>> = Mutex::new(Vec::new());
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The one (pretend) device.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct RecordingDevice;

impl cubecl_common::device::Device for RecordingDevice {
    fn from_id(_: DeviceId) -> Self {
        RecordingDevice
    }
    fn to_id(&self) -> DeviceId {
        // A type id no real runtime uses, so its device thread is its own.
        DeviceId { type_id: 0x5ec0, index_id: 0 }
    }
}

impl burn::tensor::backend::DeviceOps for RecordingDevice {}

/// Storage that holds nothing: a kernel is compiled, never run, so no buffer is ever read
/// (a read gives zeros) and none needs memory behind it.
#[derive(Debug, Default)]
pub struct NoStorage;

impl ComputeStorage for NoStorage {
    type Resource = ();

    fn alignment(&self) -> usize {
        512
    }
    fn get(&mut self, _: &StorageHandle) {}
    fn alloc(&mut self, size: u64) -> Result<StorageHandle, IoError> {
        Ok(StorageHandle::new(StorageId::new(), StorageUtilization { offset: 0, size }))
    }
    fn dealloc(&mut self, _: StorageId) {}
    fn flush(&mut self) {}
}

/// CubeCL's CUDA compiler in place of a driver, and no memory behind the buffers.
#[derive(Debug)]
pub struct RecordingServer {
    memory: MemoryManagement<NoStorage>,
    timestamps: TimestampProfiler,
    utilities: Arc<ServerUtilities<Self>>,
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

impl DeviceService for RecordingServer {
    fn init(_: DeviceId) -> Self {
        let props = sm90_properties();
        let memory = MemoryManagement::from_configuration(
            NoStorage,
            &props.memory,
            MemoryConfiguration::default(),
            Arc::new(ServerLogger::default()),
            MemoryManagementOptions::new("recording"),
        );
        let utilities = Arc::new(ServerUtilities::new(props, Arc::new(ServerLogger::default()), (), ContiguousMemoryLayoutPolicy::new(512)));
        RecordingServer { memory, timestamps: TimestampProfiler::default(), utilities }
    }

    fn utilities(&self) -> Arc<dyn std::any::Any + Send + Sync> {
        self.utilities.clone() as Arc<dyn std::any::Any + Send + Sync>
    }
}

impl ServerCommunication for RecordingServer {
    const SERVER_COMM_ENABLED: bool = false;
}

impl ComputeServer for RecordingServer {
    type Kernel = Box<dyn CubeTask<CudaCompiler>>;
    type Info = ();
    type MemoryLayoutPolicy = ContiguousMemoryLayoutPolicy;
    type Storage = NoStorage;

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
        let out: Vec<Bytes> = descriptors.into_iter().map(|d| Bytes::from_bytes_vec(vec![0; d.handle.size_in_used() as usize])).collect();
        Box::pin(async move { Ok(out) })
    }

    fn write(&mut self, _: Vec<(CopyDescriptor, Bytes)>, _: StreamId) {}

    fn sync(&mut self, _: StreamId) -> DynFut<Result<(), ServerError>> {
        Box::pin(async { Ok(()) })
    }

    fn get_resource(&mut self, binding: Binding, _: StreamId) -> Result<ManagedResource<()>, ServerError> {
        let resource = self.memory.get_resource(binding.memory.clone(), binding.offset_start, binding.offset_end)?;
        Ok(ManagedResource::new(binding.memory, resource))
    }

    unsafe fn launch(&mut self, kernel: Self::Kernel, _: CubeCount, _: KernelArguments, mode: ExecutionMode, _: StreamId) {
        let id = format!("{:?}", kernel.id());
        let mut seen = SEEN.lock().expect("seen");
        if !seen.get_or_insert_with(HashSet::new).insert(id) {
            return;
        }
        let compiled = kernel.compile(&mut Default::default(), &sm90_options(), mode, kernel.address_type()).expect("CubeCL compiles the kernel");
        RECORDED.lock().expect("recorded").push(Recorded { name: compiled.entrypoint_name, source: compiled.source });
    }

    fn flush(&mut self, _: StreamId) -> Result<(), ServerError> {
        Ok(())
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

/// A CubeCL runtime that compiles for CUDA and records instead of running.
#[derive(Clone, Debug)]
pub struct RecordingRuntime;

impl Runtime for RecordingRuntime {
    type Compiler = CudaCompiler;
    type Server = RecordingServer;
    type Device = RecordingDevice;

    fn client(device: &Self::Device) -> ComputeClient<Self> {
        ComputeClient::load(device)
    }

    fn name(_: &ComputeClient<Self>) -> &'static str {
        "recording (cuda sm_90)"
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
        vec![RecordingDevice.to_id()]
    }
}

type B = CubeBackend<RecordingRuntime, f32, i32, u8>;

/// `b,l,e,n` → the four sizes.
fn parse_shape(text: &str) -> Result<[usize; 4], String> {
    let v: Vec<usize> = text.split(',').map(|p| p.trim().parse::<usize>().map_err(|_| format!("{text:?}: expected b,l,e,n"))).collect::<Result<_, _>>()?;
    v.try_into().map_err(|_| format!("{text:?}: expected four sizes b,l,e,n"))
}

/// A scan's operands, random, as the raw tensors the kernels take.
fn scan_inputs([b, l, e, n]: [usize; 4]) -> Scan<CubeTensor<RecordingRuntime>> {
    let device = RecordingDevice;
    fn raw<const D: usize>(shape: [usize; D], device: &RecordingDevice) -> CubeTensor<RecordingRuntime> {
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
    let shapes: Vec<[usize; 4]> = match args.map(|a| parse_shape(&a)).collect::<Result<Vec<_>, _>>() {
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
            let (y, states) = B::scan_forward(inp.clone(), true, layout);
            let _ = B::scan_backward(inp, states.expect("saved states"), y);
        }
    }
    // Launches reach the server on CubeCL's device thread: wait for them.
    <B as burn::tensor::backend::Backend>::sync(&RecordingDevice).expect("sync");
    let recorded = RECORDED.lock().expect("recorded");
    for (i, k) in recorded.iter().enumerate() {
        let path = out.join(format!("{i:02}_{}.cu", k.name));
        std::fs::write(&path, &k.source).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        println!("{}", path.display());
    }
}

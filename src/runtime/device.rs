//! Device discovery: is there a CUDA driver, how many GPUs, can NVRTC be loaded?
//!
//! We ask the driver ourselves (dlopen + cuInit) before touching the CUDA backend, whose own
//! failures are panics; so a machine with no GPU or no driver gets a sentence, not a crash.

use std::ffi::c_int;

use crate::spec::DeviceSpec;

/// A concrete device a run can train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("device {requested}: {reason}; use --device cpu to train on the CPU")]
    CudaUnavailable { requested: String, reason: String },
    #[error("device cuda:{index} does not exist: this machine has {count} CUDA device(s)")]
    NoSuchGpu { index: usize, count: usize },
    #[error("device {0}: this binary was built without the `cuda` feature")]
    NotBuilt(String),
}

/// Turns `auto`/`cpu`/`cuda:N` into a device, checking that the GPU is really there.
/// `auto` falls back to the CPU (the second value says why) when CUDA is unusable.
pub fn resolve(spec: DeviceSpec) -> Result<(Device, Option<String>), DeviceError> {
    match spec {
        DeviceSpec::Cpu => Ok((Device::Cpu, None)),
        DeviceSpec::Auto => match cuda_device_count() {
            Ok(n) if n > 0 => Ok((Device::Cuda(0), None)),
            Ok(_) => Ok((Device::Cpu, Some("no CUDA device found".into()))),
            Err(why) => Ok((Device::Cpu, Some(why))),
        },
        DeviceSpec::Cuda(index) => {
            if !cfg!(feature = "cuda") {
                return Err(DeviceError::NotBuilt(spec.to_string()));
            }
            let count = cuda_device_count()
                .map_err(|reason| DeviceError::CudaUnavailable { requested: spec.to_string(), reason })?;
            if index >= count {
                return Err(DeviceError::NoSuchGpu { index, count });
            }
            Ok((Device::Cuda(index), None))
        }
    }
}

/// Every usable CUDA device, or an empty list with the reason there are none.
pub fn cuda_devices() -> Result<Vec<Device>, String> {
    cuda_device_count().map(|n| (0..n).map(Device::Cuda).collect())
}

/// The number of CUDA devices the driver reports; Err says why CUDA cannot be used.
pub fn cuda_device_count() -> Result<usize, String> {
    if !cfg!(feature = "cuda") {
        return Err("built without CUDA support".into());
    }
    // SAFETY: loading the system CUDA driver library runs its initialisers, which is what
    // the CUDA backend would do anyway; the symbols have the driver API's C signatures.
    unsafe {
        let lib = libloading::Library::new("libcuda.so.1")
            .or_else(|_| libloading::Library::new("libcuda.so"))
            .map_err(|_| "no CUDA driver (libcuda.so.1 not found)".to_string())?;
        let init: libloading::Symbol<unsafe extern "C" fn(u32) -> c_int> =
            lib.get(b"cuInit\0").map_err(|e| format!("CUDA driver has no cuInit: {e}"))?;
        let rc = init(0);
        if rc != 0 {
            return Err(format!("CUDA driver failed to initialise (cuInit error {rc})"));
        }
        let count: libloading::Symbol<unsafe extern "C" fn(*mut c_int) -> c_int> =
            lib.get(b"cuDeviceGetCount\0").map_err(|e| format!("CUDA driver has no cuDeviceGetCount: {e}"))?;
        let mut n: c_int = 0;
        let rc = count(&mut n);
        if rc != 0 {
            return Err(format!("cuDeviceGetCount failed (error {rc})"));
        }
        if n > 0 {
            nvrtc_present()?;
        }
        // The library stays loaded for the process: the backend loads it again anyway.
        std::mem::forget(lib);
        Ok(n.max(0) as usize)
    }
}

/// CubeCL compiles kernels at run time with NVRTC; without it the backend would panic later.
fn nvrtc_present() -> Result<(), String> {
    const NAMES: &[&str] = &["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"];
    for name in NAMES {
        // SAFETY: as above, loading a system library only.
        if let Ok(lib) = unsafe { libloading::Library::new(name) } {
            std::mem::forget(lib);
            return Ok(());
        }
    }
    Err("CUDA driver found but NVRTC (libnvrtc.so) is not on the library path; \
         add your CUDA lib64 folder to LD_LIBRARY_PATH"
        .into())
}

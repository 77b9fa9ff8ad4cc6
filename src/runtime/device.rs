//! Device discovery: is there a CUDA driver, how many GPUs, can NVRTC be loaded?
//!
//! We ask the driver ourselves (dlopen + cuInit) before touching the CUDA backend, whose own
//! failures are panics; so a machine with no GPU or no driver gets a sentence, not a crash.

use std::ffi::c_int;

use crate::spec::DeviceSpec;

/// A concrete device a run can train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
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
    #[error("--devices: entry {entry:?}: {reason}")]
    BadEntry { entry: String, reason: String },
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

/// Slots per GPU when not configured, host cores permitting: several (paper-sized models use
/// a sliver of an H200).
pub const DEFAULT_GPU_SLOTS: usize = 4;
/// Slots for the CPU when not configured: one, as burn-ndarray already uses every core.
pub const DEFAULT_CPU_SLOTS: usize = 1;
/// Host cores one CUDA slot keeps busy: its training thread and CubeCL's two runner threads,
/// which spin while they wait. With fewer, a run's rate collapses (5 instead of ~40 steps/s
/// with two cores each; docs/performance.md, "Cores per process").
pub const CORES_PER_GPU_SLOT: usize = 3;

/// Default slots per GPU for `gpus` GPU slot groups on a host of `cores` cores:
/// `DEFAULT_GPU_SLOTS`, fewer when the cores do not give each slot `CORES_PER_GPU_SLOT`.
pub fn default_gpu_slots(gpus: usize, cores: usize) -> usize {
    (cores / (CORES_PER_GPU_SLOT * gpus.max(1))).clamp(1, DEFAULT_GPU_SLOTS)
}

fn host_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--devices cuda:0,cuda:1` as a command-line value (see `parse_device_list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList(pub Vec<Device>);

impl std::str::FromStr for DeviceList {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_device_list(s).map(DeviceList)
    }
}

/// Parses `--devices cuda:0,cuda:1` (also `cpu`, `cuda`); a device may repeat, each entry
/// being a group of slots of its own. Only the syntax is checked here: see `slot_groups`.
pub fn parse_device_list(list: &str) -> Result<Vec<Device>, DeviceError> {
    list.split(',')
        .map(|entry| {
            let bad = |reason: &str| DeviceError::BadEntry { entry: entry.trim().to_string(), reason: reason.into() };
            if entry.trim().is_empty() {
                return Err(bad("empty; write e.g. cuda:0,cuda:1"));
            }
            match entry.trim().parse::<DeviceSpec>().map_err(|e| bad(&e))? {
                DeviceSpec::Auto => Err(bad("auto is not one device; leave --devices out to use every GPU")),
                DeviceSpec::Cpu => Ok(Device::Cpu),
                DeviceSpec::Cuda(i) => Ok(Device::Cuda(i)),
            }
        })
        .collect()
}

/// The pool's slot groups: `(device, slots)` for each listed device (each checked to exist),
/// or with no list every CUDA device, else the CPU; `gpu_slots` per GPU (default:
/// `default_gpu_slots` for this host), `cpu_slots` for the CPU.
pub fn slot_groups(
    devices: Option<&[Device]>,
    gpu_slots: Option<usize>,
    cpu_slots: usize,
) -> Result<Vec<(Device, usize)>, DeviceError> {
    let groups = |list: &[Device]| -> Vec<(Device, usize)> {
        let gpus = list.iter().filter(|d| matches!(d, Device::Cuda(_))).count();
        let gpu_slots = gpu_slots.unwrap_or_else(|| default_gpu_slots(gpus, host_cores()));
        list.iter()
            .map(|d| match d {
                Device::Cpu => (*d, cpu_slots.max(1)),
                Device::Cuda(_) => (*d, gpu_slots.max(1)),
            })
            .collect()
    };
    let Some(list) = devices else {
        let found = cuda_devices().unwrap_or_default();
        return Ok(if found.is_empty() { groups(&[Device::Cpu]) } else { groups(&found) });
    };
    if list.iter().any(|d| matches!(d, Device::Cuda(_))) {
        let count = cuda_device_count();
        for d in list {
            if let Device::Cuda(index) = *d {
                let reason = match &count {
                    Err(why) => why.clone(),
                    Ok(n) if index >= *n => DeviceError::NoSuchGpu { index, count: *n }.to_string(),
                    Ok(_) => continue,
                };
                return Err(DeviceError::BadEntry { entry: d.to_string(), reason });
            }
        }
    }
    Ok(groups(list))
}

/// Every usable CUDA device, or an empty list with the reason there are none.
pub fn cuda_devices() -> Result<Vec<Device>, String> {
    cuda_device_count().map(|n| (0..n).map(Device::Cuda).collect())
}

/// For the unit tests that need a GPU: the first CUDA device, or None after a notice on stderr
/// naming `test` and why (no driver, no device), so they skip on CI.
#[cfg(all(test, feature = "cuda"))]
pub fn gpu_or_skip(test: &str) -> Option<burn_cuda::CudaDevice> {
    use std::io::Write;
    match cuda_device_count() {
        Ok(n) if n > 0 => Some(burn_cuda::CudaDevice::new(0)),
        other => {
            let why = other.map_or_else(|e| e, |_| "no CUDA device".to_string());
            let _ = writeln!(std::io::stderr(), "{test}: skipped ({why})");
            None
        }
    }
}

/// The CUDA driver library, initialised (`cuInit`); Err says why CUDA cannot be used.
fn cuda_driver() -> Result<libloading::Library, String> {
    if !cfg!(feature = "cuda") {
        return Err("built without CUDA support".into());
    }
    // SAFETY: loading the system CUDA driver library runs its initialisers, which is what
    // the CUDA backend would do anyway; cuInit has the driver API's C signature.
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
        Ok(lib)
    }
}

/// The number of CUDA devices the driver reports; Err says why CUDA cannot be used.
pub fn cuda_device_count() -> Result<usize, String> {
    let lib = cuda_driver()?;
    // SAFETY: the symbol has the driver API's C signature; the driver is initialised.
    let n = unsafe {
        let count: libloading::Symbol<unsafe extern "C" fn(*mut c_int) -> c_int> =
            lib.get(b"cuDeviceGetCount\0").map_err(|e| format!("CUDA driver has no cuDeviceGetCount: {e}"))?;
        let mut n: c_int = 0;
        let rc = count(&mut n);
        if rc != 0 {
            return Err(format!("cuDeviceGetCount failed (error {rc})"));
        }
        n
    };
    if n > 0 {
        nvrtc_library()?;
    }
    // The library stays loaded for the process: the backend loads it again anyway.
    std::mem::forget(lib);
    Ok(n.max(0) as usize)
}

/// Attributes of CUDA device `ordinal` (`CUdevice_attribute` values), in order.
fn device_attributes<const N: usize>(ordinal: usize, attributes: [c_int; N]) -> Result<[c_int; N], String> {
    let lib = cuda_driver()?;
    // SAFETY: the symbols have the driver API's C signatures (CUdevice is an int); the driver
    // is initialised and an unknown ordinal or attribute is an error code, not undefined behaviour.
    let values = (|| unsafe {
        let get: libloading::Symbol<unsafe extern "C" fn(*mut c_int, c_int) -> c_int> =
            lib.get(b"cuDeviceGet\0").map_err(|e| format!("CUDA driver has no cuDeviceGet: {e}"))?;
        let attribute: libloading::Symbol<unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int> =
            lib.get(b"cuDeviceGetAttribute\0").map_err(|e| format!("CUDA driver has no cuDeviceGetAttribute: {e}"))?;
        let mut device: c_int = 0;
        let rc = get(&mut device, c_int::try_from(ordinal).unwrap_or(c_int::MAX));
        if rc != 0 {
            return Err(format!("cuda:{ordinal}: cuDeviceGet failed (error {rc})"));
        }
        let mut values = [0; N];
        for (value, which) in values.iter_mut().zip(attributes) {
            let rc = attribute(value, which, device);
            if rc != 0 {
                return Err(format!("cuda:{ordinal}: attribute {which} unavailable (error {rc})"));
            }
        }
        Ok(values)
    })();
    // The library stays loaded, as in `cuda_device_count`, whatever the answer.
    std::mem::forget(lib);
    values
}

/// The compute capability (major, minor) of CUDA device `ordinal`: 9.0 on an H100 or H200.
pub fn cuda_compute_capability(ordinal: usize) -> Result<(i32, i32), String> {
    // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, _MINOR
    let [major, minor] = device_attributes(ordinal, [75, 76])?;
    Ok((major, minor))
}

/// The peak memory bandwidth of CUDA device `ordinal` in bytes/s, from the driver's memory
/// clock and bus width (two transfers a clock): 3.35e12 on an H100 SXM.
pub fn cuda_peak_bandwidth(ordinal: usize) -> Result<f64, String> {
    // CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE (kHz), _GLOBAL_MEMORY_BUS_WIDTH (bits)
    let [khz, bits] = device_attributes(ordinal, [36, 37])?;
    Ok(2.0 * f64::from(khz) * 1e3 * f64::from(bits) / 8.0)
}

/// NVRTC's version (major, minor): CubeCL compiles every kernel with it, to PTX that needs a
/// driver of that version or later.
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    let lib = nvrtc_library()?;
    // SAFETY: nvrtcVersion has this C signature in every NVRTC release.
    unsafe {
        let version: libloading::Symbol<unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int> =
            lib.get(b"nvrtcVersion\0").map_err(|e| format!("NVRTC has no nvrtcVersion: {e}"))?;
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        let rc = version(&mut major, &mut minor);
        let out = if rc == 0 { Ok((major, minor)) } else { Err(format!("nvrtcVersion failed (error {rc})")) };
        std::mem::forget(lib);
        out
    }
}

/// CubeCL compiles kernels at run time with NVRTC; without it the backend would panic later.
/// The names in the order CubeCL's loader (cudarc) tries them first, so the library found here
/// is the one that compiles.
fn nvrtc_library() -> Result<libloading::Library, String> {
    const NAMES: &[&str] = &["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"];
    for name in NAMES {
        // SAFETY: as above, loading a system library only.
        if let Ok(lib) = unsafe { libloading::Library::new(name) } {
            return Ok(lib);
        }
    }
    Err("CUDA driver found but NVRTC (libnvrtc.so) is not on the library path; \
         add your CUDA lib64 folder to LD_LIBRARY_PATH"
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpus_properties_come_from_the_driver_or_say_why_not() {
        match cuda_device_count() {
            Ok(n) if n > 0 => {
                let (major, _) = cuda_compute_capability(0).unwrap();
                assert!((3..20).contains(&major), "compute capability {major}");
                let bandwidth = cuda_peak_bandwidth(0).unwrap();
                assert!((1e11..1e14).contains(&bandwidth), "{bandwidth} bytes/s");
                assert!(cuda_compute_capability(n + 7).unwrap_err().contains(&format!("cuda:{}", n + 7)));
            }
            _ => {
                assert!(!cuda_compute_capability(0).unwrap_err().is_empty());
                assert!(!cuda_peak_bandwidth(0).unwrap_err().is_empty());
            }
        }
    }

    #[test]
    fn device_lists_parse_and_may_repeat_a_device() {
        assert_eq!(parse_device_list("cuda:0,cuda:1").unwrap(), [Device::Cuda(0), Device::Cuda(1)]);
        assert_eq!(parse_device_list(" cuda:0 , cuda:0").unwrap(), [Device::Cuda(0), Device::Cuda(0)]);
        assert_eq!(parse_device_list("cpu,cuda").unwrap(), [Device::Cpu, Device::Cuda(0)]);
    }

    #[test]
    fn bad_device_lists_name_the_entry() {
        let e = parse_device_list("cuda:0,cuda:x").unwrap_err().to_string();
        assert!(e.starts_with("--devices: entry \"cuda:x\": device must be auto, cpu, cuda or cuda:N"), "{e}");
        let e = parse_device_list("cuda:0,").unwrap_err().to_string();
        assert!(e.contains("entry \"\"") && e.contains("empty"), "{e}");
        let e = parse_device_list("auto").unwrap_err().to_string();
        assert!(e.contains("auto is not one device"), "{e}");
    }

    #[test]
    fn slot_groups_default_and_check_each_gpu() {
        assert_eq!(slot_groups(Some(&[Device::Cpu, Device::Cpu]), Some(4), 2).unwrap(), [(Device::Cpu, 2), (Device::Cpu, 2)]);
        let gpus = cuda_device_count().unwrap_or(0);
        let e = slot_groups(Some(&[Device::Cpu, Device::Cuda(gpus)]), Some(4), 1).unwrap_err().to_string();
        assert!(e.starts_with(&format!("--devices: entry \"cuda:{gpus}\": ")), "{e}");
        let default = slot_groups(None, None, DEFAULT_CPU_SLOTS).unwrap();
        if gpus == 0 {
            assert_eq!(default, [(Device::Cpu, 1)]);
        } else {
            assert_eq!(default.len(), gpus);
            let n = default_gpu_slots(gpus, host_cores());
            assert!(default.iter().all(|&(d, k)| matches!(d, Device::Cuda(_)) && k == n));
        }
    }

    #[test]
    fn default_gpu_slots_leave_three_cores_a_slot() {
        assert_eq!(default_gpu_slots(1, 16), 4, "the H200 box: 4 slots use 12 of 16 cores");
        assert_eq!(default_gpu_slots(1, 9), 3);
        assert_eq!(default_gpu_slots(2, 12), 2);
        assert_eq!(default_gpu_slots(8, 128), 4);
        assert_eq!(default_gpu_slots(1, 2), 1, "never below one slot");
        assert_eq!(default_gpu_slots(0, 2), 1, "CPU-only: the GPU count is not a divisor");
    }
}

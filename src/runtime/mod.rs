//! Where runs execute: device discovery and the backend each device maps to.

pub mod child;
pub mod device;
pub mod kernel_cache;
pub mod lab;
pub mod pool;
pub mod slurm;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use device::{resolve, Device, DeviceError};
pub use pool::{Job, Pool, PoolEvent, PoolSnapshot, StopReason};

use crate::spec::ExperimentSpec;
use crate::train::{self, RunSummary, TrainControl, TrainEvent};

/// The CPU backend: burn-ndarray with autodiff.
pub type CpuBackend = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

/// The CUDA backend (CubeCL, fused, fp32) with autodiff.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<burn_cuda::Cuda<f32, i32>>;

/// The CUDA backend's code path on the CPU emulator of the GPU (`kernels/emu`), with autodiff:
/// kernels are compiled as for CUDA and recorded (or run on the CPU), for timing a step's host
/// work with no GPU (`icl-lab bench host`).
#[cfg(feature = "emulator")]
pub type EmuBackend = burn::backend::Autodiff<icl_lab_emu::EmuFusion>;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("training on {device} failed: {reason}")]
    Backend { device: Device, reason: String },
}

/// Trains `spec` on `device`, turning a backend panic into an error instead of a crash.
pub fn train_on(
    device: Device,
    spec: &ExperimentSpec,
    ctl: &TrainControl,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, RunError> {
    let mut summaries = train_members_on(device, std::slice::from_ref(spec), std::slice::from_ref(ctl), &mut |_, event| on_event(event))?;
    Ok(summaries.remove(0))
}

/// Trains `specs` (the same but for seed and name) as the members of one stacked model on
/// `device` (`train::train_members`), turning a backend panic into an error.
pub fn train_members_on(
    device: Device,
    specs: &[ExperimentSpec],
    ctls: &[TrainControl],
    on_event: &mut dyn FnMut(usize, TrainEvent),
) -> Result<Vec<RunSummary>, RunError> {
    let result = catch_unwind(AssertUnwindSafe(|| match device {
        Device::Cpu => Ok(train::train_members::<CpuBackend>(specs, &burn::backend::ndarray::NdArrayDevice::Cpu, ctls, on_event)),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => {
            kernel_cache::configure(i);
            Ok(train::train_members::<CudaBackend>(specs, &burn_cuda::CudaDevice::new(i), ctls, on_event))
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(RunError::Device(DeviceError::NotBuilt(device.to_string()))),
    }));
    match result {
        Ok(r) => r,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the backend panicked".into());
            Err(RunError::Backend { device, reason })
        }
    }
}

/// Whether the environment variable `$var` leaves a fast path on: off only when it holds `$off`
/// (surrounding spaces ignored). Read once per process and call site, so a run never switches
/// paths midway.
macro_rules! fast_path_on {
    ($var:literal, off: $off:literal) => {{
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| std::env::var($var).map_or(true, |v| v.trim() != $off))
    }};
}
pub(crate) use fast_path_on;

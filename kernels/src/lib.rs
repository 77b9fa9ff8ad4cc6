//! Fused kernels for icl-lab, as CubeCL kernels wired into burn as a backend extension.
//!
//! [`scan`]: the selective scan of Mamba (paper-spec §6.2 steps 6–8), forward and backward,
//! one kernel launch each. Backends get it through [`scan::FusedScan`], implemented for
//! burn's CubeCL backend, for it under burn-fusion (as a custom fusion operation) and for
//! both under `Autodiff` (with its own backward). The tensor-op scan in `icl_lab::models::scan`
//! stays the reference these kernels are tested against (on a GPU: `icl-lab bench scan --check`).

pub mod scan;

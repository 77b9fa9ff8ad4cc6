//! Fused kernels for icl-lab. The selective scan and causal conv1d land here as CubeCL
//! kernels wired into burn as a backend extension (issue 7); the models' tensor-op versions
//! in `icl_lab::models` stay the reference they are tested against.

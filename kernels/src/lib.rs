//! Fused kernels for icl-lab, as CubeCL kernels wired into burn as a backend extension.
//!
//! [`scan`]: the selective scan of Mamba (paper-spec §6.2 steps 6–8), forward and backward,
//! one kernel launch each. [`attention`]: causal softmax attention over the packed q, k, v
//! projection, forward and backward, with no `t x t` matrix in memory. [`layer_norm`]: LayerNorm
//! over the last dimension, one kernel each way. [`adam`]: global-norm clipping and Adam for
//! all parameters as one operation. [`linear`]: a linear layer's matmuls, each with the
//! strategy measured fastest for it ([`matmul`] names the strategies; [`gemm`] is our own
//! TF32 matmul kernel), and its bias. [`column_sum`]: sums over the rows of a matrix, for the gradients that reduce over
//! many rows. Backends get each
//! through a `Fused*` trait, implemented for burn's CubeCL backend, for it under burn-fusion
//! (as a custom fusion operation) and for both under `Autodiff` (with its own backward). The
//! tensor-op forms in `icl_lab::models` stay the references these kernels are tested against
//! (on a GPU: `icl-lab bench scan --check`, `bench attention --check`, `bench layer-norm --check`).

pub mod adam;
pub mod attention;
pub mod column_sum;
pub mod conv;
pub mod gemm;
mod fusion_op;
mod source_kernel;
mod lanes;
pub mod layer_norm;
pub mod linear;
pub mod matmul;
pub mod scan;

use std::sync::OnceLock;

/// A hash of this crate's source and the workspace's `Cargo.lock` (build.rs): two builds with
/// the same fingerprint compile every kernel to the same code, so they may share compiled
/// kernels on disk.
pub const SOURCE_FINGERPRINT: &str = env!("ICL_LAB_KERNELS_FINGERPRINT");

/// Whether kernels launch with CubeCL's bounds checks (`ICL_LAB_KERNEL_CHECKS=1`): every
/// read past a tensor's end gives 0 and every such write is dropped, at the cost of a compare
/// per access. Off by default: the kernels' indices are in bounds by construction (rows and
/// channels past the end are clamped), and `icl-lab bench scan --check` / `bench attention
/// --check` pass with and without the checks. Read once per process.
pub fn bounds_checked() -> bool {
    static CHECKED: OnceLock<bool> = OnceLock::new();
    *CHECKED.get_or_init(|| std::env::var("ICL_LAB_KERNEL_CHECKS").is_ok_and(|v| matches!(v.trim(), "1" | "true")))
}

/// A process-wide setting from the environment variable `name`: what `parse` makes of its
/// value, or `default` when it is unset. A value `parse` refuses is reported on stderr (the
/// variable, the value, why) and `default` is used. Callers keep the result in a `OnceLock`,
/// so the choice is made, and reported, once per process.
pub(crate) fn env_choice<T: Copy + std::fmt::Display>(name: &str, default: T, parse: impl FnOnce(&str) -> Result<T, String>) -> T {
    match std::env::var(name) {
        Ok(v) => parse(&v).unwrap_or_else(|why| {
            eprintln!("{name}={v:?}: {why}; using {default}");
            default
        }),
        Err(_) => default,
    }
}

/// `kernel::launch` with bounds checks when [`bounds_checked`], else `kernel::launch_unchecked`
/// (kernels declared `#[cube(launch, launch_unchecked)]`).
macro_rules! launch {
    ($kernel:ident :: <$r:ty>($($arg:expr),* $(,)?)) => {
        if $crate::bounds_checked() {
            $kernel::launch::<$r>($($arg),*)
        } else {
            // SAFETY: every index the kernel forms is within its tensor (see `bounds_checked`).
            unsafe { $kernel::launch_unchecked::<$r>($($arg),*) }
        }
    };
}
pub(crate) use launch;

#[cfg(test)]
mod tests {
    #[test]
    fn env_choices_take_a_good_value_and_fall_back_on_a_bad_or_missing_one() {
        // Variable names used by no other test.
        let parse = |v: &str| v.trim().parse::<u32>().map_err(|e| e.to_string());
        std::env::set_var("ICL_LAB_TEST_ENV_CHOICE_GOOD", " 7 ");
        assert_eq!(super::env_choice("ICL_LAB_TEST_ENV_CHOICE_GOOD", 3, parse), 7);
        std::env::set_var("ICL_LAB_TEST_ENV_CHOICE_BAD", "seven");
        assert_eq!(super::env_choice("ICL_LAB_TEST_ENV_CHOICE_BAD", 3, parse), 3);
        assert_eq!(super::env_choice("ICL_LAB_TEST_ENV_CHOICE_UNSET", 3, parse), 3);
    }
}

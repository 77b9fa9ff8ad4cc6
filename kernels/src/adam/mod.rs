//! Adam with clipping by the global gradient norm, for all of a model's parameters in one
//! operation: about `2·⌈P/16⌉ + 1` kernel launches for `P` parameters (sums of squares and
//! updates 16 parameters a launch, an update launch one step number) and, under burn-fusion,
//! one recorded
//! operation,
//! where burn's `Adam` after the tensor-op clipping records about 18 operations per
//! parameter (the host's work per operation, not the GPU's, bounds our small models' steps).
//!
//! Layering as in [`crate::layer_norm`]: [`AdamKernels`] on `CubeBackend` ([`cube`]) and
//! `Fusion<CubeBackend>` ([`fusion`]); the optimiser runs on an autodiff backend's inner
//! backend, so there is no autodiff implementation.

mod cube;
mod fusion;
mod kernel;

use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

/// Adam's settings and the clipping norm, the same for every parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamSettings {
    pub lr: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Gradients are scaled by `min(1, max_norm / (‖g‖ + 1e-6))`, ‖g‖ over all parameters
    /// (over each member's part of them, for members).
    pub max_norm: f32,
    /// Runs stacked as one model: every parameter's first axis holds this many members' rows
    /// one after another, each member clipped by its own norm (1: a plain model).
    pub members: usize,
}

impl AdamSettings {
    /// The bias-correction factors of a parameter's step number `time` (1 for its first
    /// step), as burn's `Adam` computes them: `(step_factor, eps_hat)`.
    pub fn corrections(&self, time: i32) -> (f32, f32) {
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(time)).sqrt();
        (bias_correction2_sqrt / (1.0 - self.beta_1.powi(time)), self.epsilon * bias_correction2_sqrt)
    }
}

/// One parameter's tensors: value, gradient and the two moments (zeros before its first step),
/// all of one shape, and its step number counting this one.
pub struct AdamParam<B: Backend> {
    pub value: FloatTensor<B>,
    pub grad: FloatTensor<B>,
    pub moment_1: FloatTensor<B>,
    pub moment_2: FloatTensor<B>,
    pub time: i32,
}

/// A parameter after the step.
pub struct AdamUpdated<B: Backend> {
    pub value: FloatTensor<B>,
    pub moment_1: FloatTensor<B>,
    pub moment_2: FloatTensor<B>,
}

pub trait AdamKernels: Backend {
    /// One clipped Adam step of every parameter; also the gradients' global norm before
    /// clipping, one per member (`[members]`). Panics if a parameter's element count is not a
    /// multiple of the members.
    fn clipped_adam(params: Vec<AdamParam<Self>>, settings: AdamSettings) -> (Vec<AdamUpdated<Self>>, FloatTensor<Self>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_are_burns() {
        let s = AdamSettings { lr: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, max_norm: 1.0, members: 1 };
        let (step_factor, eps_hat) = s.corrections(1);
        // First step: sqrt(1 - 0.999) / (1 - 0.9), up to f32's cancellation in 1 - 0.999.
        assert!((step_factor - 0.001f32.sqrt() / 0.1).abs() < 1e-5, "{step_factor}");
        assert!((eps_hat - 1e-8 * 0.001f32.sqrt()).abs() < 1e-12, "{eps_hat}");
        // Late steps: both corrections go to 1.
        let (late, late_eps) = s.corrections(100_000);
        assert!((late - 1.0).abs() < 1e-6 && (late_eps - 1e-8).abs() < 1e-12);
        // A cube of the norm kernel covers whole warps.
        assert_eq!(kernel::THREADS % 32, 0);
    }
}

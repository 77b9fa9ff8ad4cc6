//! Gradient clipping by the global norm over all parameters, as PyTorch's
//! `clip_grad_norm_` (burn's built-in clipping works per parameter).
//!
//! The norm and the scale stay on the device: no host sync per step.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Σ g² over every gradient, per member of a stacked model (`models::members`): `[K]`.
struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    members: usize,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let sq = match self.members {
                1 => (g.clone() * g).sum(),
                k => crate::models::members::sum_per_member(g.clone() * g, k),
            };
            self.total = Some(match self.total.take() {
                Some(t) => t + sq,
                None => sq,
            });
        }
    }
}

struct Scale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    coef: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let k = self.coef.dims()[0];
            let scaled = if k == 1 {
                g * self.coef.clone().reshape([1usize; D])
            } else {
                let shape = g.shape();
                (g.reshape([k as i32, -1]) * self.coef.clone().reshape([k, 1])).reshape(shape)
            };
            self.grads.register::<B::InnerBackend, D>(param.id, scaled);
        }
    }
}

/// Scales all gradients by `min(1, max_norm / (norm + 1e-6))` and returns the norm before
/// clipping, as a device tensor (read it only when you log it). With `members` > 1 the
/// module is a stacked model (`models::members`): each member is clipped by its own norm,
/// as its own run would be, and the norms come back as `[members]`.
pub fn clip_global_norm<B: AutodiffBackend, M: burn::module::AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
    members: usize,
) -> Option<Tensor<B::InnerBackend, 1>> {
    let mut sq = SquaredNorm::<B> { grads, members, total: None };
    module.visit(&mut sq);
    let norm = sq.total?.sqrt();
    let coef = (norm.clone().add_scalar(1e-6).recip() * max_norm).clamp_max(1.0);
    module.visit(&mut Scale::<B> { grads, coef });
    Some(norm)
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Module;

    use super::*;
    use crate::models::IclModel;
    use crate::spec::ModelSpec;

    type B = Autodiff<NdArray<f32>>;

    /// Host-side global norm over every gradient, the plain way.
    struct HostNorm<'a> {
        grads: &'a GradientsParams,
        sum: f64,
        count: usize,
    }

    impl ModuleVisitor<B> for HostNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<NdArray<f32>, D>(param.id) {
                self.sum += g.into_data().iter::<f32>().map(|v| (v as f64).powi(2)).sum::<f64>();
                self.count += 1;
            }
        }
    }

    fn grads() -> (IclModel<B>, GradientsParams) {
        let dev = NdArrayDevice::Cpu;
        let spec = ModelSpec::Gpt2 { n_embd: 16, n_layer: 2, n_head: 2, n_positions: 4 };
        let model = IclModel::<B>::new(&spec, 3, 1, 0, &dev);
        let x = Tensor::<B, 3>::random([4, 8, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let loss = (model.forward(x) * 100.0).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (model, grads)
    }

    fn host_norm(model: &IclModel<B>, grads: &GradientsParams) -> (f64, usize) {
        let mut v = HostNorm { grads, sum: 0.0, count: 0 };
        model.visit(&mut v);
        (v.sum.sqrt(), v.count)
    }

    #[test]
    fn clips_to_the_global_norm() {
        let (model, mut grads) = grads();
        let (before, count) = host_norm(&model, &grads);
        assert_eq!(count, model.num_params_tensors());
        let reported: f32 = clip_global_norm::<B, _>(&model, &mut grads, before / 4.0, 1).unwrap().into_scalar();
        assert!(((reported as f64) - before).abs() < 1e-3 * before, "{reported} vs {before}");
        let (after, _) = host_norm(&model, &grads);
        assert!((after - before / 4.0).abs() < 1e-3 * before, "{after} vs {}", before / 4.0);
    }

    #[test]
    fn leaves_small_gradients_alone() {
        let (model, mut grads) = grads();
        let (before, _) = host_norm(&model, &grads);
        clip_global_norm::<B, _>(&model, &mut grads, before * 2.0, 1);
        let (after, _) = host_norm(&model, &grads);
        assert!((after - before).abs() < 1e-5 * before);
    }

    trait CountTensors {
        fn num_params_tensors(&self) -> usize;
    }

    impl CountTensors for IclModel<B> {
        fn num_params_tensors(&self) -> usize {
            struct Count(usize);
            impl ModuleVisitor<B> for Count {
                fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<B, D>>) {
                    self.0 += 1;
                }
            }
            let mut c = Count(0);
            self.visit(&mut c);
            c.0
        }
    }
}

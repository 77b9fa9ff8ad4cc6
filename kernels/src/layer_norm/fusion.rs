//! The LayerNorm kernels under burn-fusion, as custom fusion operations
//! ([`crate::fusion_op::register`]).

use std::marker::PhantomData;

use burn::tensor::Shape;
use burn_fusion::stream::Operation;
use burn_fusion::{Fusion, FusionBackend, FusionHandle, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer};

use crate::fusion_op::register;

use super::{FusedLayerNorm, LayerNormKernels};

#[derive(Debug)]
struct ForwardOp<B> {
    desc: CustomOpIr,
    eps: f32,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + LayerNormKernels> Operation<B::FusionRuntime> for ForwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let [x, gamma, beta] = [0, 1, 2].map(|i| handles.get_float_tensor::<B>(&self.desc.inputs[i]));
        let (y, mean, rstd) = B::layer_norm_forward(x, gamma, beta, self.eps);
        for (out, t) in self.desc.outputs.iter().zip([y, mean, rstd]) {
            handles.register_float_tensor::<B>(&out.id, t);
        }
    }
}

#[derive(Debug)]
struct BackwardOp<B> {
    desc: CustomOpIr,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + LayerNormKernels> Operation<B::FusionRuntime> for BackwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let [x, gamma, mean, rstd, dy] = [0, 1, 2, 3, 4].map(|i| handles.get_float_tensor::<B>(&self.desc.inputs[i]));
        let (dx, dgamma, dbeta) = B::layer_norm_backward(x, gamma, mean, rstd, dy);
        for (out, t) in self.desc.outputs.iter().zip([dx, dgamma, dbeta]) {
            handles.register_float_tensor::<B>(&out.id, t);
        }
    }
}

impl<B: FusionBackend + LayerNormKernels> LayerNormKernels for Fusion<B> {
    fn layer_norm_forward(
        x: FusionTensor<B::FusionRuntime>,
        gamma: FusionTensor<B::FusionRuntime>,
        beta: FusionTensor<B::FusionRuntime>,
        eps: f32,
    ) -> (FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>) {
        let rows = x.shape.num_elements() / x.shape[x.shape.num_dims() - 1];
        let shapes = [x.shape.clone(), Shape::new([rows]), Shape::new([rows])];
        let dtype = x.dtype;
        let out = register::<B, _>("icl_lab_layer_norm_forward", vec![x, gamma, beta], &shapes, dtype, |desc| ForwardOp::<B> {
            desc,
            eps,
            _b: PhantomData,
        });
        let [y, mean, rstd]: [_; 3] = out.try_into().expect("three outputs");
        (y, mean, rstd)
    }

    fn layer_norm_backward(
        x: FusionTensor<B::FusionRuntime>,
        gamma: FusionTensor<B::FusionRuntime>,
        mean: FusionTensor<B::FusionRuntime>,
        rstd: FusionTensor<B::FusionRuntime>,
        dy: FusionTensor<B::FusionRuntime>,
    ) -> (FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>) {
        let shapes = [x.shape.clone(), gamma.shape.clone(), gamma.shape.clone()];
        let dtype = x.dtype;
        let out = register::<B, _>("icl_lab_layer_norm_backward", vec![x, gamma, mean, rstd, dy], &shapes, dtype, |desc| BackwardOp::<B> {
            desc,
            _b: PhantomData,
        });
        let [dx, dgamma, dbeta]: [_; 3] = out.try_into().expect("three gradients");
        (dx, dgamma, dbeta)
    }
}

impl<B: FusionBackend + LayerNormKernels> FusedLayerNorm for Fusion<B> {
    fn fused_layer_norm(x: FusionTensor<B::FusionRuntime>, gamma: FusionTensor<B::FusionRuntime>, beta: FusionTensor<B::FusionRuntime>, eps: f32) -> FusionTensor<B::FusionRuntime> {
        Self::layer_norm_forward(x, gamma, beta, eps).0
    }
}

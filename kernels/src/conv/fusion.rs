//! The conv kernels under burn-fusion, as custom fusion operations
//! ([`crate::fusion_op::register`]).

use std::marker::PhantomData;

use burn_fusion::stream::Operation;
use burn_fusion::{Fusion, FusionBackend, FusionHandle, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer};

use crate::fusion_op::register;

use super::{CausalConvKernels, FusedCausalConv};

#[derive(Debug)]
struct ForwardOp<B> {
    desc: CustomOpIr,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + CausalConvKernels> Operation<B::FusionRuntime> for ForwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let [x, w, bias] = [0, 1, 2].map(|i| handles.get_float_tensor::<B>(&self.desc.inputs[i]));
        handles.register_float_tensor::<B>(&self.desc.outputs[0].id, B::causal_conv_forward(x, w, bias));
    }
}

#[derive(Debug)]
struct BackwardOp<B> {
    desc: CustomOpIr,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + CausalConvKernels> Operation<B::FusionRuntime> for BackwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let [x, w, dy] = [0, 1, 2].map(|i| handles.get_float_tensor::<B>(&self.desc.inputs[i]));
        let (dx, dw, dbias) = B::causal_conv_backward(x, w, dy);
        for (out, t) in self.desc.outputs.iter().zip([dx, dw, dbias]) {
            handles.register_float_tensor::<B>(&out.id, t);
        }
    }
}

impl<B: FusionBackend + CausalConvKernels> CausalConvKernels for Fusion<B> {
    fn causal_conv_forward(x: FusionTensor<B::FusionRuntime>, w: FusionTensor<B::FusionRuntime>, bias: FusionTensor<B::FusionRuntime>) -> FusionTensor<B::FusionRuntime> {
        let shapes = [x.shape.clone()];
        let dtype = x.dtype;
        let mut out = register::<B, _>("icl_lab_causal_conv_forward", vec![x, w, bias], &shapes, dtype, |desc| ForwardOp::<B> { desc, _b: PhantomData });
        out.remove(0)
    }

    fn causal_conv_backward(
        x: FusionTensor<B::FusionRuntime>,
        w: FusionTensor<B::FusionRuntime>,
        dy: FusionTensor<B::FusionRuntime>,
    ) -> (FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>) {
        let c = w.shape[0];
        let shapes = [x.shape.clone(), w.shape.clone(), burn::tensor::Shape::new([c])];
        let dtype = x.dtype;
        let out = register::<B, _>("icl_lab_causal_conv_backward", vec![x, w, dy], &shapes, dtype, |desc| BackwardOp::<B> { desc, _b: PhantomData });
        let [dx, dw, dbias]: [_; 3] = out.try_into().expect("three gradients");
        (dx, dw, dbias)
    }
}

impl<B: FusionBackend + CausalConvKernels> FusedCausalConv for Fusion<B> {
    fn fused_causal_conv(x: FusionTensor<B::FusionRuntime>, w: FusionTensor<B::FusionRuntime>, bias: FusionTensor<B::FusionRuntime>) -> FusionTensor<B::FusionRuntime> {
        Self::causal_conv_forward(x, w, bias)
    }
}

//! The linear map's matmuls under burn-fusion, as custom fusion operations
//! ([`crate::fusion_op::register`]).

use std::marker::PhantomData;

use burn::tensor::Shape;
use burn_fusion::stream::Operation;
use burn_fusion::{Fusion, FusionBackend, FusionHandle, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer};

use crate::fusion_op::register;

use super::{FusedLinear, LinearKernels};

#[derive(Debug)]
struct ForwardOp<B> {
    desc: CustomOpIr,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + LinearKernels> Operation<B::FusionRuntime> for ForwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let [x, w] = [0, 1].map(|i| handles.get_float_tensor::<B>(&self.desc.inputs[i]));
        // A third input is the bias.
        let b = self.desc.inputs.get(2).map(|b| handles.get_float_tensor::<B>(b));
        handles.register_float_tensor::<B>(&self.desc.outputs[0].id, B::linear_forward(x, w, b));
    }
}

#[derive(Debug)]
struct BackwardOp<B> {
    desc: CustomOpIr,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + LinearKernels> Operation<B::FusionRuntime> for BackwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let [x, w, dy] = [0, 1, 2].map(|i| handles.get_float_tensor::<B>(&self.desc.inputs[i]));
        // A third output is ∂b.
        let (dx, dw, db) = B::linear_backward(x, w, dy, self.desc.outputs.len() == 3);
        for (out, t) in self.desc.outputs.iter().zip([Some(dx), Some(dw), db]) {
            handles.register_float_tensor::<B>(&out.id, t.expect("∂b when it has an output"));
        }
    }
}

impl<B: FusionBackend + LinearKernels> LinearKernels for Fusion<B> {
    fn linear_forward(x: FusionTensor<B::FusionRuntime>, w: FusionTensor<B::FusionRuntime>, b: Option<FusionTensor<B::FusionRuntime>>) -> FusionTensor<B::FusionRuntime> {
        let shape = Shape::new([x.shape[0], x.shape[1], w.shape[1]]);
        let dtype = x.dtype;
        let inputs = [x, w].into_iter().chain(b).collect();
        let mut out = register::<B, _>("icl_lab_linear_forward", inputs, &[shape], dtype, |desc| ForwardOp::<B> { desc, _b: PhantomData });
        out.remove(0)
    }

    fn linear_backward(
        x: FusionTensor<B::FusionRuntime>,
        w: FusionTensor<B::FusionRuntime>,
        dy: FusionTensor<B::FusionRuntime>,
        bias: bool,
    ) -> (FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>, Option<FusionTensor<B::FusionRuntime>>) {
        let mut shapes = vec![x.shape.clone(), w.shape.clone()];
        if bias {
            // One bias a member: w holds K = w rows / x's width members.
            shapes.push(Shape::new([w.shape[0] / x.shape[2] * w.shape[1]]));
        }
        let dtype = x.dtype;
        let mut out = register::<B, _>("icl_lab_linear_backward", vec![x, w, dy], &shapes, dtype, |desc| BackwardOp::<B> { desc, _b: PhantomData }).into_iter();
        let (dx, dw) = (out.next().expect("∂x"), out.next().expect("∂w"));
        (dx, dw, out.next())
    }
}

impl<B: FusionBackend + LinearKernels> FusedLinear for Fusion<B> {
    fn fused_linear(x: FusionTensor<B::FusionRuntime>, w: FusionTensor<B::FusionRuntime>, b: Option<FusionTensor<B::FusionRuntime>>) -> FusionTensor<B::FusionRuntime> {
        Self::linear_forward(x, w, b)
    }
}

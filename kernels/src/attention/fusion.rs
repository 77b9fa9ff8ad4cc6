//! The attention kernels under burn-fusion, as custom fusion operations
//! ([`crate::fusion_op::register`]).

use std::marker::PhantomData;

use burn::tensor::Shape;
use burn_fusion::stream::Operation;
use burn_fusion::{Fusion, FusionBackend, FusionHandle, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer};

use crate::fusion_op::register;

use super::{AttentionKernels, FusedAttention};

#[derive(Debug)]
struct ForwardOp<B> {
    desc: CustomOpIr,
    heads: usize,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + AttentionKernels> Operation<B::FusionRuntime> for ForwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let qkv = handles.get_float_tensor::<B>(&self.desc.inputs[0]);
        let (y, lse) = B::attention_forward(qkv, self.heads);
        handles.register_float_tensor::<B>(&self.desc.outputs[0].id, y);
        handles.register_float_tensor::<B>(&self.desc.outputs[1].id, lse);
    }
}

#[derive(Debug)]
struct BackwardOp<B> {
    desc: CustomOpIr,
    heads: usize,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + AttentionKernels> Operation<B::FusionRuntime> for BackwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let [qkv, y, lse, dy] = [0, 1, 2, 3].map(|i| handles.get_float_tensor::<B>(&self.desc.inputs[i]));
        let dqkv = B::attention_backward(qkv, y, lse, dy, self.heads);
        handles.register_float_tensor::<B>(&self.desc.outputs[0].id, dqkv);
    }
}

impl<B: FusionBackend + AttentionKernels> AttentionKernels for Fusion<B> {
    fn attention_forward(qkv: FusionTensor<B::FusionRuntime>, heads: usize) -> (FusionTensor<B::FusionRuntime>, FusionTensor<B::FusionRuntime>) {
        let [nb, t, e3] = qkv.shape.dims::<3>();
        let dtype = qkv.dtype;
        let shapes = [Shape::new([nb, t, e3 / 3]), Shape::new([nb, heads, t])];
        let mut out = register::<B, _>("icl_lab_causal_attention_forward", vec![qkv], &shapes, dtype, |desc| ForwardOp::<B> {
            desc,
            heads,
            _b: PhantomData,
        });
        let lse = out.pop().expect("lse");
        (out.pop().expect("y"), lse)
    }

    fn attention_backward(
        qkv: FusionTensor<B::FusionRuntime>,
        y: FusionTensor<B::FusionRuntime>,
        lse: FusionTensor<B::FusionRuntime>,
        dy: FusionTensor<B::FusionRuntime>,
        heads: usize,
    ) -> FusionTensor<B::FusionRuntime> {
        let shapes = [qkv.shape.clone()];
        let dtype = qkv.dtype;
        let mut out = register::<B, _>("icl_lab_causal_attention_backward", vec![qkv, y, lse, dy], &shapes, dtype, |desc| BackwardOp::<B> {
            desc,
            heads,
            _b: PhantomData,
        });
        out.pop().expect("dqkv")
    }
}

impl<B: FusionBackend + AttentionKernels> FusedAttention for Fusion<B> {
    fn fused_attention(qkv: FusionTensor<B::FusionRuntime>, heads: usize) -> FusionTensor<B::FusionRuntime> {
        Self::attention_forward(qkv, heads).0
    }
}

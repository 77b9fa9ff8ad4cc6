//! The kernels under burn-fusion: each is registered in the fusion stream as a custom
//! operation (`OperationIr::Custom`) with its inputs and outputs declared, so the tensors
//! before and after it still fuse; when the stream executes it, the operation runs the inner
//! backend's kernel on the resolved tensors.

use std::marker::PhantomData;

use burn::tensor::Shape;
use burn_fusion::stream::Operation;
use burn_fusion::{Fusion, FusionBackend, FusionHandle, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer};

use crate::fusion_op::register;

use super::cube::states_shape;
use super::{chosen_time_split, layout_of, DeltaSoftplus, FusedScan, Layout, Scan, ScanKernels, TimeSplit};

#[derive(Debug)]
struct ForwardOp<B> {
    desc: CustomOpIr,
    softplus: DeltaSoftplus,
    save: bool,
    layout: Layout,
    split: TimeSplit,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + ScanKernels> Operation<B::FusionRuntime> for ForwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let inputs: Vec<_> = self.desc.inputs.iter().map(|t| handles.get_float_tensor::<B>(t)).collect();
        let inputs: [_; 6] = inputs.try_into().expect("six scan inputs");
        let (y, states) = B::scan_forward(Scan::from_array(inputs), self.softplus, self.save, self.layout, self.split);
        handles.register_float_tensor::<B>(&self.desc.outputs[0].id, y);
        if let Some(states) = states {
            handles.register_float_tensor::<B>(&self.desc.outputs[1].id, states);
        }
    }
}

#[derive(Debug)]
struct BackwardOp<B> {
    desc: CustomOpIr,
    softplus: DeltaSoftplus,
    split: TimeSplit,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + ScanKernels> Operation<B::FusionRuntime> for BackwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let mut inputs: Vec<_> = self.desc.inputs.iter().map(|t| handles.get_float_tensor::<B>(t)).collect();
        let dy = inputs.pop().expect("dy");
        let states = inputs.pop().expect("states");
        let inputs: [_; 6] = inputs.try_into().expect("six scan inputs");
        let grads = B::scan_backward(Scan::from_array(inputs), self.softplus, states, dy, self.split);
        for (out, grad) in self.desc.outputs.iter().zip(grads.into_array()) {
            handles.register_float_tensor::<B>(&out.id, grad);
        }
    }
}

impl<B: FusionBackend + ScanKernels> ScanKernels for Fusion<B> {
    fn scan_forward(
        inp: Scan<FusionTensor<B::FusionRuntime>>,
        softplus: DeltaSoftplus,
        save: bool,
        layout: Layout,
        split: TimeSplit,
    ) -> (FusionTensor<B::FusionRuntime>, Option<FusionTensor<B::FusionRuntime>>) {
        let [nb, l, e] = inp.x.shape.dims::<3>();
        let n = inp.a.shape.dims::<2>()[1];
        let dtype = inp.x.dtype;
        let mut shapes = vec![Shape::new([nb, l, e])];
        if save {
            shapes.push(states_shape(layout, [nb, l, e, n], super::chosen_tile()));
        }
        let inputs = inp.into_array().to_vec();
        let mut out = register::<B, _>("icl_lab_selective_scan_forward", inputs, &shapes, dtype, |desc| ForwardOp::<B> {
            desc,
            softplus,
            save,
            layout,
            split,
            _b: PhantomData,
        });
        let states = save.then(|| out.pop().expect("states"));
        (out.pop().expect("y"), states)
    }

    fn scan_backward(
        inp: Scan<FusionTensor<B::FusionRuntime>>,
        softplus: DeltaSoftplus,
        states: FusionTensor<B::FusionRuntime>,
        dy: FusionTensor<B::FusionRuntime>,
        split: TimeSplit,
    ) -> Scan<FusionTensor<B::FusionRuntime>> {
        let shapes: Vec<Shape> = [&inp.x, &inp.delta, &inp.a, &inp.b, &inp.c, &inp.d].iter().map(|t| t.shape.clone()).collect();
        let dtype = inp.x.dtype;
        let mut inputs = inp.into_array().to_vec();
        inputs.push(states);
        inputs.push(dy);
        let out = register::<B, _>("icl_lab_selective_scan_backward", inputs, &shapes, dtype, |desc| BackwardOp::<B> {
            desc,
            softplus,
            split,
            _b: PhantomData,
        });
        let out: [_; 6] = out.try_into().expect("six scan gradients");
        Scan::from_array(out)
    }
}

impl<B: FusionBackend + ScanKernels> FusedScan for Fusion<B> {
    fn fused_scan(inp: Scan<FusionTensor<B::FusionRuntime>>, softplus: DeltaSoftplus) -> FusionTensor<B::FusionRuntime> {
        let layout = layout_of(&inp);
        Self::scan_forward(inp, softplus, false, layout, chosen_time_split()).0
    }
}

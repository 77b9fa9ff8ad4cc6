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
use super::{chosen_time_split, layout_of, DeltaSoftplus, FusedScan, Layout, Saved, Scan, ScanKernels, TimeSplit};

/// Inputs: the six operands, then the gate z of a gated scan. Outputs: y, then when saving
/// the states, then for a gated scan the ungated y.
#[derive(Debug)]
struct ForwardOp<B> {
    desc: CustomOpIr,
    gated: bool,
    softplus: DeltaSoftplus,
    save: bool,
    layout: Layout,
    split: TimeSplit,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + ScanKernels> Operation<B::FusionRuntime> for ForwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let mut inputs: Vec<_> = self.desc.inputs.iter().map(|t| handles.get_float_tensor::<B>(t)).collect();
        let gate = if self.gated { inputs.pop() } else { None };
        let inputs: [_; 6] = inputs.try_into().expect("six scan inputs");
        let (y, saved) = B::scan_forward(Scan::from_array(inputs), gate, self.softplus, self.save, self.layout, self.split);
        let saved = saved.map(|Saved { states, ungated }| std::iter::once(states).chain(ungated));
        for (out, tensor) in self.desc.outputs.iter().zip(std::iter::once(y).chain(saved.into_iter().flatten())) {
            handles.register_float_tensor::<B>(&out.id, tensor);
        }
    }
}

/// Inputs: the six operands, the gate z of a gated scan, the saved states, the ungated y of a
/// gated scan, ∂y. Outputs: the six gradients, then ∂z of a gated scan.
#[derive(Debug)]
struct BackwardOp<B> {
    desc: CustomOpIr,
    gated: bool,
    softplus: DeltaSoftplus,
    split: TimeSplit,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + ScanKernels> Operation<B::FusionRuntime> for BackwardOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let mut inputs: Vec<_> = self.desc.inputs.iter().map(|t| handles.get_float_tensor::<B>(t)).collect();
        let dy = inputs.pop().expect("dy");
        let ungated = if self.gated { inputs.pop() } else { None };
        let states = inputs.pop().expect("states");
        let gate = if self.gated { inputs.pop() } else { None };
        let inputs: [_; 6] = inputs.try_into().expect("six scan inputs");
        let (grads, dz) = B::scan_backward(Scan::from_array(inputs), gate, self.softplus, Saved { states, ungated }, dy, self.split);
        for (out, grad) in self.desc.outputs.iter().zip(grads.into_array().into_iter().chain(dz)) {
            handles.register_float_tensor::<B>(&out.id, grad);
        }
    }
}

impl<B: FusionBackend + ScanKernels> ScanKernels for Fusion<B> {
    fn scan_forward(
        inp: Scan<FusionTensor<B::FusionRuntime>>,
        gate: Option<FusionTensor<B::FusionRuntime>>,
        softplus: DeltaSoftplus,
        save: bool,
        layout: Layout,
        split: TimeSplit,
    ) -> (FusionTensor<B::FusionRuntime>, Option<Saved<FusionTensor<B::FusionRuntime>>>) {
        let [nb, l, e] = inp.x.shape.dims::<3>();
        let n = inp.a.shape.dims::<2>()[1];
        let dtype = inp.x.dtype;
        let gated = gate.is_some();
        let mut shapes = vec![Shape::new([nb, l, e])];
        if save {
            shapes.push(states_shape(layout, [nb, l, e, n], super::chosen_tile()));
            if gated {
                shapes.push(Shape::new([nb, l, e]));
            }
        }
        let mut inputs = inp.into_array().to_vec();
        inputs.extend(gate);
        let out = register::<B, _>("icl_lab_selective_scan_forward", inputs, &shapes, dtype, |desc| ForwardOp::<B> {
            desc,
            gated,
            softplus,
            save,
            layout,
            split,
            _b: PhantomData,
        });
        let mut out = out.into_iter();
        let y = out.next().expect("y");
        let saved = save.then(|| Saved { states: out.next().expect("states"), ungated: out.next() });
        (y, saved)
    }

    fn scan_backward(
        inp: Scan<FusionTensor<B::FusionRuntime>>,
        gate: Option<FusionTensor<B::FusionRuntime>>,
        softplus: DeltaSoftplus,
        saved: Saved<FusionTensor<B::FusionRuntime>>,
        dy: FusionTensor<B::FusionRuntime>,
        split: TimeSplit,
    ) -> (Scan<FusionTensor<B::FusionRuntime>>, Option<FusionTensor<B::FusionRuntime>>) {
        let mut shapes: Vec<Shape> = [&inp.x, &inp.delta, &inp.a, &inp.b, &inp.c, &inp.d].iter().map(|t| t.shape.clone()).collect();
        let dtype = inp.x.dtype;
        let gated = gate.is_some();
        assert_eq!(gated, saved.ungated.is_some(), "selective scan backward: a gated scan's forward saves its ungated y");
        shapes.extend(gate.as_ref().map(|z| z.shape.clone()));
        let mut inputs = inp.into_array().to_vec();
        inputs.extend(gate);
        inputs.push(saved.states);
        inputs.extend(saved.ungated);
        inputs.push(dy);
        let mut out = register::<B, _>("icl_lab_selective_scan_backward", inputs, &shapes, dtype, |desc| BackwardOp::<B> {
            desc,
            gated,
            softplus,
            split,
            _b: PhantomData,
        });
        let dz = if gated { out.pop() } else { None };
        let out: [_; 6] = out.try_into().expect("six scan gradients");
        (Scan::from_array(out), dz)
    }
}

impl<B: FusionBackend + ScanKernels> FusedScan for Fusion<B> {
    fn fused_scan(inp: Scan<FusionTensor<B::FusionRuntime>>, gate: Option<FusionTensor<B::FusionRuntime>>, softplus: DeltaSoftplus) -> FusionTensor<B::FusionRuntime> {
        let layout = layout_of(&inp);
        Self::scan_forward(inp, gate, softplus, false, layout, chosen_time_split()).0
    }
}

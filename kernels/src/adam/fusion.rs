//! The Adam step under burn-fusion: one custom fusion operation
//! ([`crate::fusion_op::register`]) whose inputs are every parameter's value, gradient and
//! moments and whose outputs are the new ones and the norm.

use std::marker::PhantomData;

use burn::tensor::Shape;
use burn_fusion::stream::Operation;
use burn_fusion::{Fusion, FusionBackend, FusionHandle, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer};

use crate::fusion_op::register;

use super::{AdamKernels, AdamParam, AdamSettings, AdamUpdated};

#[derive(Debug)]
struct AdamOp<B> {
    desc: CustomOpIr,
    times: Vec<i32>,
    settings: AdamSettings,
    _b: PhantomData<B>,
}

impl<B: FusionBackend + AdamKernels> Operation<B::FusionRuntime> for AdamOp<B> {
    fn execute(&self, handles: &mut HandleContainer<FusionHandle<B::FusionRuntime>>) {
        let count = self.times.len();
        let mut inputs: Vec<_> = self.desc.inputs.iter().map(|t| handles.get_float_tensor::<B>(t)).collect();
        let moment_2 = inputs.split_off(3 * count);
        let moment_1 = inputs.split_off(2 * count);
        let grads = inputs.split_off(count);
        let params = inputs
            .into_iter()
            .zip(grads)
            .zip(moment_1.into_iter().zip(moment_2))
            .zip(&self.times)
            .map(|(((value, grad), (moment_1, moment_2)), &time)| AdamParam { value, grad, moment_1, moment_2, time })
            .collect();
        let (updated, norm) = B::clipped_adam(params, self.settings);
        for (i, u) in updated.into_iter().enumerate() {
            handles.register_float_tensor::<B>(&self.desc.outputs[i].id, u.value);
            handles.register_float_tensor::<B>(&self.desc.outputs[count + i].id, u.moment_1);
            handles.register_float_tensor::<B>(&self.desc.outputs[2 * count + i].id, u.moment_2);
        }
        handles.register_float_tensor::<B>(&self.desc.outputs[3 * count].id, norm);
    }
}

impl<B: FusionBackend + AdamKernels> AdamKernels for Fusion<B> {
    fn clipped_adam(params: Vec<AdamParam<Self>>, settings: AdamSettings) -> (Vec<AdamUpdated<Self>>, FusionTensor<B::FusionRuntime>) {
        let count = params.len();
        let dtype = params.first().expect("clipped_adam: no parameters").value.dtype;
        let times = params.iter().map(|p| p.time).collect();
        let mut shapes: Vec<Shape> = Vec::with_capacity(3 * count + 1);
        for _ in 0..3 {
            shapes.extend(params.iter().map(|p| p.value.shape.clone()));
        }
        shapes.push(Shape::new([settings.members.max(1)]));
        let (mut values, mut grads, mut m1, mut m2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in params {
            values.push(p.value);
            grads.push(p.grad);
            m1.push(p.moment_1);
            m2.push(p.moment_2);
        }
        let inputs = [values, grads, m1, m2].concat();
        let mut out = register::<B, _>("icl_lab_clipped_adam", inputs, &shapes, dtype, |desc| AdamOp::<B> { desc, times, settings, _b: PhantomData });
        let norm = out.pop().expect("the norm");
        let moment_2 = out.split_off(2 * count);
        let moment_1 = out.split_off(count);
        let updated = out.into_iter().zip(moment_1).zip(moment_2).map(|((value, moment_1), moment_2)| AdamUpdated { value, moment_1, moment_2 }).collect();
        (updated, norm)
    }
}

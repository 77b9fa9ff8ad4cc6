//! Launching the Adam kernels on burn's CubeCL backend.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;

use super::kernel::{adam_update_kernel, clip_coefficient_kernel, square_sum_kernel, AdamScalarsLaunch, CHUNK, GROUP, THREADS};
use super::{AdamKernels, AdamParam, AdamSettings, AdamUpdated};

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> AdamKernels for CubeBackend<R, F, I, BT> {
    fn clipped_adam(params: Vec<AdamParam<Self>>, s: AdamSettings) -> (Vec<AdamUpdated<Self>>, CubeTensor<R>) {
        let first = params.first().expect("clipped_adam: no parameters");
        let (client, device, dtype) = (first.value.client.clone(), first.value.device.clone(), first.value.dtype);
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let params: Vec<AdamParam<Self>> = params
            .into_iter()
            .map(|p| {
                assert_eq!(p.grad.shape(), p.value.shape(), "clipped_adam: a gradient's shape differs from its parameter's");
                AdamParam { value: into_contiguous(p.value), grad: into_contiguous(p.grad), moment_1: into_contiguous(p.moment_1), moment_2: into_contiguous(p.moment_2), time: p.time }
            })
            .collect();
        let sizes: Vec<usize> = params.iter().map(|p| p.value.shape().num_elements()).collect();
        let members = s.members.max(1);
        for &n in &sizes {
            assert!(n.is_multiple_of(members), "clipped_adam: a parameter of {n} elements does not split into {members} members");
        }

        // Partial sums of squares, one per CHUNK of each member's part of each gradient, into
        // one buffer laid out member by member (`stride` partials a member); GROUP gradients
        // a launch (a short last group repeats its first, with no elements).
        let chunks: Vec<usize> = sizes.iter().map(|n| (n / members).div_ceil(CHUNK)).collect();
        let offsets: Vec<usize> = chunks.iter().scan(0, |at, c| Some(std::mem::replace(at, *at + c))).collect();
        let stride: usize = chunks.iter().sum();
        let partials = empty(Shape::new([(members * stride).max(1)]));
        for group in (0..params.len()).collect::<Vec<_>>().chunks(GROUP) {
            let slot = |k: usize| group.get(k).copied();
            let grad = |k: usize| params[slot(k).unwrap_or(group[0])].grad.clone().into_tensor_arg();
            let n = |k: usize| slot(k).map_or(0, |i| sizes[i]) as u32;
            let offset = |k: usize| slot(k).map_or(0, |i| offsets[i]) as u32;
            let widest = group.iter().map(|&i| members * chunks[i]).max().unwrap_or(0);
            if widest > 0 {
                crate::launch!(square_sum_kernel::<R>(
                    &client,
                    CubeCount::Static(widest as u32, group.len() as u32, 1),
                    CubeDim::new_1d(THREADS as u32),
                    grad(0),
                    grad(1),
                    grad(2),
                    grad(3),
                    partials.clone().into_tensor_arg(),
                    n(0),
                    n(1),
                    n(2),
                    n(3),
                    offset(0),
                    offset(1),
                    offset(2),
                    offset(3),
                    members as u32,
                    stride as u32,
                    dtype.into(),
                ));
            }
        }
        let (norm, coef) = (empty(Shape::new([members])), empty(Shape::new([members])));
        crate::launch!(clip_coefficient_kernel::<R>(
            &client,
            CubeCount::Static(members as u32, 1, 1),
            CubeDim::new_1d(THREADS as u32),
            partials.into_tensor_arg(),
            norm.clone().into_tensor_arg(),
            coef.clone().into_tensor_arg(),
            stride as u32,
            s.max_norm,
            dtype.into(),
        ));

        // Updates by pairs of parameters with the same step number (a lone one is paired
        // with itself, given no elements).
        let outs: Vec<AdamUpdated<Self>> = params
            .iter()
            .map(|p| {
                let shape = p.value.shape();
                AdamUpdated { value: empty(shape.clone()), moment_1: empty(shape.clone()), moment_2: empty(shape) }
            })
            .collect();
        let mut i = 0;
        while i < params.len() {
            let j = if i + 1 < params.len() && params[i + 1].time == params[i].time { i + 1 } else { i };
            let (ni, nj) = (sizes[i] as u32, if j > i { sizes[j] as u32 } else { 0 });
            let widest = ni.max(nj) as usize;
            if widest > 0 {
                let (step_factor, eps_hat) = s.corrections(params[i].time);
                let (a, b) = (&params[i], &params[j]);
                let (oa, ob) = (&outs[i], &outs[j]);
                let arg = |t: &CubeTensor<R>| t.clone().into_tensor_arg();
                crate::launch!(adam_update_kernel::<R>(
                    &client,
                    CubeCount::Static(widest.div_ceil(THREADS) as u32, 2, 1),
                    CubeDim::new_1d(THREADS as u32),
                    arg(&a.value),
                    arg(&a.grad),
                    arg(&a.moment_1),
                    arg(&a.moment_2),
                    arg(&oa.value),
                    arg(&oa.moment_1),
                    arg(&oa.moment_2),
                    arg(&b.value),
                    arg(&b.grad),
                    arg(&b.moment_1),
                    arg(&b.moment_2),
                    arg(&ob.value),
                    arg(&ob.moment_1),
                    arg(&ob.moment_2),
                    arg(&coef),
                    ni,
                    nj,
                    members as u32,
                    AdamScalarsLaunch::new(s.lr, s.beta_1, 1.0 - s.beta_1, s.beta_2, 1.0 - s.beta_2, step_factor, eps_hat),
                    dtype.into(),
                ));
            }
            i = j + 1;
        }
        let updated = outs;
        (updated, norm)
    }
}

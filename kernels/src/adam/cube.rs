//! Launching the Adam kernels on burn's CubeCL backend.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;

use super::kernel::{adam_update_kernel, clip_coefficient_kernel, square_sum_kernel, AdamScalarsLaunch, CHUNK, GROUP, THREADS};
use super::{AdamKernels, AdamParam, AdamSettings, AdamUpdated};

/// A launch's sequence of [`GROUP`] values, one per parameter of `group` (at most `GROUP`),
/// the rest repeating the first: the kernels bind them but their grid never reaches them.
fn padded<R: Runtime, T: LaunchArg>(group: &[usize], value: impl Fn(usize) -> T::RuntimeArg<R>) -> SequenceArg<R, T> {
    assert!(!group.is_empty() && group.len() <= GROUP, "a group of {} parameters", group.len());
    let mut seq = SequenceArg::new();
    for k in 0..GROUP {
        seq.push(value(*group.get(k).unwrap_or(&group[0])));
    }
    seq
}

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
        // one buffer laid out member by member (`stride` partials a member).
        let chunks: Vec<usize> = sizes.iter().map(|n| (n / members).div_ceil(CHUNK)).collect();
        let offsets: Vec<usize> = chunks.iter().scan(0, |at, c| Some(std::mem::replace(at, *at + c))).collect();
        let stride: usize = chunks.iter().sum();
        let partials = empty(Shape::new([(members * stride).max(1)]));
        let arg = |t: &CubeTensor<R>| t.clone().into_tensor_arg();
        // Parameters of like sizes share a launch, so few of its cubes find nothing to do.
        let mut by_size: Vec<usize> = (0..params.len()).collect();
        by_size.sort_by_key(|&i| sizes[i]);
        for group in by_size.chunks(GROUP) {
            let widest = group.iter().map(|&i| members * chunks[i]).max().unwrap_or(0);
            if widest > 0 {
                crate::launch!(square_sum_kernel::<R>(
                    &client,
                    CubeCount::Static(widest as u32, group.len() as u32, 1),
                    CubeDim::new_1d(THREADS as u32),
                    padded(group, |i| arg(&params[i].grad)),
                    partials.clone().into_tensor_arg(),
                    padded(group, |i| sizes[i] as u32),
                    padded(group, |i| offsets[i] as u32),
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

        // Updates by groups of parameters with the same step number, like sizes together.
        let outs: Vec<AdamUpdated<Self>> = params
            .iter()
            .map(|p| {
                let shape = p.value.shape();
                AdamUpdated { value: empty(shape.clone()), moment_1: empty(shape.clone()), moment_2: empty(shape) }
            })
            .collect();
        let mut by_time: Vec<usize> = (0..params.len()).collect();
        by_time.sort_by_key(|&i| (params[i].time, sizes[i]));
        for same_time in by_time.chunk_by(|&i, &j| params[i].time == params[j].time) {
            for group in same_time.chunks(GROUP) {
                let widest = group.iter().map(|&i| sizes[i]).max().unwrap_or(0);
                if widest == 0 {
                    continue;
                }
                let (step_factor, eps_hat) = s.corrections(params[group[0]].time);
                crate::launch!(adam_update_kernel::<R>(
                    &client,
                    CubeCount::Static(widest.div_ceil(THREADS) as u32, group.len() as u32, 1),
                    CubeDim::new_1d(THREADS as u32),
                    padded(group, |i| arg(&params[i].value)),
                    padded(group, |i| arg(&params[i].grad)),
                    padded(group, |i| arg(&params[i].moment_1)),
                    padded(group, |i| arg(&params[i].moment_2)),
                    padded(group, |i| arg(&outs[i].value)),
                    padded(group, |i| arg(&outs[i].moment_1)),
                    padded(group, |i| arg(&outs[i].moment_2)),
                    arg(&coef),
                    padded(group, |i| sizes[i] as u32),
                    members as u32,
                    AdamScalarsLaunch::new(s.lr, s.beta_1, 1.0 - s.beta_1, s.beta_2, 1.0 - s.beta_2, step_factor, eps_hat),
                    dtype.into(),
                ));
            }
        }
        let updated = outs;
        (updated, norm)
    }
}

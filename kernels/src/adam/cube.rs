//! Launching the Adam kernels on burn's CubeCL backend.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;

use super::kernel::{adam_update_kernel, clip_coefficient_kernel, square_sum_kernel, CHUNK, THREADS};
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

        // Partial sums of squares, one per CHUNK of each gradient, into one buffer.
        let cubes: Vec<usize> = sizes.iter().map(|n| n.div_ceil(CHUNK)).collect();
        let count: usize = cubes.iter().sum();
        let partials = empty(Shape::new([count.max(1)]));
        let mut offset = 0;
        for ((p, &n), &c) in params.iter().zip(&sizes).zip(&cubes) {
            if c > 0 {
                crate::launch!(square_sum_kernel::<R>(
                    &client,
                    CubeCount::Static(c as u32, 1, 1),
                    CubeDim::new_1d(THREADS as u32),
                    p.grad.clone().into_tensor_arg(),
                    partials.clone().into_tensor_arg(),
                    offset as u32,
                    n as u32,
                    dtype.into(),
                ));
            }
            offset += c;
        }
        let (norm, coef) = (empty(Shape::new([1])), empty(Shape::new([1])));
        crate::launch!(clip_coefficient_kernel::<R>(
            &client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(THREADS as u32),
            partials.into_tensor_arg(),
            norm.clone().into_tensor_arg(),
            coef.clone().into_tensor_arg(),
            count as u32,
            s.max_norm,
            dtype.into(),
        ));

        let updated = params
            .into_iter()
            .zip(sizes)
            .map(|(p, n)| {
                let shape = p.value.shape();
                let out: AdamUpdated<Self> = AdamUpdated { value: empty(shape.clone()), moment_1: empty(shape.clone()), moment_2: empty(shape) };
                if n > 0 {
                    let (step_factor, eps_hat) = s.corrections(p.time);
                    crate::launch!(adam_update_kernel::<R>(
                        &client,
                        CubeCount::Static(n.div_ceil(THREADS) as u32, 1, 1),
                        CubeDim::new_1d(THREADS as u32),
                        p.value.into_tensor_arg(),
                        p.grad.into_tensor_arg(),
                        p.moment_1.into_tensor_arg(),
                        p.moment_2.into_tensor_arg(),
                        coef.clone().into_tensor_arg(),
                        out.value.clone().into_tensor_arg(),
                        out.moment_1.clone().into_tensor_arg(),
                        out.moment_2.clone().into_tensor_arg(),
                        n as u32,
                        s.lr,
                        s.beta_1,
                        1.0 - s.beta_1,
                        s.beta_2,
                        1.0 - s.beta_2,
                        step_factor,
                        eps_hat,
                        dtype.into(),
                    ));
                }
                out
            })
            .collect();
        (updated, norm)
    }
}

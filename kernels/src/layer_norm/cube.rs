//! Launching the LayerNorm kernels on burn's CubeCL backend.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;

use crate::column_sum::column_sums;
use super::kernel::{layer_norm_backward_kernel, layer_norm_forward_kernel, ROWS_PER_WARP, WARPS};
use super::{members, supports_width, FusedLayerNorm, LayerNormKernels};

/// Rows and width of `x` (normalised over its last dimension) and the members γ holds, checked.
fn sizes<R: CubeRuntime>(x: &CubeTensor<R>, gamma: &CubeTensor<R>) -> (usize, usize, usize) {
    let shape = x.shape();
    let e = shape[shape.num_dims() - 1];
    assert!(supports_width(e), "layer norm: no kernel for width {e}");
    let rows = shape.num_elements() / e;
    (rows, e, members(rows, e, gamma.shape().num_elements()))
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> LayerNormKernels for CubeBackend<R, F, I, BT> {
    fn layer_norm_forward(x: CubeTensor<R>, gamma: CubeTensor<R>, beta: CubeTensor<R>, eps: f32) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
        let (x, gamma, beta) = (into_contiguous(x), into_contiguous(gamma), into_contiguous(beta));
        let (rows, e, members) = sizes(&x, &gamma);
        let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let y = empty(x.shape());
        let (mean, rstd) = (empty(Shape::new([rows])), empty(Shape::new([rows])));
        let count = CubeCount::Static(rows.div_ceil(WARPS) as u32, 1, 1);
        crate::launch!(layer_norm_forward_kernel::<R>(
            &client,
            count,
            CubeDim::new_1d((WARPS * 32) as u32),
            x.into_tensor_arg(),
            gamma.into_tensor_arg(),
            beta.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            mean.clone().into_tensor_arg(),
            rstd.clone().into_tensor_arg(),
            rows as u32,
            (rows / members).max(1) as u32,
            e / 32,
            eps.to_bits(),
            dtype.into(),
        ));
        (y, mean, rstd)
    }

    fn layer_norm_backward(x: CubeTensor<R>, gamma: CubeTensor<R>, mean: CubeTensor<R>, rstd: CubeTensor<R>, dy: CubeTensor<R>) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
        let (x, gamma, dy) = (into_contiguous(x), into_contiguous(gamma), into_contiguous(dy));
        let (rows, e, members) = sizes(&x, &gamma);
        assert_eq!(dy.shape(), x.shape(), "layer norm backward: dy must have x's shape");
        let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let rows_per_member = rows / members;
        // At least one cube a member, so every member's partials are written (zeros if no rows).
        let chunks = rows_per_member.div_ceil(WARPS * ROWS_PER_WARP).max(1);
        let dx = empty(x.shape());
        let parts = empty(Shape::new([chunks, 2 * members * e]));
        crate::launch!(layer_norm_backward_kernel::<R>(
            &client,
            CubeCount::Static((chunks * members) as u32, 1, 1),
            CubeDim::new_1d((WARPS * 32) as u32),
            x.into_tensor_arg(),
            gamma.into_tensor_arg(),
            into_contiguous(mean).into_tensor_arg(),
            into_contiguous(rstd).into_tensor_arg(),
            dy.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            parts.clone().into_tensor_arg(),
            members as u32,
            rows_per_member as u32,
            e / 32,
            dtype.into(),
        ));
        let (dgamma, dbeta) = column_sums(parts, members * e);
        (dx, dgamma, dbeta)
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedLayerNorm for CubeBackend<R, F, I, BT> {
    fn fused_layer_norm(x: CubeTensor<R>, gamma: CubeTensor<R>, beta: CubeTensor<R>, eps: f32) -> CubeTensor<R> {
        Self::layer_norm_forward(x, gamma, beta, eps).0
    }
}

//! Launching the conv kernels on burn's CubeCL backend.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::ops::reshape;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;

use super::kernel::{causal_conv_backward_kernel, causal_conv_forward_kernel};
use super::{supports_width, CausalConvKernels, FusedCausalConv};
use crate::column_sum::column_sums;

/// Threads a cube.
const BLOCK: usize = 256;
/// Steps of a sequence one backward thread takes: a thread per (piece, channel), and one
/// partial sum of ∂w and ∂bias a piece.
const SPAN: usize = 128;

/// x as the kernels read it, and how far apart its steps lie: as it is when its channels are
/// adjacent and its steps evenly spaced (a column slice of a wider tensor, as Mamba's x half of
/// in_proj's output is), else a contiguous copy. Reading the slice in place saves a copy of x
/// in the forward and another in the backward (the autodiff state keeps the slice).
fn steps_of<R: CubeRuntime>(x: CubeTensor<R>) -> (CubeTensor<R>, usize) {
    let [_, l, c] = x.shape().dims::<3>();
    let strides = x.meta.strides();
    let step = strides[1];
    if strides[2] == 1 && step >= c && strides[0] == l * step {
        (x, step)
    } else {
        (into_contiguous(x), c)
    }
}

/// `[b, l, c]`, `k` and the members K (w `[K·c, k]` over `b = K·b'` sequences), checked.
fn sizes<R: CubeRuntime>(x: &CubeTensor<R>, w: &CubeTensor<R>) -> ([usize; 3], usize, usize) {
    let [b, l, c] = x.shape().dims::<3>();
    let [wc, k] = w.shape().dims::<2>();
    assert!(b > 0 && l > 0 && c > 0, "causal conv: empty input [{b}, {l}, {c}]");
    let members = wc / c;
    assert!(members >= 1 && members * c == wc && b.is_multiple_of(members), "causal conv: w's {wc} channels are not whole members of x's {c} over {b} sequences");
    assert!(supports_width(k), "causal conv: no kernel for {k} taps");
    ([b, l, c], k, members)
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> CausalConvKernels for CubeBackend<R, F, I, BT> {
    fn causal_conv_forward(x: CubeTensor<R>, w: CubeTensor<R>, bias: CubeTensor<R>) -> CubeTensor<R> {
        let ((x, x_step), w, bias) = (steps_of(x), into_contiguous(w), into_contiguous(bias));
        let ([b, l, c], k, members) = sizes(&x, &w);
        let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
        let y = empty_device_contiguous_dtype::<R>(client.clone(), device, Shape::new([b, l, c]), dtype);
        let total = b * l * c;
        crate::launch!(causal_conv_forward_kernel::<R>(
            &client,
            CubeCount::Static(total.div_ceil(BLOCK) as u32, 1, 1),
            CubeDim::new_1d(BLOCK as u32),
            x.into_tensor_arg(),
            w.into_tensor_arg(),
            bias.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            l as u32,
            c as u32,
            x_step as u32,
            (b / members) as u32,
            total as u32,
            k,
            dtype.into(),
        ));
        y
    }

    fn causal_conv_backward(x: CubeTensor<R>, w: CubeTensor<R>, dy: CubeTensor<R>) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
        let ((x, x_step), w, dy) = (steps_of(x), into_contiguous(w), into_contiguous(dy));
        let ([b, l, c], k, members) = sizes(&x, &w);
        assert_eq!(dy.shape().dims::<3>(), [b, l, c], "causal conv backward: dy must have x's shape");
        let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let pieces = b * l.div_ceil(SPAN);
        assert!(pieces <= 65_535, "causal conv backward: {pieces} sequence pieces exceed the grid's y limit");
        let dx = empty(Shape::new([b, l, c]));
        // A row per piece of a member's sequences; each member's ∂w then ∂bias side by side.
        let kc = members * c;
        let parts = empty(Shape::new([pieces / members, kc * (k + 1)]));
        crate::launch!(causal_conv_backward_kernel::<R>(
            &client,
            CubeCount::Static(c.div_ceil(BLOCK) as u32, pieces as u32, 1),
            CubeDim::new_1d(BLOCK as u32),
            x.into_tensor_arg(),
            w.into_tensor_arg(),
            dy.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            parts.clone().into_tensor_arg(),
            l as u32,
            c as u32,
            x_step as u32,
            members as u32,
            (b / members) as u32,
            SPAN as u32,
            k,
            dtype.into(),
        ));
        let (dw, dbias) = column_sums(parts, kc * k);
        (dx, reshape(dw, Shape::new([kc, k])), dbias)
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedCausalConv for CubeBackend<R, F, I, BT> {
    fn fused_causal_conv(x: CubeTensor<R>, w: CubeTensor<R>, bias: CubeTensor<R>) -> CubeTensor<R> {
        Self::causal_conv_forward(x, w, bias)
    }
}

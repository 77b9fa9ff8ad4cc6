//! Launching the attention kernels on burn's CubeCL backend.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;

use super::kernel::{attention_backward_key_kernel, attention_backward_query_kernel, attention_forward_kernel, BLOCK};
use super::{chosen_lanes, supports_head_size, AttentionKernels, FusedAttention};

/// `[b, t, e]` and the head size of a packed `qkv`, checked.
fn sizes<R: CubeRuntime>(qkv: &CubeTensor<R>, heads: usize) -> ([usize; 3], usize) {
    let [nb, t, e3] = qkv.shape().dims::<3>();
    let e = e3 / 3;
    assert!(nb > 0 && t > 0 && heads > 0 && e3 == 3 * e && e % heads == 0, "causal attention: qkv [{nb}, {t}, {e3}] with {heads} heads");
    assert!(supports_head_size(e / heads), "causal attention: no kernel for head size {}", e / heads);
    assert!(t.div_ceil(BLOCK) <= 65_535, "causal attention: {t} rows exceed the grid's y limit (65,535 tiles of {BLOCK})");
    ([nb, t, e], e / heads)
}

/// A cube per (batch row x head, tile of rows), `lanes` threads a row.
fn grid(nb: usize, t: usize, heads: usize, lanes: usize) -> (CubeCount, CubeDim) {
    (CubeCount::Static((nb * heads) as u32, t.div_ceil(BLOCK) as u32, 1), CubeDim::new_1d((BLOCK * lanes) as u32))
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> AttentionKernels for CubeBackend<R, F, I, BT> {
    fn attention_forward(qkv: CubeTensor<R>, heads: usize) -> (CubeTensor<R>, CubeTensor<R>) {
        let qkv = into_contiguous(qkv);
        let ([nb, t, e], d) = sizes(&qkv, heads);
        let (client, device, dtype) = (qkv.client.clone(), qkv.device.clone(), qkv.dtype);
        // Dense outputs: the kernels index them row-major (CubeCL may pad rows otherwise).
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let y = empty(Shape::new([nb, t, e]));
        let lse = empty(Shape::new([nb, heads, t]));
        let lanes = chosen_lanes();
        let (count, dim) = grid(nb, t, heads, lanes);
        crate::launch!(attention_forward_kernel::<R>(
            &client,
            count,
            dim,
            qkv.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            lse.clone().into_tensor_arg(),
            t as u32,
            heads as u32,
            d,
            lanes,
            dtype.into(),
        ));
        (y, lse)
    }

    fn attention_backward(qkv: CubeTensor<R>, y: CubeTensor<R>, lse: CubeTensor<R>, dy: CubeTensor<R>, heads: usize) -> CubeTensor<R> {
        let (qkv, y, lse, dy) = (into_contiguous(qkv), into_contiguous(y), into_contiguous(lse), into_contiguous(dy));
        let ([nb, t, e], d) = sizes(&qkv, heads);
        assert_eq!(dy.shape().dims::<3>(), [nb, t, e], "causal attention backward: dy must have y's shape");
        let (client, device, dtype) = (qkv.client.clone(), qkv.device.clone(), qkv.dtype);
        let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let dqkv = empty(Shape::new([nb, t, 3 * e]));
        let dsum = empty(Shape::new([nb, heads, t]));
        let lanes = chosen_lanes();
        let (count, dim) = grid(nb, t, heads, lanes);
        // Same stream: the key-side kernel reads the row sums the query-side one wrote.
        crate::launch!(attention_backward_query_kernel::<R>(
            &client,
            count.clone(),
            dim,
            qkv.clone().into_tensor_arg(),
            y.into_tensor_arg(),
            dy.clone().into_tensor_arg(),
            lse.clone().into_tensor_arg(),
            dsum.clone().into_tensor_arg(),
            dqkv.clone().into_tensor_arg(),
            t as u32,
            heads as u32,
            d,
            lanes,
            dtype.into(),
        ));
        crate::launch!(attention_backward_key_kernel::<R>(
            &client,
            count,
            dim,
            qkv.into_tensor_arg(),
            dy.into_tensor_arg(),
            lse.into_tensor_arg(),
            dsum.into_tensor_arg(),
            dqkv.clone().into_tensor_arg(),
            t as u32,
            heads as u32,
            d,
            lanes,
            dtype.into(),
        ));
        dqkv
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedAttention for CubeBackend<R, F, I, BT> {
    fn fused_attention(qkv: CubeTensor<R>, heads: usize) -> CubeTensor<R> {
        Self::attention_forward(qkv, heads).0
    }
}

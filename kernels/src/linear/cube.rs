//! The linear map's matmuls on burn's CubeCL backend.

use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubek::matmul::launch::Strategy;

use super::{FusedLinear, LinearKernels, FORWARD, INPUT_GRAD, WEIGHT_GRAD};
use crate::matmul::{matmul_with, strategy};

/// `lhs @ rhs` with the strategy `name`, or burn's default where that one cannot run.
fn matmul<R: CubeRuntime>(name: &str, lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> CubeTensor<R> {
    let chosen = strategy(name).expect("a known strategy");
    matmul_with(&chosen, lhs.clone(), rhs.clone())
        .or_else(|_| matmul_with(&Strategy::Auto, lhs, rhs))
        .expect("burn's default matmul strategy runs on every operand")
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> LinearKernels for CubeBackend<R, F, I, BT> {
    fn linear_forward(x: CubeTensor<R>, w: CubeTensor<R>) -> CubeTensor<R> {
        let [d_in, d_out] = w.shape().dims();
        matmul(FORWARD, x, Self::float_reshape(w, Shape::new([1, d_in, d_out])))
    }

    fn linear_backward(x: CubeTensor<R>, w: CubeTensor<R>, dy: CubeTensor<R>) -> (CubeTensor<R>, CubeTensor<R>) {
        let [d_in, d_out] = w.shape().dims();
        let w_t = Self::float_swap_dims(Self::float_reshape(w, Shape::new([1, d_in, d_out])), 1, 2);
        let dx = matmul(INPUT_GRAD, dy.clone(), w_t);
        let per_batch = matmul(WEIGHT_GRAD, Self::float_swap_dims(x, 1, 2), dy);
        let dw = Self::float_reshape(Self::float_sum_dim(per_batch, 0), Shape::new([d_in, d_out]));
        (dx, dw)
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedLinear for CubeBackend<R, F, I, BT> {
    fn fused_linear(x: CubeTensor<R>, w: CubeTensor<R>) -> CubeTensor<R> {
        Self::linear_forward(x, w)
    }
}

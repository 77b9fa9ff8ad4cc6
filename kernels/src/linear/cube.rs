//! The linear map's matmuls on burn's CubeCL backend.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubek::matmul::launch::Strategy;

use super::{add_bias, FusedLinear, LinearKernels, FORWARD, INPUT_GRAD, WEIGHT_GRAD};
use crate::column_sum::column_sum;
use crate::matmul::{matmul_with, strategy};

/// A strategy and the shapes and strides of the operands it could not take.
type Refusal = (&'static str, [Vec<usize>; 4]);

/// Operands a strategy refused, so that later calls with the same ones go straight to burn's
/// default instead of failing (and formatting the error) again each step.
fn refused() -> &'static Mutex<HashSet<Refusal>> {
    static REFUSED: OnceLock<Mutex<HashSet<Refusal>>> = OnceLock::new();
    REFUSED.get_or_init(Default::default)
}

/// `lhs @ rhs` with the strategy `name`, or burn's default where that one cannot run.
fn matmul<R: CubeRuntime>(name: &'static str, lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> CubeTensor<R> {
    let key: Refusal = (name, [&lhs, &rhs].map(|t| [t.meta.shape().to_vec(), t.meta.strides().to_vec()]).concat().try_into().expect("four lists"));
    let known_refusal = refused().lock().is_ok_and(|set| set.contains(&key));
    let chosen = if known_refusal { Err(()) } else { matmul_with(&strategy(name).expect("a known strategy"), lhs.clone(), rhs.clone()).map_err(drop) };
    chosen
        .or_else(|()| {
            if !known_refusal {
                if let Ok(mut set) = refused().lock() {
                    set.insert(key);
                }
            }
            matmul_with(&Strategy::Auto, lhs, rhs)
        })
        .expect("burn's default matmul strategy runs on every operand")
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> LinearKernels for CubeBackend<R, F, I, BT> {
    fn linear_forward(x: CubeTensor<R>, w: CubeTensor<R>) -> CubeTensor<R> {
        let [d_in, d_out] = w.shape().dims();
        matmul(FORWARD, x, Self::float_reshape(w, Shape::new([1, d_in, d_out])))
    }

    fn linear_backward(x: CubeTensor<R>, w: CubeTensor<R>, dy: CubeTensor<R>, bias: bool) -> (CubeTensor<R>, CubeTensor<R>, Option<CubeTensor<R>>) {
        let [d_in, d_out] = w.shape().dims();
        let [nb, t, _] = dy.shape().dims();
        let db = bias.then(|| column_sum(Self::float_reshape(dy.clone(), Shape::new([nb * t, d_out]))));
        let w_t = Self::float_swap_dims(Self::float_reshape(w, Shape::new([1, d_in, d_out])), 1, 2);
        let dx = matmul(INPUT_GRAD, dy.clone(), w_t);
        // Per batch row, then summed over the rows: [nb, d_in·d_out] → [d_in·d_out].
        let per_batch = matmul(WEIGHT_GRAD, Self::float_swap_dims(x, 1, 2), dy);
        let dw = Self::float_reshape(column_sum(Self::float_reshape(per_batch, Shape::new([nb, d_in * d_out]))), Shape::new([d_in, d_out]));
        (dx, dw, db)
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedLinear for CubeBackend<R, F, I, BT> {
    fn fused_linear(x: CubeTensor<R>, w: CubeTensor<R>, b: Option<CubeTensor<R>>) -> CubeTensor<R> {
        let y = Self::linear_forward(x, w);
        match b {
            Some(b) => add_bias::<Self>(y, b),
            None => y,
        }
    }
}

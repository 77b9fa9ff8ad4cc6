//! The linear map's matmuls on burn's CubeCL backend.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubek::matmul::launch::Strategy;

use super::{FusedLinear, LinearKernels, Strategies};
use crate::column_sum::column_sum;
use crate::gemm::Bias;
use crate::matmul::{choice, matmul_by, matmul_with, Choice};

/// A strategy and the shapes and strides of the operands it could not take.
type Refusal = (&'static str, [Vec<usize>; 4]);

/// Operands a strategy refused, so that later calls with the same ones go straight to burn's
/// default instead of failing (and formatting the error) again each step.
fn refused() -> &'static Mutex<HashSet<Refusal>> {
    static REFUSED: OnceLock<Mutex<HashSet<Refusal>>> = OnceLock::new();
    REFUSED.get_or_init(Default::default)
}

/// `lhs @ rhs (+ bias)` with the strategy `name`, or burn's default where that one cannot
/// run. Our kernel adds the bias as it writes the product; after any other strategy it is a
/// pass of its own.
fn matmul<R: CubeRuntime>(name: &'static str, lhs: CubeTensor<R>, rhs: CubeTensor<R>, bias: Option<Bias<R>>) -> CubeTensor<R> {
    let key: Refusal = (name, [&lhs, &rhs].map(|t| [t.meta.shape().to_vec(), t.meta.strides().to_vec()]).concat().try_into().expect("four lists"));
    if !refused().lock().is_ok_and(|set| set.contains(&key)) {
        match choice(name).expect("a known strategy") {
            Choice::Gemm(tiling) => {
                if let Ok(y) = crate::gemm::matmul_bias(tiling, lhs.clone(), rhs.clone(), bias.clone()) {
                    return y;
                }
            }
            other => {
                if let Ok(y) = matmul_by(&other, lhs.clone(), rhs.clone()) {
                    return add_after(y, bias);
                }
            }
        }
        note_refusal(key);
    }
    add_after(matmul_with(&Strategy::Auto, lhs, rhs).expect("burn's default matmul strategy runs on every operand"), bias)
}

fn note_refusal(key: Refusal) {
    if let Ok(mut set) = refused().lock() {
        set.insert(key);
    }
}

/// `product + bias` as a tensor op, `product` `[.., m, n]`.
fn add_after<R: CubeRuntime>(product: CubeTensor<R>, bias: Option<Bias<R>>) -> CubeTensor<R> {
    let Some(bias) = bias else { return product };
    let dims = product.shape().to_vec();
    let (rank, n) = (dims.len(), dims[dims.len() - 1]);
    let batches = if rank == 3 { dims[0] } else { 1 };
    let shape = bias.broadcast_shape(rank, batches, n);
    burn_cubecl::ops::numeric::add(product, burn_cubecl::ops::reshape(bias.values, shape))
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> LinearKernels for CubeBackend<R, F, I, BT> {
    fn linear_forward(x: CubeTensor<R>, w: CubeTensor<R>, b: Option<CubeTensor<R>>) -> CubeTensor<R> {
        let [nb, t, d_in] = x.shape().dims();
        let [rows, d_out] = w.shape().dims();
        let k = members(nb, d_in, rows);
        // Member m's bias is b[m·d_out ..]: a stride between the product's batches when they
        // are the members, none when one weight serves every batch.
        let bias = |batch_stride, column_stride| b.map(|values| Bias { values, batch_stride, column_stride });
        if d_out == 1 {
            // yᵀ [k, 1, b·t] = wᵀ [k, 1, d_in] @ xᵀ: a matmul our kernel takes (an n of 1 is
            // not whole 16-byte rows), with y's own memory order; member m's one bias goes to
            // all its columns.
            let x_t = Self::float_swap_dims(Self::float_reshape(x, Shape::new([k, nb / k * t, d_in])), 1, 2);
            let y = matmul(Strategies::chosen().forward, Self::float_reshape(w, Shape::new([k, 1, d_in])), x_t, bias(1, 0));
            return Self::float_reshape(y, Shape::new([nb, t, 1]));
        }
        if k == 1 {
            return matmul(Strategies::chosen().forward, x, Self::float_reshape(w, Shape::new([1, d_in, d_out])), bias(0, 1));
        }
        // Member m's rows times member m's weight: one matmul batched over the members.
        let x = Self::float_reshape(x, Shape::new([k, nb / k * t, d_in]));
        let y = matmul(Strategies::chosen().forward, x, Self::float_reshape(w, Shape::new([k, d_in, d_out])), bias(d_out, 1));
        Self::float_reshape(y, Shape::new([nb, t, d_out]))
    }

    fn linear_backward(x: CubeTensor<R>, w: CubeTensor<R>, dy: CubeTensor<R>, bias: bool) -> (CubeTensor<R>, CubeTensor<R>, Option<CubeTensor<R>>) {
        let [w_rows, d_out] = w.shape().dims();
        let [nb, t, d_in] = x.shape().dims();
        let k = members(nb, d_in, w_rows);
        if d_out == 1 {
            return single_output_backward::<R, F, I, BT>(k, x, w, dy, bias);
        }
        if k > 1 {
            return stacked_backward::<R, F, I, BT>(k, x, w, dy, bias);
        }
        let db = bias.then(|| column_sum(Self::float_reshape(dy.clone(), Shape::new([nb * t, d_out]))));
        let w_t = Self::float_swap_dims(Self::float_reshape(w, Shape::new([1, d_in, d_out])), 1, 2);
        let dx = matmul(Strategies::chosen().input_grad, dy.clone(), w_t, None);
        let weight_grad = Strategies::chosen().weight_grad;
        if matches!(choice(weight_grad), Some(Choice::Gemm(_))) {
            // One matmul over all b·t rows, xᵀ [d_in, b·t] @ ∂y [b·t, d_out]: our kernel splits
            // so long a K over cubes itself, with no [nb, d_in, d_out] of per-row products.
            let x = Self::float_reshape(x, Shape::new([1, nb * t, d_in]));
            let dy = Self::float_reshape(dy, Shape::new([1, nb * t, d_out]));
            let dw = matmul(weight_grad, Self::float_swap_dims(x, 1, 2), dy, None);
            return (dx, Self::float_reshape(dw, Shape::new([d_in, d_out])), db);
        }
        // Per batch row, then summed over the rows: [nb, d_in·d_out] → [d_in·d_out].
        let per_batch = matmul(weight_grad, Self::float_swap_dims(x, 1, 2), dy, None);
        let dw = Self::float_reshape(column_sum(Self::float_reshape(per_batch, Shape::new([nb, d_in * d_out]))), Shape::new([d_in, d_out]));
        (dx, dw, db)
    }
}

/// How many members a weight of `w_rows` rows holds for inputs `d_in` wide (`x`'s `nb` batch
/// rows split evenly among them); 1 for a plain layer.
pub(super) fn members(nb: usize, d_in: usize, w_rows: usize) -> usize {
    let k = w_rows / d_in;
    assert!(k >= 1 && k * d_in == w_rows && nb.is_multiple_of(k), "linear: weight rows {w_rows} are not whole members of width {d_in} over {nb} batch rows");
    k
}

/// The backward of a layer with one output (the regression read-out), `k` members: ∂w as
/// ∂yᵀ [k, 1, b·t] @ x, which our kernel takes with K split over cubes (burn's matmul of xᵀ @ ∂y
/// into an n of 1 took 0.32 ms a step at 16 GPT-2 e128 members, one cube a 32-row slab over
/// all 5,248 rows), and ∂x as the outer product ∂y ⊗ w, element-wise.
fn single_output_backward<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    k: usize,
    x: CubeTensor<R>,
    w: CubeTensor<R>,
    dy: CubeTensor<R>,
    bias: bool,
) -> (CubeTensor<R>, CubeTensor<R>, Option<CubeTensor<R>>) {
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    let [nb, t, d_in] = x.shape().dims();
    let rows = nb / k * t;
    let db = bias.then(|| member_bias_grad::<R, F, I, BT>(k, dy.clone()));
    let x = B::<R, F, I, BT>::float_reshape(x, Shape::new([k, rows, d_in]));
    let dw = matmul(Strategies::chosen().weight_grad, B::<R, F, I, BT>::float_reshape(dy.clone(), Shape::new([k, 1, rows])), x, None);
    let dx = B::<R, F, I, BT>::float_mul(B::<R, F, I, BT>::float_reshape(dy, Shape::new([k, rows, 1])), B::<R, F, I, BT>::float_reshape(w, Shape::new([k, 1, d_in])));
    (B::<R, F, I, BT>::float_reshape(dx, Shape::new([nb, t, d_in])), B::<R, F, I, BT>::float_reshape(dw, Shape::new([k * d_in, 1])), db)
}

/// ∂b of `k` members from ∂y `[nb, t, d_out]`: Σ over a member's b·t rows in two sums (over t,
/// then over b), each with many outputs: burn's reduce runs one sum over 5,248 rows into 16·d_out
/// outputs on two cubes (0.5 ms).
fn member_bias_grad<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(k: usize, dy: CubeTensor<R>) -> CubeTensor<R> {
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    let [nb, t, d_out] = dy.shape().dims();
    let dy = B::<R, F, I, BT>::float_reshape(dy, Shape::new([k, nb / k, t, d_out]));
    let per_prompt = B::<R, F, I, BT>::float_sum_dim(dy, 2);
    B::<R, F, I, BT>::float_reshape(B::<R, F, I, BT>::float_sum_dim(per_prompt, 1), Shape::new([k * d_out]))
}

/// The backward of `k` > 1 members: member m's ∂x, ∂w and ∂b come from its own rows only.
/// ∂w is one matmul over each member's `b·t` rows (the plain path's per-batch-row products and
/// column sum would hold `nb·d_in·d_out` values: 268 MB at 16 members of GPT-2 e128's MLP).
fn stacked_backward<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    k: usize,
    x: CubeTensor<R>,
    w: CubeTensor<R>,
    dy: CubeTensor<R>,
    bias: bool,
) -> (CubeTensor<R>, CubeTensor<R>, Option<CubeTensor<R>>) {
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    let [nb, t, d_in] = x.shape().dims();
    let d_out = w.shape()[1];
    let rows = nb / k * t;
    let db = bias.then(|| member_bias_grad::<R, F, I, BT>(k, dy.clone()));
    let dy = B::<R, F, I, BT>::float_reshape(dy, Shape::new([k, rows, d_out]));
    let x = B::<R, F, I, BT>::float_reshape(x, Shape::new([k, rows, d_in]));
    let w_t = B::<R, F, I, BT>::float_swap_dims(B::<R, F, I, BT>::float_reshape(w, Shape::new([k, d_in, d_out])), 1, 2);
    let dx = B::<R, F, I, BT>::float_reshape(matmul(Strategies::chosen().input_grad, dy.clone(), w_t, None), Shape::new([nb, t, d_in]));
    let dw = B::<R, F, I, BT>::float_reshape(matmul(Strategies::chosen().weight_grad, B::<R, F, I, BT>::float_swap_dims(x, 1, 2), dy, None), Shape::new([k * d_in, d_out]));
    (dx, dw, db)
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedLinear for CubeBackend<R, F, I, BT> {
    fn fused_linear(x: CubeTensor<R>, w: CubeTensor<R>, b: Option<CubeTensor<R>>) -> CubeTensor<R> {
        Self::linear_forward(x, w, b)
    }
}

use nalgebra::{DMatrix, DVector};

use super::per_prompt;
use crate::tasks::{dot, Batch};

/// Relative singular-value cut-off, like LAPACK's `gelsd` with rcond = eps·max(m, n).
const RCOND: f64 = 1e-6;

/// Ordinary least squares on the previous clean examples, minimum-norm when underdetermined
/// (as `torch.linalg.lstsq`), predicting x_i·ŵ.
///
/// With at least d examples the normal equations XᵀX w = Xᵀy (accumulated one example at a
/// time) are solved by Cholesky, d³/3 flops per position; when XᵀX is singular or there are
/// fewer examples than dims, an SVD of X gives the minimum-norm solution.
pub fn least_squares(batch: &Batch) -> Vec<f32> {
    let d = batch.d;
    per_prompt(batch, |p| {
        let mut out = vec![0.0f32; batch.n];
        let mut gram = DMatrix::<f64>::zeros(d, d);
        let mut xty = DVector::<f64>::zeros(d);
        let mut ctx: Vec<usize> = Vec::with_capacity(batch.n);
        for i in 0..batch.n {
            if !ctx.is_empty() {
                let w = if ctx.len() >= d { gram.clone().cholesky().map(|c| c.solve(&xty)) } else { None };
                let w = w.or_else(|| {
                    let x = DMatrix::<f64>::from_fn(ctx.len(), d, |r, c| batch.x(p, ctx[r])[c] as f64);
                    let y = DVector::<f64>::from_fn(ctx.len(), |r, _| batch.y(p, ctx[r]) as f64);
                    min_norm_solve(x, &y)
                });
                if let Some(w) = w {
                    let w: Vec<f32> = w.iter().map(|v| *v as f32).collect();
                    out[i] = dot(&w, batch.x(p, i));
                } // else a degenerate prompt: keep the zero prediction
            }
            if batch.is_clean(p, i) {
                let x = DVector::<f64>::from_fn(d, |c, _| batch.x(p, i)[c] as f64);
                gram.ger(1.0, &x, &x, 1.0);
                xty.axpy(batch.y(p, i) as f64, &x, 1.0);
                ctx.push(i);
            }
        }
        out
    })
}

/// argmin |w| among the minimisers of |Xw − y|, by SVD.
pub fn min_norm_solve(x: DMatrix<f64>, y: &DVector<f64>) -> Option<DVector<f64>> {
    let svd = x.svd(true, true);
    let max_sv = svd.singular_values.max();
    let eps = (max_sv * RCOND).max(f64::MIN_POSITIVE);
    svd.solve(y, eps).ok()
}

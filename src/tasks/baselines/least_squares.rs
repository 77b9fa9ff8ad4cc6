use nalgebra::{DMatrix, DVector};

use crate::tasks::{dot, Batch};

/// Relative singular-value cut-off, like LAPACK's `gelsd` with rcond = eps·max(m, n).
const RCOND: f64 = 1e-6;

/// Ordinary least squares on the previous points, minimum-norm when underdetermined
/// (as `torch.linalg.lstsq`), predicting x_i·ŵ.
pub fn least_squares(batch: &Batch) -> Vec<f32> {
    let (n, d) = (batch.n, batch.d);
    let mut out = vec![0.0f32; batch.b * n];
    for p in 0..batch.b {
        for i in 1..n {
            let x = DMatrix::<f64>::from_fn(i, d, |r, c| batch.x(p, r)[c] as f64);
            let y = DVector::<f64>::from_fn(i, |r, _| batch.y(p, r) as f64);
            let svd = x.svd(true, true);
            let max_sv = svd.singular_values.max();
            let eps = (max_sv * RCOND).max(f64::MIN_POSITIVE);
            let w = match svd.solve(&y, eps) {
                Ok(w) => w,
                Err(_) => continue, // degenerate prompt: keep the zero prediction
            };
            let w: Vec<f32> = w.iter().map(|v| *v as f32).collect();
            out[p * n + i] = dot(&w, batch.x(p, i));
        }
    }
    out
}

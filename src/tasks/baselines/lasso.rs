use super::per_prompt;
use crate::tasks::{dot, Batch};

/// Sweeps of coordinate descent at most, and the largest coefficient change, relative to the
/// largest coefficient, that counts as converged.
const MAX_SWEEPS: usize = 1_000;
const TOL: f64 = 1e-6;

/// Lasso on the previous clean examples, as `sklearn.Lasso(alpha, fit_intercept=False)`:
/// argmin (1/2m)|y − Xw|² + α|w|₁, by cyclic coordinate descent on the Gram matrix, warm-started
/// from the previous position's solution; predicts x_i·ŵ.
pub fn lasso_predict(batch: &Batch, alpha: f64) -> Vec<f32> {
    let d = batch.d;
    per_prompt(batch, |p| {
        let mut out = vec![0.0f32; batch.n];
        // Unnormalised sums XᵀX and Xᵀy; divided by m when used.
        let mut gram = vec![0.0f64; d * d];
        let mut xty = vec![0.0f64; d];
        let mut w = vec![0.0f64; d];
        let mut m = 0usize;
        for i in 0..batch.n {
            if m > 0 {
                coordinate_descent(&gram, &xty, m as f64, alpha, &mut w);
                let wf: Vec<f32> = w.iter().map(|v| *v as f32).collect();
                out[i] = dot(&wf, batch.x(p, i));
            }
            if batch.is_clean(p, i) {
                let (x, y) = (batch.x(p, i), batch.y(p, i) as f64);
                for r in 0..d {
                    xty[r] += x[r] as f64 * y;
                    for c in 0..d {
                        gram[r * d + c] += x[r] as f64 * x[c] as f64;
                    }
                }
                m += 1;
            }
        }
        out
    })
}

/// Minimises (1/2m)(wᵀGw − 2wᵀc) + α|w|₁ in place (G = XᵀX, c = Xᵀy).
fn coordinate_descent(gram: &[f64], xty: &[f64], m: f64, alpha: f64, w: &mut [f64]) {
    let d = w.len();
    for _ in 0..MAX_SWEEPS {
        let mut max_change = 0.0f64;
        for j in 0..d {
            let gjj = gram[j * d + j] / m;
            if gjj == 0.0 {
                w[j] = 0.0; // a coordinate every example has zero: no information
                continue;
            }
            let others: f64 = (0..d).filter(|&k| k != j).map(|k| gram[j * d + k] * w[k]).sum::<f64>() / m;
            let rho = xty[j] / m - others;
            let new = soft_threshold(rho, alpha) / gjj;
            max_change = max_change.max((new - w[j]).abs());
            w[j] = new;
        }
        let largest = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if max_change <= TOL * largest.max(1e-3) {
            break;
        }
    }
}

fn soft_threshold(v: f64, t: f64) -> f64 {
    v.signum() * (v.abs() - t).max(0.0)
}

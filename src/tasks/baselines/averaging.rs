use crate::tasks::Batch;

/// ŵ = mean_{j<i}(y_j x_j), prediction x_i·ŵ.
pub fn averaging(batch: &Batch) -> Vec<f32> {
    let (n, d) = (batch.n, batch.d);
    let mut out = vec![0.0f32; batch.b * n];
    let mut sum = vec![0.0f32; d];
    for p in 0..batch.b {
        sum.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..n {
            if i > 0 {
                let x = batch.x(p, i);
                out[p * n + i] = sum.iter().zip(x).map(|(s, x)| s * x).sum::<f32>() / i as f32;
            }
            let (x, y) = (batch.x(p, i), batch.y(p, i));
            sum.iter_mut().zip(x).for_each(|(s, x)| *s += y * x);
        }
    }
    out
}

use super::per_prompt;
use crate::tasks::Batch;

/// ŵ = mean over the previous clean examples of y_j x_j; prediction x_i·ŵ.
pub fn averaging(batch: &Batch) -> Vec<f32> {
    per_prompt(batch, |p| {
        let mut out = vec![0.0f32; batch.n];
        let mut sum = vec![0.0f32; batch.d];
        let mut count = 0usize;
        for i in 0..batch.n {
            if count > 0 {
                out[i] = sum.iter().zip(batch.x(p, i)).map(|(s, x)| s * x).sum::<f32>() / count as f32;
            }
            if batch.is_clean(p, i) {
                let y = batch.y(p, i);
                sum.iter_mut().zip(batch.x(p, i)).for_each(|(s, x)| *s += y * x);
                count += 1;
            }
        }
        out
    })
}

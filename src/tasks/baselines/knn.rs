use super::per_prompt;
use crate::tasks::Batch;

/// The mean y of the min(i, k) nearest previous clean x's (Euclidean, uniform weights).
pub fn nearest_neighbours(batch: &Batch, k: usize) -> Vec<f32> {
    per_prompt(batch, |p| {
        let mut out = vec![0.0f32; batch.n];
        let mut dist: Vec<(f32, usize)> = Vec::with_capacity(batch.n);
        for i in 1..batch.n {
            let xi = batch.x(p, i);
            dist.clear();
            dist.extend(batch.context(p, i).map(|j| {
                let d2 = batch.x(p, j).iter().zip(xi).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
                (d2, j)
            }));
            let kk = k.min(dist.len());
            if kk == 0 {
                continue;
            }
            dist.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0));
            out[i] = dist[..kk].iter().map(|&(_, j)| batch.y(p, j)).sum::<f32>() / kk as f32;
        }
        out
    })
}

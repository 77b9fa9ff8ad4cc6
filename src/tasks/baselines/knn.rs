use crate::tasks::Batch;

/// The mean y of the min(i, k) nearest previous x's (Euclidean, uniform weights).
pub fn nearest_neighbours(batch: &Batch, k: usize) -> Vec<f32> {
    let n = batch.n;
    let mut out = vec![0.0f32; batch.b * n];
    let mut dist: Vec<(f32, usize)> = Vec::with_capacity(n);
    for p in 0..batch.b {
        for i in 1..n {
            let xi = batch.x(p, i);
            dist.clear();
            dist.extend((0..i).map(|j| {
                let d2 = batch.x(p, j).iter().zip(xi).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
                (d2, j)
            }));
            let kk = k.min(i);
            dist.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0));
            let mean = dist[..kk].iter().map(|&(_, j)| batch.y(p, j)).sum::<f32>() / kk as f32;
            out[p * n + i] = mean;
        }
    }
    out
}

use super::per_prompt;
use crate::tasks::Batch;

/// A greedy regression tree (CART with squared error, as sklearn's `DecisionTreeRegressor`),
/// refitted at every position on the previous clean examples; predicts the mean y of x_i's
/// leaf. `max_depth = None` grows until every leaf is pure or holds one example.
pub fn greedy_tree_predict(batch: &Batch, max_depth: Option<usize>) -> Vec<f32> {
    per_prompt(batch, |p| {
        let mut out = vec![0.0f32; batch.n];
        let mut ctx: Vec<usize> = Vec::with_capacity(batch.n);
        for i in 0..batch.n {
            if !ctx.is_empty() {
                out[i] = fit_predict(batch, p, &mut ctx.clone(), batch.x(p, i), max_depth.unwrap_or(usize::MAX));
            }
            if batch.is_clean(p, i) {
                ctx.push(i);
            }
        }
        out
    })
}

/// Grows the tree only along the path x falls into: the prediction for one x needs no other
/// branch, and each split is the one the full tree would make there.
fn fit_predict(batch: &Batch, p: usize, idx: &mut [usize], x: &[f32], depth_left: usize) -> f32 {
    let mean = idx.iter().map(|&j| batch.y(p, j)).sum::<f32>() / idx.len() as f32;
    if depth_left == 0 || idx.len() < 2 {
        return mean;
    }
    let Some((feature, threshold)) = best_split(batch, p, idx) else { return mean };
    // Partition in place: left (<= threshold) first.
    let mut split = 0;
    for k in 0..idx.len() {
        if batch.x(p, idx[k])[feature] <= threshold {
            idx.swap(k, split);
            split += 1;
        }
    }
    let (left, right) = idx.split_at_mut(split);
    let side = if x[feature] <= threshold { left } else { right };
    fit_predict(batch, p, side, x, depth_left - 1)
}

/// The (feature, threshold) that most reduces the squared error, thresholds at midpoints
/// between distinct sorted values; None when no split helps (pure node or identical xs).
fn best_split(batch: &Batch, p: usize, idx: &[usize]) -> Option<(usize, f32)> {
    let n = idx.len() as f64;
    let total: f64 = idx.iter().map(|&j| batch.y(p, j) as f64).sum();
    let total_sq: f64 = idx.iter().map(|&j| (batch.y(p, j) as f64).powi(2)).sum();
    let parent_sse = total_sq - total * total / n;
    if parent_sse <= 1e-12 {
        return None;
    }
    let mut best: Option<(f64, usize, f32)> = None;
    let mut order: Vec<(f32, f32)> = Vec::with_capacity(idx.len());
    for f in 0..batch.d {
        order.clear();
        order.extend(idx.iter().map(|&j| (batch.x(p, j)[f], batch.y(p, j))));
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut left_sum, mut left_sq) = (0.0f64, 0.0f64);
        for k in 0..order.len() - 1 {
            let y = order[k].1 as f64;
            left_sum += y;
            left_sq += y * y;
            if order[k].0 == order[k + 1].0 {
                continue;
            }
            let nl = (k + 1) as f64;
            let nr = n - nl;
            let right_sum = total - left_sum;
            let sse = (left_sq - left_sum * left_sum / nl) + (total_sq - left_sq - right_sum * right_sum / nr);
            if best.is_none_or(|(b, ..)| sse < b - 1e-12) {
                best = Some((sse, f, (order[k].0 + order[k + 1].0) / 2.0));
            }
        }
    }
    best.filter(|(sse, ..)| *sse < parent_sse - 1e-12).map(|(_, f, t)| (f, t))
}

use super::per_prompt;
use crate::tasks::Batch;

/// A greedy regression tree (CART with squared error, as sklearn's `DecisionTreeRegressor`),
/// refitted at every position on the previous clean examples; predicts the mean y of x_i's
/// leaf. `max_depth = None` grows until every leaf is pure or holds one example.
pub fn greedy_tree_predict(batch: &Batch, max_depth: Option<usize>) -> Vec<f32> {
    let depth = max_depth.unwrap_or(usize::MAX);
    per_prompt(batch, |p| {
        // Examples sorted by each feature once per prompt; a node's members in sorted order are
        // then a filtered pass over these lists, with no sorting per node.
        let order: Vec<Vec<usize>> = (0..batch.d)
            .map(|f| {
                let mut o: Vec<usize> = (0..batch.n).collect();
                o.sort_by(|&a, &b| batch.x(p, a)[f].total_cmp(&batch.x(p, b)[f]));
                o
            })
            .collect();
        let mut out = vec![0.0f32; batch.n];
        let mut in_context = vec![false; batch.n];
        for i in 1..batch.n {
            in_context.fill(false);
            batch.context(p, i).for_each(|j| in_context[j] = true);
            let mut node: Vec<Vec<usize>> = order.iter().map(|o| o.iter().copied().filter(|&j| in_context[j]).collect()).collect();
            if !node[0].is_empty() {
                out[i] = predict_along_path(batch, p, &mut node, batch.x(p, i), depth);
            }
        }
        out
    })
}

/// Grows the tree only along the path x falls into: the prediction for one x needs no other
/// branch, and each split is the one the full tree would make there. `node` holds the node's
/// examples sorted by each feature; a split keeps, in every list, the side x goes to.
fn predict_along_path(batch: &Batch, p: usize, node: &mut [Vec<usize>], x: &[f32], depth: usize) -> f32 {
    let mut level = 0;
    loop {
        let members = &node[0];
        let mean = members.iter().map(|&j| batch.y(p, j) as f64).sum::<f64>() / members.len() as f64;
        if level == depth || members.len() < 2 {
            return mean as f32;
        }
        let Some((feature, threshold)) = best_split(batch, p, node) else { return mean as f32 };
        let go_left = x[feature] <= threshold;
        for list in node.iter_mut() {
            list.retain(|&j| (batch.x(p, j)[feature] <= threshold) == go_left);
        }
        level += 1;
    }
}

/// The (feature, threshold) that most reduces the squared error, thresholds at midpoints
/// between distinct sorted values; None when no split helps (pure node or identical xs).
fn best_split(batch: &Batch, p: usize, node: &[Vec<usize>]) -> Option<(usize, f32)> {
    let n = node[0].len() as f64;
    let total: f64 = node[0].iter().map(|&j| batch.y(p, j) as f64).sum();
    let total_sq: f64 = node[0].iter().map(|&j| (batch.y(p, j) as f64).powi(2)).sum();
    let parent_sse = total_sq - total * total / n;
    if parent_sse <= 1e-12 {
        return None;
    }
    let mut best: Option<(f64, usize, f32)> = None;
    for (f, sorted) in node.iter().enumerate() {
        let (mut left_sum, mut left_sq) = (0.0f64, 0.0f64);
        for (k, pair) in sorted.windows(2).enumerate() {
            let y = batch.y(p, pair[0]) as f64;
            left_sum += y;
            left_sq += y * y;
            let (v, next) = (batch.x(p, pair[0])[f], batch.x(p, pair[1])[f]);
            if v == next {
                continue;
            }
            let nl = (k + 1) as f64;
            let right_sum = total - left_sum;
            let sse = (left_sq - left_sum * left_sum / nl) + (total_sq - left_sq - right_sum * right_sum / (n - nl));
            if best.is_none_or(|(b, ..)| sse < b - 1e-12) {
                best = Some((sse, f, (v + next) / 2.0));
            }
        }
    }
    best.filter(|(sse, ..)| *sse < parent_sse - 1e-12).map(|(_, f, t)| (f, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-learn's `DecisionTreeRegressor` on the same prompts is the oracle
    /// (`tests/reference/greedy_tree_sklearn.py` wrote the fixture; only positions whose
    /// prediction no tie-break changes are compared).
    #[test]
    fn greedy_tree_predicts_as_sklearns_decision_tree_regressor() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!("../../../tests/reference/greedy_tree_sklearn.json")).unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
        let mut compared = 0;
        for (k, prompt) in fixture["prompts"].as_array().unwrap().iter().enumerate() {
            let d = prompt["d"].as_u64().unwrap() as usize;
            let ys: Vec<f32> = floats(&prompt["ys"]).into_iter().map(|v| v as f32).collect();
            let batch = Batch { b: 1, n: ys.len(), d, xs: floats(&prompt["xs"]).into_iter().map(|v| v as f32).collect(), ys, clean: None };
            let depth = prompt["max_depth"].as_u64().map(|v| v as usize);
            let ours = greedy_tree_predict(&batch, depth);
            let sklearn = floats(&prompt["predictions"]);
            for (i, checked) in prompt["checked"].as_array().unwrap().iter().enumerate() {
                if checked.as_bool().unwrap() {
                    assert!((ours[i] as f64 - sklearn[i]).abs() <= 1e-5, "prompt {k} (max_depth {depth:?}) position {i}: ours {} sklearn {}", ours[i], sklearn[i]);
                    compared += 1;
                }
            }
        }
        assert!(compared >= 200, "the fixture compares {compared} predictions");
    }
}

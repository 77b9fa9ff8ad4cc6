use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::baselines::{averaging, least_squares, nearest_neighbours, zero};
use super::*;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn gaussian_x_has_unit_moments() {
    let task = LinearRegression { n_dims: 8 };
    let batch = task.sample(&mut rng(1), 256, 40, 8);
    let n = batch.xs.len() as f64;
    let mean = batch.xs.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = batch.xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    // 81,920 draws: the standard error of the mean is ~0.0035.
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var - 1.0).abs() < 0.03, "var {var}");
    // Coordinates are uncorrelated: E[x0 x1] ~ 0.
    let cov = batch.xs.chunks(8).map(|x| (x[0] * x[1]) as f64).sum::<f64>() / (256.0 * 40.0);
    assert!(cov.abs() < 0.05, "cov {cov}");
}

#[test]
fn truncation_zeroes_the_inactive_coordinates_only() {
    let task = LinearRegression { n_dims: 10 };
    let batch = task.sample(&mut rng(2), 16, 12, 4);
    for x in batch.xs.chunks(10) {
        assert!(x[..4].iter().all(|&v| v != 0.0));
        assert!(x[4..].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn y_is_linear_in_x() {
    // For a fixed prompt, y is a linear function: least squares on d+2 points fits exactly.
    let task = LinearRegression { n_dims: 5 };
    let batch = task.sample(&mut rng(3), 4, 12, 5);
    let pred = least_squares(&batch);
    for p in 0..4 {
        for i in 7..12 {
            let (y, yhat) = (batch.y(p, i), pred[p * 12 + i]);
            assert!((y - yhat).abs() < 1e-3 * (1.0 + y.abs()), "prompt {p} point {i}: {y} vs {yhat}");
        }
    }
}

#[test]
fn same_seed_same_batch_other_seed_other_batch() {
    let task = LinearRegression { n_dims: 6 };
    let a = task.sample(&mut rng(7), 8, 10, 6);
    let b = task.sample(&mut rng(7), 8, 10, 6);
    let c = task.sample(&mut rng(8), 8, 10, 6);
    assert_eq!(a, b);
    assert_ne!(a.xs, c.xs);
}

#[test]
fn tokens_interleave_x_and_zero_padded_y() {
    let task = LinearRegression { n_dims: 3 };
    let batch = task.sample(&mut rng(4), 2, 4, 3);
    let t = batch.tokens();
    assert_eq!(t.len(), 2 * 8 * 3);
    let tok = |p: usize, j: usize| &t[(p * 8 + j) * 3..(p * 8 + j + 1) * 3];
    for p in 0..2 {
        for i in 0..4 {
            assert_eq!(tok(p, 2 * i), batch.x(p, i));
            assert_eq!(tok(p, 2 * i + 1), &[batch.y(p, i), 0.0, 0.0]);
        }
    }
}

#[test]
fn baselines_predict_zero_without_examples() {
    let batch = LinearRegression { n_dims: 4 }.sample(&mut rng(5), 3, 6, 4);
    for f in [least_squares, averaging, zero, |b: &Batch| nearest_neighbours(b, 3)] {
        let pred = f(&batch);
        assert_eq!(pred.len(), 18);
        assert!((0..3).all(|p| pred[p * 6] == 0.0));
    }
}

#[test]
fn least_squares_is_minimum_norm_when_underdetermined() {
    // One example: the min-norm solution is w = y x / |x|², so prediction = y (x·x')/|x|².
    let batch = Batch { b: 1, n: 2, d: 2, xs: vec![1.0, 0.0, 2.0, 3.0], ys: vec![4.0, 0.0] };
    let pred = least_squares(&batch);
    assert!((pred[1] - 8.0).abs() < 1e-4, "{}", pred[1]);
}

#[test]
fn nearest_neighbours_average_the_closest_ys() {
    let xs = vec![0.0, 10.0, 1.0, 2.0, 1.1];
    let ys = vec![1.0, 100.0, 3.0, 5.0, 0.0];
    let batch = Batch { b: 1, n: 5, d: 1, xs, ys };
    let pred = nearest_neighbours(&batch, 3);
    // At x=1.1 the 3 nearest of {0, 10, 1, 2} are 1, 2, 0.
    assert!((pred[4] - 3.0).abs() < 1e-6, "{}", pred[4]);
    // At x=10 (i=1) only one example exists.
    assert_eq!(pred[1], 1.0);
}

#[test]
fn averaging_estimates_w_from_y_x() {
    let batch = Batch { b: 1, n: 3, d: 2, xs: vec![1.0, 0.0, 0.0, 2.0, 1.0, 1.0], ys: vec![3.0, 4.0, 0.0] };
    // w = mean(3·(1,0), 4·(0,2)) = (1.5, 4); x3·w = 5.5.
    assert!((averaging(&batch)[2] - 5.5).abs() < 1e-6);
}

#[test]
fn sparse_w_has_k_nonzeros_within_the_active_dims() {
    let task = SparseLinearRegression { n_dims: 20, sparsity: 3 };
    let mut r = rng(11);
    let mut used = [false; 20];
    for _ in 0..200 {
        let w = task.sample_w(&mut r, 7);
        let nz: Vec<usize> = (0..20).filter(|&i| w[i] != 0.0).collect();
        assert_eq!(nz.len(), 3, "{w:?}");
        assert!(nz.iter().all(|&i| i < 7));
        nz.iter().for_each(|&i| used[i] = true);
    }
    // Every active coordinate gets picked sometimes.
    assert!(used[..7].iter().all(|&u| u));
    // Fewer active dims than k: all of them.
    assert_eq!(task.sample_w(&mut r, 2).iter().filter(|v| **v != 0.0).count(), 2);
}

#[test]
fn sparse_regression_error_is_normalised_by_k() {
    let task = SparseLinearRegression { n_dims: 20, sparsity: 3 };
    let batch = task.sample(&mut rng(12), 512, 10, 20);
    let mean_sq = batch.ys.iter().map(|y| (y * y) as f64).sum::<f64>() / batch.ys.len() as f64;
    // E[y²] = k: the zero predictor scores ~1 after dividing by error_scale.
    assert!((mean_sq / task.error_scale() as f64 - 1.0).abs() < 0.1, "{mean_sq}");
}

#[test]
fn relu_2nn_output_has_variance_about_d() {
    let task = Relu2nnRegression { n_dims: 10, hidden: 100 };
    let batch = task.sample(&mut rng(13), 400, 10, 10);
    let mean_sq = batch.ys.iter().map(|y| (y * y) as f64).sum::<f64>() / batch.ys.len() as f64;
    assert!((mean_sq / 10.0 - 1.0).abs() < 0.15, "E[y²] = {mean_sq}, want ~10");
}

#[test]
fn decision_tree_depends_on_signs_only() {
    let mut r = rng(14);
    let tree = Tree::sample(&mut r, 6, 4);
    let x = [0.5f32, -1.0, 2.0, -0.1, 0.3, -3.0];
    let scaled: Vec<f32> = x.iter().map(|v| v * 7.0).collect();
    assert_eq!(tree.eval(&x), tree.eval(&scaled));
    // 2^4 leaves at most: a prompt's ys take at most 16 distinct values.
    let task = DecisionTree { n_dims: 6, depth: 4 };
    let batch = task.sample(&mut r, 1, 200, 6);
    let mut distinct: Vec<f32> = batch.ys.clone();
    distinct.sort_by(f32::total_cmp);
    distinct.dedup();
    assert!(distinct.len() <= 16 && distinct.len() > 1, "{}", distinct.len());
    // Leaves are the last 2^4 nodes of the 31.
    assert_eq!(tree.value.len(), 31);
}

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::baselines::{averaging, least_squares, nearest_neighbours};
use super::*;
use crate::spec::SubsetPer;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn gaussian_x_has_unit_moments() {
    let task = LinearRegression { n_dims: 8 };
    let batch = task.sample(&mut rng(1), 256, 40, 8).batch;
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
    let batch = task.sample(&mut rng(2), 16, 12, 4).batch;
    for x in batch.xs.chunks(10) {
        assert!(x[..4].iter().all(|&v| v != 0.0));
        assert!(x[4..].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn y_is_linear_in_x() {
    // For a fixed prompt, y is a linear function: least squares on d+2 points fits exactly.
    let task = LinearRegression { n_dims: 5 };
    let batch = task.sample(&mut rng(3), 4, 12, 5).batch;
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
    let a = task.sample(&mut rng(7), 8, 10, 6).batch;
    let b = task.sample(&mut rng(7), 8, 10, 6).batch;
    let c = task.sample(&mut rng(8), 8, 10, 6).batch;
    assert_eq!(a, b);
    assert_ne!(a.xs, c.xs);
}

#[test]
fn tokens_interleave_x_and_zero_padded_y() {
    let task = LinearRegression { n_dims: 3 };
    let batch = task.sample(&mut rng(4), 2, 4, 3).batch;
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
    let batch = LinearRegression { n_dims: 4 }.sample(&mut rng(5), 3, 6, 4).batch;
    for f in [least_squares, averaging, |b: &Batch| nearest_neighbours(b, 3)] {
        let pred = f(&batch);
        assert_eq!(pred.len(), 18);
        assert!((0..3).all(|p| pred[p * 6] == 0.0));
    }
}

#[test]
fn least_squares_is_minimum_norm_when_underdetermined() {
    // One example: the min-norm solution is w = y x / |x|², so prediction = y (x·x')/|x|².
    let batch = Batch { b: 1, n: 2, d: 2, xs: vec![1.0, 0.0, 2.0, 3.0], ys: vec![4.0, 0.0], clean: None };
    let pred = least_squares(&batch);
    assert!((pred[1] - 8.0).abs() < 1e-4, "{}", pred[1]);
}

#[test]
fn nearest_neighbours_average_the_closest_ys() {
    let xs = vec![0.0, 10.0, 1.0, 2.0, 1.1];
    let ys = vec![1.0, 100.0, 3.0, 5.0, 0.0];
    let batch = Batch { b: 1, n: 5, d: 1, xs, ys, clean: None };
    let pred = nearest_neighbours(&batch, 3);
    // At x=1.1 the 3 nearest of {0, 10, 1, 2} are 1, 2, 0.
    assert!((pred[4] - 3.0).abs() < 1e-6, "{}", pred[4]);
    // At x=10 (i=1) only one example exists.
    assert_eq!(pred[1], 1.0);
}

#[test]
fn averaging_estimates_w_from_y_x() {
    let batch = Batch { b: 1, n: 3, d: 2, xs: vec![1.0, 0.0, 0.0, 2.0, 1.0, 1.0], ys: vec![3.0, 4.0, 0.0], clean: None };
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
    let batch = task.sample(&mut rng(12), 512, 10, 20).batch;
    let mean_sq = batch.ys.iter().map(|y| (y * y) as f64).sum::<f64>() / batch.ys.len() as f64;
    // E[y²] = k: the zero predictor scores ~1 after dividing by error_scale.
    assert!((mean_sq / task.metric().scale as f64 - 1.0).abs() < 0.1, "{mean_sq}");
}

#[test]
fn relu_2nn_output_has_variance_about_d() {
    let task = Relu2nnRegression { n_dims: 10, hidden: 100 };
    let batch = task.sample(&mut rng(13), 400, 10, 10).batch;
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
    let batch = task.sample(&mut r, 1, 200, 6).batch;
    let mut distinct: Vec<f32> = batch.ys.clone();
    distinct.sort_by(f32::total_cmp);
    distinct.dedup();
    assert!(distinct.len() <= 16 && distinct.len() > 1, "{}", distinct.len());
    // Leaves are the last 2^4 nodes of the 31.
    assert_eq!(tree.value.len(), 31);
}

fn dense(s: &Sample) -> (&[f32], &[f32]) {
    match &s.target {
        Target::Dense { values, weights } => (values, weights),
        Target::Classes { .. } => panic!("expected dense targets"),
    }
}

fn clean_fraction(batch: &Batch) -> f64 {
    let clean = batch.clean.as_ref().expect("an outlier task marks clean examples");
    clean.iter().filter(|c| **c).count() as f64 / clean.len() as f64
}

#[test]
fn regression_loss_weights_are_a_mean_over_x_tokens() {
    let s = LinearRegression { n_dims: 3 }.sample(&mut rng(20), 4, 5, 3);
    let (values, weights) = dense(&s);
    assert_eq!((s.t, weights.len()), (10, 4 * 10));
    assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    for p in 0..4 {
        for i in 0..5 {
            assert_eq!(values[p * 10 + 2 * i], s.batch.y(p, i));
            assert_eq!(weights[p * 10 + 2 * i + 1], 0.0, "nothing is trained at y tokens");
        }
    }
}

#[test]
fn many_outliers_are_ones_at_rate_p_and_never_trained_or_scored() {
    let task = ManyOutlierRegression { n_dims: 6, p: 0.9 };
    let s = task.sample(&mut rng(21), 64, 50, 6);
    let frac = clean_fraction(&s.batch);
    // 3,200 Bernoulli draws: sd of the fraction ~0.005.
    assert!((frac - 0.1).abs() < 0.025, "clean fraction {frac}");
    let (_, weights) = dense(&s);
    assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    for p in 0..64 {
        for i in 0..50 {
            if !s.batch.is_clean(p, i) {
                assert!(s.batch.x(p, i).iter().all(|&v| v == 1.0));
                assert_eq!(s.batch.y(p, i), 1.0);
                assert_eq!(weights[p * 100 + 2 * i], 0.0);
            }
        }
    }
    let errs = task.errors(&s, &vec![0.0; 64 * 100]);
    for k in 0..64 * 50 {
        assert_eq!(errs[k].is_nan(), !s.batch.is_clean(k / 50, k % 50));
    }
}

#[test]
fn orthogonal_outliers_are_orthogonal_to_the_prompts_own_w() {
    let d = 8;
    let task = OrthogonalOutlierRegression { n_dims: d, p: 0.5 };
    let s = task.sample(&mut rng(22), 32, 60, d);
    let frac = clean_fraction(&s.batch);
    assert!((frac - 0.5).abs() < 0.05, "clean fraction {frac}");
    // Clean examples are noiseless y = wᵀx: least squares on them recovers each prompt's w.
    for p in 0..32 {
        let clean: Vec<usize> = (0..60).filter(|&i| s.batch.is_clean(p, i)).collect();
        assert!(clean.len() > d + 2);
        let x = nalgebra::DMatrix::<f64>::from_fn(clean.len(), d, |r, c| s.batch.x(p, clean[r])[c] as f64);
        let y = nalgebra::DVector::<f64>::from_fn(clean.len(), |r, _| s.batch.y(p, clean[r]) as f64);
        let w = baselines::least_squares_solve(x, &y).expect("full rank");
        let outlier = (0..60).find(|&i| !s.batch.is_clean(p, i)).expect("some outlier");
        let x_tok = &s.tokens[(p * 120 + 2 * outlier) * d..(p * 120 + 2 * outlier + 1) * d];
        let y_tok = &s.tokens[(p * 120 + 2 * outlier + 1) * d..(p * 120 + 2 * outlier + 2) * d];
        for tok in [x_tok, y_tok] {
            let norm = tok.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            let cos = tok.iter().zip(w.iter()).map(|(a, b)| *a as f64 * b).sum::<f64>() / (norm * w.norm());
            assert!(cos.abs() < 1e-4, "prompt {p}: cos(outlier, w) = {cos}");
            assert!((norm - (d as f64).sqrt()).abs() < 1e-3, "norm {norm}");
        }
        assert!(y_tok[1..].iter().any(|v| *v != 0.0), "the y outlier is a whole vector");
    }
}

#[test]
fn parity_labels_are_balanced_products_of_k_coordinates() {
    let task = SparseParity { n_dims: 10, k: 2, subset_per: SubsetPer::Prompt };
    let s = task.sample(&mut rng(23), 128, 140, 10);
    assert!(s.batch.xs.iter().all(|v| *v == 1.0 || *v == -1.0));
    assert!(s.batch.ys.iter().all(|v| *v == 1.0 || *v == -1.0));
    let mean = s.batch.ys.iter().sum::<f32>() / s.batch.ys.len() as f32;
    assert!(mean.abs() < 0.03, "labels unbalanced: mean {mean}");
    let (values, _) = dense(&s);
    assert!(values.iter().all(|v| *v == 0.0 || *v == 1.0), "BCE targets are (y + 1) / 2");
    // Which pairs explain each prompt: exactly one with 140 examples.
    let consistent = |b: &Batch, p: usize| -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for a in 0..10 {
            for c in a + 1..10 {
                if (0..b.n).all(|i| b.x(p, i)[a] * b.x(p, i)[c] == b.y(p, i)) {
                    out.push((a, c));
                }
            }
        }
        out
    };
    let per_prompt: Vec<_> = (0..128).map(|p| consistent(&s.batch, p)).collect();
    assert!(per_prompt.iter().all(|c| c.len() == 1));
    assert!(per_prompt.iter().any(|c| c != &per_prompt[0]), "subsets drawn per prompt differ");
    let shared = SparseParity { subset_per: SubsetPer::Batch, ..task.clone() }.sample(&mut rng(24), 16, 140, 10);
    let first = consistent(&shared.batch, 0);
    assert!((0..16).all(|p| consistent(&shared.batch, p) == first), "one subset per batch");
}

#[test]
fn parity_scores_signs_and_a_zero_output_is_a_coin_flip() {
    let task = SparseParity { n_dims: 6, k: 2, subset_per: SubsetPer::Prompt };
    let s = task.sample(&mut rng(25), 8, 30, 6);
    let zero = task.errors(&s, &vec![0.0; 8 * 60]);
    assert!(zero.iter().all(|e| *e == 0.5));
    let perfect: Vec<f32> = (0..8 * 60).map(|k| if k % 2 == 0 { 3.0 * s.batch.ys[k / 2] } else { 0.0 }).collect();
    assert!(task.errors(&s, &perfect).iter().all(|e| *e == 0.0));
    // The learner that knows the family is exact once one subset is left.
    let vote = baselines::subset_vote(&s.batch, 2);
    let errs = task.score(&s.batch, &vote);
    assert!(errs[..30].iter().rev().take(5).all(|e| *e == 0.0), "{:?}", &errs[..30]);
}

#[test]
fn vector_mqar_queries_copy_keys_and_target_their_values() {
    let (d, n, q) = (8, 16, 4);
    let task = VectorMqar { n_dims: d, queries: q };
    let s = task.sample(&mut rng(26), 10, n, d);
    let Extra::Mqar { query_of, values, .. } = &s.extra else { panic!("no MQAR data") };
    let (targets, weights) = dense(&s);
    assert_eq!(s.t, 2 * n + q);
    for tok in s.tokens.chunks(d) {
        let norm = tok.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - (d as f32).sqrt()).abs() < 1e-3, "on the sphere of radius sqrt(d): {norm}");
    }
    for p in 0..10 {
        for j in 0..q {
            let at = (p * s.t + 2 * n + j) * d;
            let key = query_of[p * q + j];
            assert_eq!(&s.tokens[at..at + d], s.batch.x(p, key), "the query copies key {key}");
            assert_eq!(&targets[at..at + d], &values[(p * n + key) * d..(p * n + key + 1) * d]);
        }
    }
    assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // Zero outputs tie every value: chance, 1 - 1/n. The true values score 0.
    let zero = task.errors(&s, &vec![0.0; 10 * s.t * d]);
    let asked: Vec<f32> = zero.iter().copied().filter(|e| e.is_finite()).collect();
    assert!(!asked.is_empty() && asked.iter().all(|e| (e - (1.0 - 1.0 / n as f32)).abs() < 1e-6));
    assert!(task.errors(&s, targets).iter().filter(|e| e.is_finite()).all(|e| *e == 0.0));
}

#[test]
fn token_mqar_queries_are_distinct_keys_with_their_values_as_classes() {
    let (v, n, q) = (32, 8, 3);
    let task = TokenMqar { vocab: v, queries: q };
    let s = task.sample(&mut rng(27), 6, n, v);
    let Target::Classes { classes, weights } = &s.target else { panic!("classes") };
    let Extra::Mqar { query_of, .. } = &s.extra else { panic!("no MQAR data") };
    let id = |p: usize, pos: usize| s.tokens[(p * s.t + pos) * v..(p * s.t + pos + 1) * v].iter().position(|x| *x == 1.0).unwrap();
    for p in 0..6 {
        let keys: Vec<usize> = (0..n).map(|i| id(p, 2 * i)).collect();
        assert!(keys.iter().all(|k| *k < v / 2));
        assert!((0..n).all(|i| id(p, 2 * i + 1) >= v / 2), "values from the second half");
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), n, "distinct keys");
        let mut asked = Vec::new();
        for j in 0..q {
            let pair = query_of[p * q + j];
            assert_eq!(id(p, 2 * n + 2 * j), keys[pair]);
            assert_eq!(classes[p * s.t + 2 * n + 2 * j] as usize, id(p, 2 * pair + 1));
            assert!(weights[p * s.t + 2 * n + 2 * j] > 0.0);
            asked.push(pair);
        }
        asked.sort();
        asked.dedup();
        assert_eq!(asked.len(), q, "distinct queries");
    }
    let zero = task.errors(&s, &vec![0.0; 6 * s.t * v]);
    assert!(zero.iter().filter(|e| e.is_finite()).all(|e| (e - (1.0 - 1.0 / v as f32)).abs() < 1e-6));
}

#[test]
fn cot_tokens_hold_x_s_y_in_their_own_blocks() {
    let (d, k) = (5, 3);
    let task = ChainOfThought { n_dims: d, hidden: k };
    let s = task.sample(&mut rng(28), 4, 6, d);
    let Extra::Cot { s: hidden, .. } = &s.extra else { panic!("no s") };
    let w = task.layout().d_in;
    assert_eq!((w, task.layout().d_out, s.t), (d + k + 4, k + 1, 18));
    for p in 0..4 {
        for i in 0..6 {
            let tok = |j: usize| &s.tokens[(p * 18 + 3 * i + j) * w..(p * 18 + 3 * i + j + 1) * w];
            assert_eq!(&tok(0)[..d], s.batch.x(p, i));
            assert_eq!(&tok(1)[d..d + k], &hidden[(p * 6 + i) * k..(p * 6 + i + 1) * k]);
            assert_eq!(tok(2)[d + k], s.batch.y(p, i));
            assert_eq!((tok(0)[d + k + 1], tok(1)[d + k + 2], tok(2)[d + k + 3]), (1.0, 1.0, 1.0));
            assert!(hidden[(p * 6 + i) * k..(p * 6 + i + 1) * k].iter().all(|v| *v >= 0.0), "s is a ReLU");
        }
    }
    // Feeding the true s back reproduces the teacher-forced tokens.
    let (_, weights) = dense(&s);
    let (values, _) = dense(&s);
    let perfect: Vec<f32> = values.to_vec();
    let (_, again) = task.feedback(&s, &perfect).expect("CoT feeds back");
    assert_eq!(again, s.tokens);
    assert!((weights.iter().sum::<f32>() - (k + 1) as f32).abs() < 1e-4, "s loss summed over k, y loss: means");
    assert!(task.errors(&s, &perfect).iter().all(|e| *e == 0.0));
}

#[test]
fn least_squares_uses_only_clean_context() {
    let task = ManyOutlierRegression { n_dims: 4, p: 0.5 };
    let s = task.sample(&mut rng(29), 8, 40, 4);
    let pred = least_squares(&s.batch);
    let errs = task.score(&s.batch, &pred);
    // Once 4+ clean examples precede it, a clean example is predicted exactly.
    for p in 0..8 {
        let mut seen = 0;
        for i in 0..40 {
            if seen >= 5 && s.batch.is_clean(p, i) {
                assert!(errs[p * 40 + i] < 1e-6, "prompt {p} point {i}: {}", errs[p * 40 + i]);
            }
            seen += usize::from(s.batch.is_clean(p, i));
        }
    }
}

#[test]
fn lasso_recovers_a_three_sparse_w() {
    let task = SparseLinearRegression { n_dims: 20, sparsity: 3 };
    let s = task.sample(&mut rng(30), 16, 30, 20);
    let errs = task.score(&s.batch, &baselines::lasso_predict(&s.batch, 0.01));
    let ls = task.score(&s.batch, &least_squares(&s.batch));
    // With 15 examples in 20 dims least squares cannot know w; lasso can (3 nonzeros).
    let at = |e: &[f32], i: usize| (0..16).map(|p| e[p * 30 + i]).sum::<f32>() / 16.0;
    assert!(at(&errs, 15) < 0.01, "lasso error {}", at(&errs, 15));
    assert!(at(&ls, 15) > 0.1, "least squares error {}", at(&ls, 15));
    assert!(at(&errs, 29) < 0.01);
}

#[test]
fn greedy_tree_splits_where_the_error_drops_most() {
    // y = 10 when x > 0: one split at the midpoint between -0.5 and 1 fits it.
    let xs = vec![-1.0, 1.0, -2.0, 2.0, -0.5, 3.0, 0.5];
    let ys = vec![0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0];
    let batch = Batch { b: 1, n: 7, d: 1, xs, ys, clean: None };
    let pred = baselines::greedy_tree_predict(&batch, Some(1));
    assert_eq!(pred[1], 0.0, "one example: its mean");
    assert_eq!(pred[5], 10.0);
    // Threshold between -0.5 and 1.0 is 0.25: x = 0.5 goes right.
    assert_eq!(pred[6], 10.0);
    // On the decision-tree task the tree learner beats 3-NN with enough examples.
    let task = DecisionTree { n_dims: 5, depth: 2 };
    let s = task.sample(&mut rng(31), 32, 100, 5);
    let mean_last = |e: Vec<f32>| (0..32).map(|p| e[p * 100 + 99]).sum::<f32>() / 32.0;
    let tree = mean_last(task.score(&s.batch, &baselines::greedy_tree_predict(&s.batch, None)));
    let knn = mean_last(task.score(&s.batch, &nearest_neighbours(&s.batch, 3)));
    assert!(tree < knn, "tree {tree} vs 3-NN {knn}");
}

#[test]
fn gd_2nn_learns_and_skips_what_it_does_not_cover() {
    let task = LinearRegression { n_dims: 3 };
    let s = task.sample(&mut rng(32), 4, 41, 3);
    let cfg = baselines::Gd2nnConfig { max_prompts: 2, positions: 4, ..Default::default() };
    let pred = baselines::gd_2nn_predict(&s.batch, &cfg);
    assert!(pred[2 * 41..].iter().all(|v| v.is_nan()), "prompts past max_prompts are skipped");
    assert!(pred[40].is_finite() && pred[1].is_nan());
    let errs = task.score(&s.batch, &pred);
    let zero: f32 = (0..2).map(|p| s.batch.y(p, 40).powi(2) / 3.0).sum::<f32>() / 2.0;
    let net = (errs[40] + errs[41 + 40]) / 2.0;
    assert!(net < 0.5 * zero, "2-layer NN {net} vs zero {zero}");
}

#[test]
fn a_sample_marked_interleaved_has_its_examples_as_tokens_exactly() {
    // The training loop uploads a marked sample's examples alone and rebuilds its tokens on
    // the device from them: every task, at a curriculum shape and at full width.
    let mut marked = Vec::new();
    for kind in crate::spec::TaskSpec::KINDS {
        let spec: crate::spec::TaskSpec = toml::from_str(&format!("kind = '{kind}'")).unwrap();
        let task = build(&spec);
        for (seed, dims) in [(3, 2), (4, spec.n_dims())] {
            let s = task.sample(&mut rng(seed), 5, 7, dims.min(spec.n_dims()));
            if s.interleaved {
                assert_eq!(s.t, 2 * s.batch.n, "{kind}");
                assert_eq!(s.tokens, s.batch.tokens(), "{kind}: tokens are not the examples interleaved");
                marked.push(kind);
            }
        }
    }
    assert!(marked.contains(&"linear_regression") && !marked.contains(&"orthogonal_outlier_regression"), "{marked:?}");
}

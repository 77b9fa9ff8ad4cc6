//! Classical in-context learners, run on the same prompts as the model (paper-spec §1.5).
//!
//! Each predicts y_i from the clean examples before i and x_i; all predict 0 with no example
//! yet. They take the unpadded (b, n) ys, as in Garg et al. (paper-spec §7 item 6). Prompts are
//! independent, so every learner runs over them in parallel (rayon).
//!
//! The zero predictor is not here: every task scores all-zero model outputs as its trivial
//! reference (`zero`), so it means the same thing for regression (≈ 1) and for
//! classification (chance).

mod averaging;
mod gd_2nn;
mod greedy_tree;
mod knn;
mod lasso;
mod least_squares;
mod parity;

use std::sync::Arc;

use rayon::prelude::*;

pub use averaging::averaging;
pub use gd_2nn::{gd_2nn_predict, Gd2nnConfig};
pub use greedy_tree::greedy_tree_predict;
pub use knn::nearest_neighbours;
pub use lasso::lasso_predict;
pub use least_squares::{least_squares, min_norm_solve as least_squares_solve};
pub use parity::{binomial, subset_vote, MAX_SUBSETS};

use super::Batch;

/// The name of the trivial reference curve (all-zero outputs).
pub const ZERO: &str = "zero";

/// A named learner: a batch of prompts to predictions of every y, shape (b, n). NaN marks a
/// position it did not predict (learners too slow for every position).
#[derive(Clone)]
pub struct Baseline {
    pub name: String,
    pub predict: Arc<dyn Fn(&Batch) -> Vec<f32> + Send + Sync>,
}

impl Baseline {
    pub fn new(name: impl Into<String>, predict: impl Fn(&Batch) -> Vec<f32> + Send + Sync + 'static) -> Self {
        Baseline { name: name.into(), predict: Arc::new(predict) }
    }
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Baseline({})", self.name)
    }
}

/// Least squares, 3-NN and averaging: the baselines of every regression task.
pub fn linear() -> Vec<Baseline> {
    vec![
        Baseline::new("least_squares", least_squares),
        Baseline::new("3nn", |b: &Batch| nearest_neighbours(b, 3)),
        Baseline::new("averaging", averaging),
    ]
}

/// Lasso by coordinate descent, α = 0.01 (the one α the paper plots).
pub fn lasso() -> Baseline {
    Baseline::new("lasso", |b: &Batch| lasso_predict(b, 0.01))
}

/// A fresh 2-layer ReLU network trained by Adam per position (paper-spec §1.5).
pub fn gd_2nn() -> Baseline {
    Baseline::new("2nn_gd", |b: &Batch| gd_2nn_predict(b, &Gd2nnConfig::default()))
}

/// A greedy (CART, squared error) regression tree of at most `depth` levels (None: grown
/// until leaves are pure).
pub fn greedy_tree(depth: Option<usize>) -> Baseline {
    let name = match depth {
        Some(d) => format!("tree_depth{d}"),
        None => "tree".to_string(),
    };
    Baseline::new(name, move |b: &Batch| greedy_tree_predict(b, depth))
}

/// Predictions for every prompt, computed in parallel: `f(prompt)` gives that prompt's n
/// predictions.
pub fn per_prompt(batch: &Batch, f: impl Fn(usize) -> Vec<f32> + Sync + Send) -> Vec<f32> {
    let rows: Vec<Vec<f32>> = (0..batch.b).into_par_iter().map(f).collect();
    rows.concat()
}

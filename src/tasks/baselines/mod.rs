//! Classical in-context learners, run on the same prompts as the model (paper-spec §1.5).
//!
//! Each predicts y_i from (x_1, y_1, ..., x_{i-1}, y_{i-1}, x_i); all predict 0 at i = 0.
//! They take the unpadded (b, n) ys, as in Garg et al. (paper-spec §7 item 6).

mod averaging;
mod knn;
mod least_squares;

pub use averaging::averaging;
pub use knn::nearest_neighbours;
pub use least_squares::least_squares;

use super::Batch;

/// A named baseline: a function from a batch to predictions of shape (b, n).
#[derive(Clone, Copy)]
pub struct Baseline {
    pub name: &'static str,
    pub predict: fn(&Batch) -> Vec<f32>,
}

/// Predicts 0 everywhere: the trivial reference (normalised error ≈ 1 for regression).
pub fn zero(batch: &Batch) -> Vec<f32> {
    vec![0.0; batch.b * batch.n]
}

fn three_nn(batch: &Batch) -> Vec<f32> {
    nearest_neighbours(batch, 3)
}

/// The baselines drawn beside regression curves.
pub fn regression() -> Vec<Baseline> {
    vec![
        Baseline { name: "least_squares", predict: least_squares },
        Baseline { name: "3nn", predict: three_nn },
        Baseline { name: "averaging", predict: averaging },
        Baseline { name: "zero", predict: zero },
    ]
}

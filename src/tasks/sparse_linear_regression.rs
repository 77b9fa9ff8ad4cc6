//! Sparse linear regression (paper-spec §2.2): w ~ N(0, I_d) with all but `k` coordinates
//! zeroed, the kept ones drawn among the curriculum's active dims; y = wᵀx.

use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use super::{baselines, dot, normal_vec, regression_batch, Baseline, Metric, Sample, Task};

#[derive(Debug, Clone)]
pub struct SparseLinearRegression {
    pub n_dims: usize,
    /// k: nonzero coordinates of w (paper: 3).
    pub sparsity: usize,
}

impl SparseLinearRegression {
    /// One task vector with exactly min(k, active_dims) nonzero coordinates, all < active_dims.
    pub fn sample_w(&self, rng: &mut ChaCha8Rng, active_dims: usize) -> Vec<f32> {
        let active = active_dims.min(self.n_dims);
        let dense = normal_vec(rng, self.n_dims);
        let mut w = vec![0.0; self.n_dims];
        for i in sample(rng, active, self.sparsity.min(active)) {
            w[i] = dense[i];
        }
        w
    }
}

impl Task for SparseLinearRegression {
    fn kind(&self) -> &'static str {
        "sparse_linear_regression"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        Sample::interleaved(regression_batch(rng, (b, n, self.n_dims), active_dims, |rng| {
            let w = self.sample_w(rng, active_dims);
            move |x: &[f32]| dot(&w, x)
        }))
    }

    /// The zero predictor's error is E[y²] = k.
    fn metric(&self) -> Metric {
        Metric::squared_error(self.sparsity as f32)
    }

    fn baselines(&self) -> Vec<Baseline> {
        let mut all = baselines::linear();
        all.push(baselines::lasso());
        all
    }
}

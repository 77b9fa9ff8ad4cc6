//! Many-outlier regression (paper-spec §2.6): linear regression where each example is, with
//! probability p (paper: 0.9), replaced by x = (1, ..., 1) (all d coordinates, truncated ones
//! too) and y = 1. The loss and the errors cover the clean examples only, so at p = 0.9 a
//! prompt of 512 examples holds ~51 that teach anything.

use rand_chacha::ChaCha8Rng;

use super::{baselines, bernoulli_mask, dot, normal_vec, regression_batch, Baseline, Metric, Sample, Task};

#[derive(Debug, Clone)]
pub struct ManyOutlierRegression {
    pub n_dims: usize,
    pub p: f64,
}

impl Task for ManyOutlierRegression {
    fn kind(&self) -> &'static str {
        "many_outlier_regression"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        let d = self.n_dims;
        let mut batch = regression_batch(rng, (b, n, d), active_dims, |rng| {
            let w = normal_vec(rng, d);
            move |x: &[f32]| dot(&w, x)
        });
        let outlier = bernoulli_mask(rng, b * n, self.p);
        for (k, _) in outlier.iter().enumerate().filter(|(_, o)| **o) {
            batch.xs[k * d..(k + 1) * d].fill(1.0);
            batch.ys[k] = 1.0;
        }
        batch.clean = Some(outlier.iter().map(|o| !o).collect());
        Sample::interleaved(batch)
    }

    fn metric(&self) -> Metric {
        Metric::squared_error(self.n_dims as f32)
    }

    /// Least squares only, as the paper (§1.5), on the clean examples.
    fn baselines(&self) -> Vec<Baseline> {
        vec![Baseline::new("least_squares", baselines::least_squares)]
    }
}

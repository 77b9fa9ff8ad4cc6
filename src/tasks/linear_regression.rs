//! Linear regression (paper-spec §2.1): w ~ N(0, I_d) per prompt, y = wᵀx, no noise.

use rand_chacha::ChaCha8Rng;

use super::{baselines, dot, normal_vec, regression_batch, Baseline, Metric, Sample, Task};

#[derive(Debug, Clone)]
pub struct LinearRegression {
    pub n_dims: usize,
}

impl Task for LinearRegression {
    fn kind(&self) -> &'static str {
        "linear_regression"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        let d = self.n_dims;
        // w spans all d coordinates; truncated x coordinates are zero, so they do not count.
        Sample::interleaved(regression_batch(rng, (b, n, d), active_dims, |rng| {
            let w = normal_vec(rng, d);
            move |x: &[f32]| dot(&w, x)
        }))
    }

    fn metric(&self) -> Metric {
        Metric::squared_error(self.n_dims as f32)
    }

    fn baselines(&self) -> Vec<Baseline> {
        baselines::linear()
    }
}

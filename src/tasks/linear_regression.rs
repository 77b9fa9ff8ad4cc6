//! Linear regression (paper-spec §2.1): w ~ N(0, I_d) per prompt, y = wᵀx, no noise.

use rand_chacha::ChaCha8Rng;

use super::{dot, gaussian_xs, normal_vec, Batch, Task};

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

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Batch {
        let d = self.n_dims;
        let xs = gaussian_xs(rng, b, n, d, active_dims);
        let mut ys = Vec::with_capacity(b * n);
        for p in 0..b {
            // w spans all d coordinates; truncated x coordinates are zero, so they do not count.
            let w = normal_vec(rng, d);
            for i in 0..n {
                let start = (p * n + i) * d;
                ys.push(dot(&w, &xs[start..start + d]));
            }
        }
        Batch { b, n, d, xs, ys }
    }

    fn error_scale(&self) -> f32 {
        self.n_dims as f32
    }
}

//! 2-layer ReLU network regression (paper-spec §2.3): per prompt W1 ∈ R^{d×h}, W2 ∈ R^h with
//! N(0, 1) entries; y = sqrt(2/h) · W2ᵀ ReLU(W1ᵀ x), so Var(y) ≈ d.

use rand_chacha::ChaCha8Rng;

use super::{gaussian_xs, normal_vec, Batch, Task};

#[derive(Debug, Clone)]
pub struct Relu2nnRegression {
    pub n_dims: usize,
    /// h: hidden width (paper: 100).
    pub hidden: usize,
}

impl Task for Relu2nnRegression {
    fn kind(&self) -> &'static str {
        "relu_2nn_regression"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Batch {
        let (d, h) = (self.n_dims, self.hidden);
        let xs = gaussian_xs(rng, b, n, d, active_dims);
        let scale = (2.0 / h as f32).sqrt();
        let mut ys = Vec::with_capacity(b * n);
        for p in 0..b {
            let w1 = normal_vec(rng, d * h); // row-major (d, h)
            let w2 = normal_vec(rng, h);
            for i in 0..n {
                let x = &xs[(p * n + i) * d..(p * n + i + 1) * d];
                let mut y = 0.0;
                for (j, w2j) in w2.iter().enumerate() {
                    let pre: f32 = x.iter().enumerate().map(|(k, xk)| xk * w1[k * h + j]).sum();
                    y += w2j * pre.max(0.0);
                }
                ys.push(scale * y);
            }
        }
        Batch { b, n, d, xs, ys }
    }

    fn error_scale(&self) -> f32 {
        self.n_dims as f32
    }
}

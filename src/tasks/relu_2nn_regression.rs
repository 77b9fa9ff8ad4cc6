//! 2-layer ReLU network regression (paper-spec §2.3): per prompt W1 ∈ R^{d×h}, W2 ∈ R^h with
//! N(0, 1) entries; y = sqrt(2/h) · W2ᵀ ReLU(W1ᵀ x), so Var(y) ≈ d.

use rand_chacha::ChaCha8Rng;

use super::{baselines, normal_vec, regression_batch, Baseline, Metric, Sample, Task};

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

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        let (d, h) = (self.n_dims, self.hidden);
        let scale = (2.0 / h as f32).sqrt();
        Sample::interleaved(regression_batch(rng, (b, n, d), active_dims, |rng| {
            let w1 = normal_vec(rng, d * h); // row-major (d, h)
            let w2 = normal_vec(rng, h);
            move |x: &[f32]| {
                let hidden = w2.iter().enumerate().map(|(j, w2j)| {
                    let pre: f32 = x.iter().enumerate().map(|(k, xk)| xk * w1[k * h + j]).sum();
                    w2j * pre.max(0.0)
                });
                scale * hidden.sum::<f32>()
            }
        }))
    }

    fn metric(&self) -> Metric {
        Metric::squared_error(self.n_dims as f32)
    }

    fn baselines(&self) -> Vec<Baseline> {
        let mut all = baselines::linear();
        all.push(baselines::gd_2nn());
        all
    }
}

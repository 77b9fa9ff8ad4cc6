//! Orthogonal-outlier regression (paper-spec §2.5): linear regression where each example is,
//! with probability p, replaced by an outlier: its x token becomes a vector orthogonal to the
//! prompt's own task vector w, and its whole y token another such vector. The loss and the
//! errors cover the clean examples only.
//!
//! The paper's code orthogonalises against a fresh random w' instead of the prompt's w (so its
//! outliers are not orthogonal to anything that matters) and mis-normalises the mixture; we
//! follow the task's evident intent (§7 item 1): uniform directions in w's orthogonal
//! complement, scaled to norm √d like a typical x. As in the code, one x-outlier and one
//! y-outlier vector are drawn per prompt and repeated at each of its outlier positions.

use rand_chacha::ChaCha8Rng;

use super::{baselines, bernoulli_mask, dot, normal_vec, regression_batch, Baseline, Metric, Sample, Task};

#[derive(Debug, Clone)]
pub struct OrthogonalOutlierRegression {
    pub n_dims: usize,
    /// Outlier probability per example (paper: 0.5).
    pub p: f64,
}

/// A random vector orthogonal to `w` with norm √d (Gram–Schmidt of a Gaussian draw).
pub fn orthogonal_to(rng: &mut ChaCha8Rng, w: &[f32]) -> Vec<f32> {
    let d = w.len();
    let ww = dot(w, w);
    loop {
        let g = normal_vec(rng, d);
        let along = if ww > 0.0 { dot(&g, w) / ww } else { 0.0 };
        let u: Vec<f32> = g.iter().zip(w).map(|(g, w)| g - along * w).collect();
        let norm = dot(&u, &u).sqrt();
        if norm > 1e-3 {
            let scale = (d as f32).sqrt() / norm;
            return u.iter().map(|v| v * scale).collect();
        }
    }
}

impl Task for OrthogonalOutlierRegression {
    fn kind(&self) -> &'static str {
        "orthogonal_outlier_regression"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        let d = self.n_dims;
        let mut ws = Vec::with_capacity(b);
        let mut batch = regression_batch(rng, (b, n, d), active_dims, |rng| {
            let w = normal_vec(rng, d);
            ws.push(w.clone());
            move |x: &[f32]| dot(&w, x)
        });
        let outlier = bernoulli_mask(rng, b * n, self.p);
        let mut y_tokens = Vec::with_capacity(b);
        for (p, w) in ws.iter().enumerate() {
            let (x_out, y_out) = (orthogonal_to(rng, w), orthogonal_to(rng, w));
            for i in (0..n).filter(|&i| outlier[p * n + i]) {
                batch.xs[(p * n + i) * d..(p * n + i + 1) * d].copy_from_slice(&x_out);
                batch.ys[p * n + i] = y_out[0];
            }
            y_tokens.push(y_out);
        }
        batch.clean = Some(outlier.iter().map(|o| !o).collect());
        let mut sample = Sample::interleaved(batch);
        // The whole y token of an outlier is the vector, not a zero-padded scalar.
        for (p, y_out) in y_tokens.iter().enumerate() {
            for i in (0..n).filter(|&i| outlier[p * n + i]) {
                let at = (p * 2 * n + 2 * i + 1) * d;
                sample.tokens[at..at + d].copy_from_slice(y_out);
            }
        }
        sample.interleaved = false;
        sample
    }

    fn metric(&self) -> Metric {
        Metric::squared_error(self.n_dims as f32)
    }

    /// Least squares only, as the paper (§1.5), on the clean examples.
    fn baselines(&self) -> Vec<Baseline> {
        vec![Baseline::new("least_squares", baselines::least_squares)]
    }
}

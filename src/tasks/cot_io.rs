//! Chain-of-thought I/O (paper-spec §2.8, after Li et al.'s [COT] construction): a 2-layer
//! ReLU network per prompt, s = sqrt(2/k)·ReLU(Wᵀx), y = vᵀs, with W ∈ R^{d×k}, v ∈ R^k ~ N(0, 1).
//! Each example is three tokens x, s, y; the model predicts s at the x token and y at the s
//! token, and the loss is the sum of both squared errors (s summed over its k entries).
//!
//! [COT] gives each token type its own read-in, Linear(d, e), Linear(k, e), Linear(1, e). We
//! build the same map from one Linear(d + k + 1 + 3, e) over tokens that put x, s and y in
//! disjoint column blocks plus a one-hot of the token type: on a token only its block and its
//! type column are nonzero, so the shared matrix acts as that type's own weights and the type
//! column as its own bias. The read-out is likewise Linear(e, k + 1): columns 0..k are the
//! s-head (read at x tokens), column k the y-head (read at s tokens).
//!
//! Scored on y: teacher-forced (the true s in every s token) as the model curve, and with the
//! model's own ŝ fed back in every s token as a second curve (`model_own_s`).

use rand_chacha::ChaCha8Rng;

use super::{baselines, gaussian_xs, normal_vec, Baseline, Batch, Extra, Layout, Loss, Metric, Sample, Target, Task};

#[derive(Debug, Clone)]
pub struct ChainOfThought {
    pub n_dims: usize,
    /// k: the width of s.
    pub hidden: usize,
}

impl ChainOfThought {
    fn width(&self) -> usize {
        self.n_dims + self.hidden + 1 + 3
    }

    /// Column offsets of the s block, the y column and the first type column.
    fn cols(&self) -> (usize, usize, usize) {
        let (d, k) = (self.n_dims, self.hidden);
        (d, d + k, d + k + 1)
    }

    /// Tokens for examples (x, s, y), s being the true one or the model's.
    fn tokens(&self, batch: &Batch, s: &[f32]) -> Vec<f32> {
        let (d, k, w, n) = (self.n_dims, self.hidden, self.width(), batch.n);
        let (s_col, y_col, type_col) = self.cols();
        let mut out = vec![0.0f32; batch.b * 3 * n * w];
        for p in 0..batch.b {
            for i in 0..n {
                let base = (p * 3 * n + 3 * i) * w;
                let (x_tok, rest) = out[base..base + 3 * w].split_at_mut(w);
                let (s_tok, y_tok) = rest.split_at_mut(w);
                x_tok[..d].copy_from_slice(batch.x(p, i));
                x_tok[type_col] = 1.0;
                s_tok[s_col..s_col + k].copy_from_slice(&s[(p * n + i) * k..(p * n + i + 1) * k]);
                s_tok[type_col + 1] = 1.0;
                y_tok[y_col] = batch.y(p, i);
                y_tok[type_col + 2] = 1.0;
            }
        }
        out
    }
}

impl Task for ChainOfThought {
    fn kind(&self) -> &'static str {
        "chain_of_thought"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn layout(&self) -> Layout {
        Layout { d_in: self.width(), d_out: self.hidden + 1, loss: Loss::SquaredError }
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        let (d, k) = (self.n_dims, self.hidden);
        let xs = gaussian_xs(rng, b, n, d, active_dims);
        let scale = (2.0 / k as f32).sqrt();
        let mut s = vec![0.0f32; b * n * k];
        let mut ys = vec![0.0f32; b * n];
        for p in 0..b {
            let w = normal_vec(rng, d * k); // row-major (d, k)
            let v = normal_vec(rng, k);
            for i in 0..n {
                let x = &xs[(p * n + i) * d..(p * n + i + 1) * d];
                let si = &mut s[(p * n + i) * k..(p * n + i + 1) * k];
                for (j, sj) in si.iter_mut().enumerate() {
                    let pre: f32 = x.iter().enumerate().map(|(r, xr)| xr * w[r * k + j]).sum();
                    *sj = scale * pre.max(0.0);
                }
                ys[p * n + i] = si.iter().zip(&v).map(|(a, b)| a * b).sum();
            }
        }
        let batch = Batch { b, n, d, xs, ys, clean: None };
        let tokens = self.tokens(&batch, &s);
        // Loss: Σ_k (ŝ − s)² at x tokens + (ŷ − y)² at s tokens, each a mean over (b, n).
        let d_out = k + 1;
        let t = 3 * n;
        let w = 1.0 / (b * n) as f32;
        let mut values = vec![0.0f32; b * t * d_out];
        let mut weights = vec![0.0f32; b * t * d_out];
        for p in 0..b {
            for i in 0..n {
                let at_x = (p * t + 3 * i) * d_out;
                values[at_x..at_x + k].copy_from_slice(&s[(p * n + i) * k..(p * n + i + 1) * k]);
                weights[at_x..at_x + k].fill(w);
                let at_s = (p * t + 3 * i + 1) * d_out;
                values[at_s + k] = batch.y(p, i);
                weights[at_s + k] = w;
            }
        }
        Sample { t, tokens, target: Target::Dense { values, weights }, batch, extra: Extra::Cot { s, k }, interleaved: false }
    }

    /// E[y²] = |x|² ≈ d (as for the 2NN task).
    fn metric(&self) -> Metric {
        Metric::squared_error(self.n_dims as f32)
    }

    /// ŷ at each s token.
    fn errors(&self, s: &Sample, outputs: &[f32]) -> Vec<f32> {
        let (n, k) = (s.batch.n, self.hidden);
        let d_out = k + 1;
        let pred: Vec<f32> =
            (0..s.batch.b).flat_map(|p| (0..n).map(move |i| outputs[(p * 3 * n + 3 * i + 1) * d_out + k])).collect();
        self.score(&s.batch, &pred)
    }

    /// No baselines in the paper; least squares and 3-NN on (x, y) as references.
    fn baselines(&self) -> Vec<Baseline> {
        baselines::linear().into_iter().filter(|b| b.name != "averaging").collect()
    }

    /// The model's own ŝ (read at the x tokens) in place of every s.
    fn feedback(&self, s: &Sample, outputs: &[f32]) -> Option<(&'static str, Vec<f32>)> {
        let (n, k) = (s.batch.n, self.hidden);
        let d_out = k + 1;
        let s_hat: Vec<f32> = (0..s.batch.b)
            .flat_map(|p| (0..n).flat_map(move |i| (0..k).map(move |j| (p, i, j))))
            .map(|(p, i, j)| outputs[(p * 3 * n + 3 * i) * d_out + j])
            .collect();
        Some(("model_own_s", self.tokens(&s.batch, &s_hat)))
    }
}

//! Sparse parity (paper-spec §2.7): x uniform on {−1, +1}^d, y = Π_{j∈S} x_j for a hidden
//! subset S of k coordinates. Trained with BCE on sigmoid(output) against (y + 1)/2 and scored
//! by the error rate of sign(output) (a zero output is a coin flip: half an error).
//!
//! The paper's code draws one S per batch; `subset_per = "prompt"` (our default, §7 item 4)
//! draws one per prompt, so a prompt's own examples are the only way to find it.

use rand::seq::index::sample;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::baselines::{binomial, subset_vote, MAX_SUBSETS};
use super::{read_x_tokens, Baseline, Batch, Layout, Loss, Metric, Sample, Summary, Task};
use crate::spec::SubsetPer;

#[derive(Debug, Clone)]
pub struct SparseParity {
    pub n_dims: usize,
    pub k: usize,
    pub subset_per: SubsetPer,
}

impl SparseParity {
    /// k distinct coordinates among the active ones (all of them when fewer are active).
    pub fn sample_subset(&self, rng: &mut ChaCha8Rng, active_dims: usize) -> Vec<usize> {
        let active = active_dims.min(self.n_dims);
        sample(rng, active, self.k.min(active)).into_vec()
    }
}

/// Error of predicting `pred` (a logit or a ±1 vote) for a label y ∈ {−1, 1}.
fn sign_error(y: f32, pred: f32) -> f32 {
    if pred == 0.0 {
        0.5
    } else if (pred > 0.0) == (y > 0.0) {
        0.0
    } else {
        1.0
    }
}

impl Task for SparseParity {
    fn kind(&self) -> &'static str {
        "sparse_parity"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn layout(&self) -> Layout {
        Layout { d_in: self.n_dims, d_out: 1, loss: Loss::BinaryCrossEntropy }
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        let d = self.n_dims;
        let mut xs = vec![0.0f32; b * n * d];
        for row in xs.chunks_mut(d) {
            for v in row.iter_mut().take(active_dims.min(d)) {
                *v = if rng.random::<bool>() { 1.0 } else { -1.0 };
            }
        }
        let shared = self.sample_subset(rng, active_dims);
        let mut ys = Vec::with_capacity(b * n);
        for prompt in xs.chunks(n * d) {
            let subset = match self.subset_per {
                SubsetPer::Prompt => self.sample_subset(rng, active_dims),
                SubsetPer::Batch => shared.clone(),
            };
            ys.extend(prompt.chunks(d).map(|x| subset.iter().map(|&j| x[j]).product::<f32>()));
        }
        let batch = Batch { b, n, d, xs, ys, clean: None };
        Sample::interleaved_with(batch, |y| (y + 1.0) / 2.0)
    }

    fn metric(&self) -> Metric {
        Metric { label: "error rate (1 - accuracy)".into(), scale: 1.0, summary: Summary::LastPosition }
    }

    fn errors(&self, s: &Sample, outputs: &[f32]) -> Vec<f32> {
        self.score(&s.batch, &read_x_tokens(s, outputs))
    }

    fn score(&self, batch: &Batch, pred: &[f32]) -> Vec<f32> {
        batch.ys.iter().zip(pred).map(|(&y, &p)| if p.is_nan() { f32::NAN } else { sign_error(y, p) }).collect()
    }

    /// No baseline in the paper; ours is the learner that knows the family (all k-subsets
    /// consistent with the examples vote), when there are few enough subsets to track.
    fn baselines(&self) -> Vec<Baseline> {
        if binomial(self.n_dims, self.k) > MAX_SUBSETS {
            return Vec::new();
        }
        let k = self.k;
        vec![Baseline::new("subset_vote", move |b: &Batch| subset_vote(b, k))]
    }
}

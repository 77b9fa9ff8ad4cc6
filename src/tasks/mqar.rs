//! Multi-query associative recall.
//!
//! `VectorMqar` (paper-spec §2.9): n key/value pairs `k_1, v_1, ..., k_n, v_n`, every vector
//! N(0, I) rescaled to the sphere of radius √d, then `queries` query tokens, each a copy of a
//! random key. The model's d outputs at a query token predict the value of the key it copies
//! (MSE). A query is answered right when the value nearest its prediction is the right one.
//! Deviations from the paper's code (§7 item 2): several queries are allowed (default 1, as the
//! paper), a query is always a copy of a key (the code's query is, with probability 1/65, a
//! copy of itself), and correctness compares values with values (the code compares both
//! predicted and true value against the keys, a proxy).
//!
//! `TokenMqar` (Zoology-style): discrete tokens as one-hot vectors; keys from the first half of
//! the vocabulary (distinct within a prompt), values from the second; after the pairs, queries
//! for distinct keys, each followed by its value (teacher forcing); cross-entropy at the query
//! tokens over the whole vocabulary.
//!
//! Both score per query and draw the ICL curve over the position of the key asked for (error
//! vs. how early in the prompt the pair was), summarised by the mean over positions.

use rand::seq::index::sample;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{dot, normal_vec, Baseline, Batch, Extra, Layout, Loss, Metric, Sample, Summary, Target, Task};

/// Relative tolerance under which two scores count as tied (a tie of m candidates that holds
/// the right one is 1 − 1/m of an error: the expected error of breaking it at random).
const TIE: f32 = 1e-5;

/// The error of choosing the best-scoring candidate when `gold` is right.
fn choice_error(scores: impl Iterator<Item = f32>, gold: usize) -> f32 {
    let scores: Vec<f32> = scores.collect();
    let best = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !best.is_finite() {
        return 1.0;
    }
    let tol = TIE * best.abs().max(1.0);
    let tied = scores.iter().filter(|s| **s >= best - tol).count();
    if scores[gold] >= best - tol {
        1.0 - 1.0 / tied as f32
    } else {
        1.0
    }
}

/// Per-position errors from per-query errors: the mean over queries that asked for the key at
/// that position, NaN where none did; shape (b, n).
fn by_key_position(b: usize, n: usize, queries: usize, query_of: &[usize], query_error: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut sum = vec![0.0f32; b * n];
    let mut count = vec![0u32; b * n];
    for p in 0..b {
        for q in 0..queries {
            let at = p * n + query_of[p * queries + q];
            sum[at] += query_error(p, q);
            count[at] += 1;
        }
    }
    sum.iter().zip(&count).map(|(s, &c)| if c == 0 { f32::NAN } else { s / c as f32 }).collect()
}

fn rate_metric() -> Metric {
    Metric { label: "error rate (wrong value)".into(), scale: 1.0, summary: Summary::MeanOverPositions }
}

#[derive(Debug, Clone)]
pub struct VectorMqar {
    pub n_dims: usize,
    pub queries: usize,
}

impl VectorMqar {
    /// N(0, I) over the active dims, rescaled to norm √d.
    fn sphere(&self, rng: &mut ChaCha8Rng, active_dims: usize) -> Vec<f32> {
        let d = self.n_dims;
        let mut v = normal_vec(rng, d);
        v[active_dims.min(d)..].fill(0.0);
        let norm = dot(&v, &v).sqrt().max(1e-12);
        let scale = (d as f32).sqrt() / norm;
        v.iter_mut().for_each(|x| *x *= scale);
        v
    }
}

impl Task for VectorMqar {
    fn kind(&self) -> &'static str {
        "vector_mqar"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn layout(&self) -> Layout {
        Layout { d_in: self.n_dims, d_out: self.n_dims, loss: Loss::SquaredError }
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        let (d, nq) = (self.n_dims, self.queries);
        let t = 2 * n + nq;
        let mut keys = Vec::with_capacity(b * n * d);
        let mut values = Vec::with_capacity(b * n * d);
        let mut tokens = vec![0.0f32; b * t * d];
        let mut query_of = Vec::with_capacity(b * nq);
        let mut target = vec![0.0f32; b * t * d];
        let mut weights = vec![0.0f32; b * t * d];
        let w = 1.0 / (b * nq * d) as f32;
        for p in 0..b {
            let (k0, v0) = (keys.len(), values.len());
            for _ in 0..n {
                keys.extend(self.sphere(rng, active_dims));
                values.extend(self.sphere(rng, active_dims));
            }
            let (pk, pv) = (&keys[k0..], &values[v0..]);
            for i in 0..n {
                let at = (p * t + 2 * i) * d;
                tokens[at..at + d].copy_from_slice(&pk[i * d..(i + 1) * d]);
                tokens[at + d..at + 2 * d].copy_from_slice(&pv[i * d..(i + 1) * d]);
            }
            for q in 0..nq {
                let copied = rng.random_range(0..n);
                let query = &pk[copied * d..(copied + 1) * d];
                // The answer is the value of the best-matching key (the copied one, unless two
                // keys coincide).
                let gold = (0..n)
                    .max_by(|&a, &b| dot(query, &pk[a * d..(a + 1) * d]).total_cmp(&dot(query, &pk[b * d..(b + 1) * d])))
                    .unwrap_or(copied);
                query_of.push(gold);
                let at = (p * t + 2 * n + q) * d;
                tokens[at..at + d].copy_from_slice(query);
                target[at..at + d].copy_from_slice(&pv[gold * d..(gold + 1) * d]);
                weights[at..at + d].fill(w);
            }
        }
        let batch = Batch { b, n, d, xs: keys, ys: vec![0.0; b * n], clean: None };
        Sample {
            t,
            tokens,
            target: Target::Dense { values: target, weights },
            batch,
            extra: Extra::Mqar { query_of, queries: nq, values },
            interleaved: false,
        }
    }

    fn metric(&self) -> Metric {
        rate_metric()
    }

    /// Nearest value (largest ⟨ŷ, v⟩ − |v|²/2, i.e. smallest distance) at each query token.
    fn errors(&self, s: &Sample, outputs: &[f32]) -> Vec<f32> {
        let Extra::Mqar { query_of, queries, values } = &s.extra else { return vec![f32::NAN; s.b() * s.batch.n] };
        let (n, d) = (s.batch.n, self.n_dims);
        by_key_position(s.b(), n, *queries, query_of, |p, q| {
            let at = (p * s.t + 2 * n + q) * d;
            let pred = &outputs[at..at + d];
            let vals = &values[p * n * d..(p + 1) * n * d];
            let scores = vals.chunks(d).map(|v| dot(pred, v) - dot(v, v) / 2.0);
            choice_error(scores, query_of[p * queries + q])
        })
    }

    fn baselines(&self) -> Vec<Baseline> {
        Vec::new()
    }
}

#[derive(Debug, Clone)]
pub struct TokenMqar {
    pub vocab: usize,
    pub queries: usize,
}

impl Task for TokenMqar {
    fn kind(&self) -> &'static str {
        "token_mqar"
    }

    fn n_dims(&self) -> usize {
        self.vocab
    }

    fn layout(&self) -> Layout {
        Layout { d_in: self.vocab, d_out: self.vocab, loss: Loss::CrossEntropy }
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, _active_dims: usize) -> Sample {
        let (v, nq) = (self.vocab, self.queries);
        let half = v / 2;
        let t = 2 * n + 2 * nq - 1;
        let mut tokens = vec![0.0f32; b * t * v];
        let mut classes = vec![0i64; b * t];
        let mut weights = vec![0.0f32; b * t];
        let (mut key_ids, mut value_ids) = (Vec::with_capacity(b * n), Vec::with_capacity(b * n));
        let mut query_of = Vec::with_capacity(b * nq);
        let w = 1.0 / (b * nq) as f32;
        let mut put = |p: usize, pos: usize, id: usize| tokens[(p * t + pos) * v + id] = 1.0;
        for p in 0..b {
            let keys = sample(rng, half, n).into_vec();
            let vals: Vec<usize> = (0..n).map(|_| half + rng.random_range(0..v - half)).collect();
            for i in 0..n {
                put(p, 2 * i, keys[i]);
                put(p, 2 * i + 1, vals[i]);
            }
            for (q, pair) in sample(rng, n, nq).into_iter().enumerate() {
                let at = 2 * n + 2 * q;
                put(p, at, keys[pair]);
                if at + 1 < t {
                    put(p, at + 1, vals[pair]);
                }
                classes[p * t + at] = vals[pair] as i64;
                weights[p * t + at] = w;
                query_of.push(pair);
            }
            key_ids.extend(keys.iter().map(|&k| k as f32));
            value_ids.extend(vals.iter().map(|&x| x as f32));
        }
        let batch = Batch { b, n, d: 1, xs: key_ids, ys: value_ids, clean: None };
        Sample {
            t,
            tokens,
            target: Target::Classes { classes, weights },
            batch,
            extra: Extra::Mqar { query_of, queries: nq, values: Vec::new() },
            interleaved: false,
        }
    }

    fn metric(&self) -> Metric {
        rate_metric()
    }

    /// Argmax over the vocabulary at each query token.
    fn errors(&self, s: &Sample, outputs: &[f32]) -> Vec<f32> {
        let Extra::Mqar { query_of, queries, .. } = &s.extra else { return vec![f32::NAN; s.b() * s.batch.n] };
        let (n, v) = (s.batch.n, self.vocab);
        by_key_position(s.b(), n, *queries, query_of, |p, q| {
            let at = (p * s.t + 2 * n + 2 * q) * v;
            let gold = s.batch.y(p, query_of[p * queries + q]) as usize;
            choice_error(outputs[at..at + v].iter().copied(), gold)
        })
    }

    fn baselines(&self) -> Vec<Baseline> {
        Vec::new()
    }
}

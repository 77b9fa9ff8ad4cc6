use rand::seq::index::sample;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::per_prompt;
use crate::tasks::Batch;

/// The "2-layer NN, GD" learner of paper-spec §1.5 and how much of an evaluation it covers.
#[derive(Debug, Clone)]
pub struct Gd2nnConfig {
    pub hidden: usize,
    pub steps: usize,
    pub lr: f32,
    pub max_batch: usize,
    /// Only the first this many prompts are predicted (a fresh network is trained for every
    /// prompt and position: ~10⁷ multiply-adds each, too slow for all 1,280 × 101 on a laptop).
    pub max_prompts: usize,
    /// Positions predicted: about this many, evenly spaced, always including the last.
    pub positions: usize,
}

impl Default for Gd2nnConfig {
    fn default() -> Self {
        Gd2nnConfig { hidden: 100, steps: 100, lr: 5e-3, max_batch: 100, max_prompts: 32, positions: 11 }
    }
}

/// Trains a fresh ReLU MLP d → h → 1 (PyTorch's default init) with Adam on the previous clean
/// examples (minibatches of min(max_batch, i) drawn without replacement), predicts x_i. NaN at
/// the prompts and positions it skips.
pub fn gd_2nn_predict(batch: &Batch, cfg: &Gd2nnConfig) -> Vec<f32> {
    let n = batch.n;
    let stride = (n / cfg.positions.max(1)).max(1);
    per_prompt(batch, |p| {
        let mut out = vec![f32::NAN; n];
        if p >= cfg.max_prompts {
            return out;
        }
        out[0] = 0.0;
        let last = n - 1;
        for i in (stride..last).step_by(stride).chain((last > 0).then_some(last)) {
            let ctx: Vec<usize> = batch.context(p, i).collect();
            let mut rng = ChaCha8Rng::seed_from_u64((p as u64) << 32 | i as u64);
            out[i] = if ctx.is_empty() { 0.0 } else { train_and_predict(batch, p, &ctx, i, cfg, &mut rng) };
        }
        out
    })
}

struct Mlp {
    w1: Vec<f32>, // (h, d)
    b1: Vec<f32>,
    w2: Vec<f32>, // (h)
    b2: f32,
}

fn train_and_predict(batch: &Batch, p: usize, ctx: &[usize], i: usize, cfg: &Gd2nnConfig, rng: &mut ChaCha8Rng) -> f32 {
    let (d, h) = (batch.d, cfg.hidden);
    // nn.Linear's default: U(−1/√fan_in, 1/√fan_in) for weights and biases.
    let mut uniform = |len: usize, fan_in: usize| -> Vec<f32> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        (0..len).map(|_| rng.random_range(-bound..bound)).collect()
    };
    let mut net = Mlp { w1: uniform(h * d, d), b1: uniform(h, d), w2: uniform(h, h), b2: uniform(1, h)[0] };
    let params = h * d + h + h + 1;
    let (mut m, mut v) = (vec![0.0f32; params], vec![0.0f32; params]);
    let mut grad = vec![0.0f32; params];
    let mut hidden = vec![0.0f32; h];
    let mb = cfg.max_batch.min(ctx.len());
    let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    for step in 1..=cfg.steps {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for k in sample(rng, ctx.len(), mb) {
            let j = ctx[k];
            let (x, y) = (batch.x(p, j), batch.y(p, j));
            let out = forward(&net, x, &mut hidden);
            // d(mean squared error)/d(out).
            let g_out = 2.0 * (out - y) / mb as f32;
            let (gw1, rest) = grad.split_at_mut(h * d);
            let (gb1, rest) = rest.split_at_mut(h);
            let (gw2, gb2) = rest.split_at_mut(h);
            gb2[0] += g_out;
            for u in 0..h {
                gw2[u] += g_out * hidden[u];
                if hidden[u] > 0.0 {
                    let g_pre = g_out * net.w2[u];
                    gb1[u] += g_pre;
                    for (gw, xv) in gw1[u * d..(u + 1) * d].iter_mut().zip(x) {
                        *gw += g_pre * xv;
                    }
                }
            }
        }
        let (bc1, bc2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
        let mut k = 0;
        let mut adam = |w: &mut f32| {
            m[k] = beta1 * m[k] + (1.0 - beta1) * grad[k];
            v[k] = beta2 * v[k] + (1.0 - beta2) * grad[k] * grad[k];
            *w -= cfg.lr * (m[k] / bc1) / ((v[k] / bc2).sqrt() + eps);
            k += 1;
        };
        net.w1.iter_mut().for_each(&mut adam);
        net.b1.iter_mut().for_each(&mut adam);
        net.w2.iter_mut().for_each(&mut adam);
        adam(&mut net.b2);
    }
    forward(&net, batch.x(p, i), &mut hidden)
}

/// w2ᵀ ReLU(W1 x + b1) + b2, leaving the hidden activations in `hidden`.
fn forward(net: &Mlp, x: &[f32], hidden: &mut [f32]) -> f32 {
    let d = x.len();
    for (u, hu) in hidden.iter_mut().enumerate() {
        let pre = net.b1[u] + net.w1[u * d..(u + 1) * d].iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
        *hu = pre.max(0.0);
    }
    net.b2 + net.w2.iter().zip(hidden.iter()).map(|(w, h)| w * h).sum::<f32>()
}

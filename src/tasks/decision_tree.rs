//! Decision-tree regression (paper-spec §2.4): a full binary tree of the given depth per
//! prompt; each node splits on the sign of one coordinate (drawn from all d, even while the
//! curriculum truncates x) and each leaf holds a value ~ N(0, 1).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{baselines, normal_vec, regression_batch, Baseline, Metric, Sample, Task};

#[derive(Debug, Clone)]
pub struct DecisionTree {
    pub n_dims: usize,
    /// Splits from root to leaf (paper: 4).
    pub depth: usize,
}

/// One tree, stored as arrays over the 2^(depth+1) − 1 nodes, as in the paper's code.
#[derive(Debug, Clone)]
pub struct Tree {
    pub depth: usize,
    pub split_coord: Vec<usize>,
    pub value: Vec<f32>,
}

impl Tree {
    pub fn sample(rng: &mut ChaCha8Rng, n_dims: usize, depth: usize) -> Self {
        let nodes = (1usize << (depth + 1)) - 1;
        Tree { depth, split_coord: (0..nodes).map(|_| rng.random_range(0..n_dims)).collect(), value: normal_vec(rng, nodes) }
    }

    /// Go right when the split coordinate is positive, `depth` times; return the leaf's value.
    pub fn eval(&self, x: &[f32]) -> f32 {
        let mut node = 0;
        for _ in 0..self.depth {
            node = 2 * node + 1 + usize::from(x[self.split_coord[node]] > 0.0);
        }
        self.value[node]
    }
}

impl Task for DecisionTree {
    fn kind(&self) -> &'static str {
        "decision_tree"
    }

    fn n_dims(&self) -> usize {
        self.n_dims
    }

    fn sample(&self, rng: &mut ChaCha8Rng, b: usize, n: usize, active_dims: usize) -> Sample {
        Sample::interleaved(regression_batch(rng, (b, n, self.n_dims), active_dims, |rng| {
            let tree = Tree::sample(rng, self.n_dims, self.depth);
            move |x: &[f32]| tree.eval(x)
        }))
    }

    /// Leaf values are N(0, 1): the zero predictor already scores ~1 unnormalised.
    fn metric(&self) -> Metric {
        Metric::squared_error(1.0)
    }

    /// As the paper's code (§1.5), without XGBoost.
    fn baselines(&self) -> Vec<Baseline> {
        let mut all = baselines::linear();
        all.extend([baselines::greedy_tree(Some(4)), baselines::greedy_tree(None)]);
        all
    }
}

use super::per_prompt;
use crate::tasks::Batch;

/// Largest number of candidate subsets tracked per prompt.
pub const MAX_SUBSETS: usize = 200_000;

/// The learner that knows the task family: every k-subset S of the d coordinates is a
/// hypothesis y = Π_{j∈S} x_j; it keeps those consistent with the previous examples and predicts
/// their majority vote (0, a coin flip, on a tie or when none is left). With enough examples
/// only the true subset survives, so this is the best any learner can do.
pub fn subset_vote(batch: &Batch, k: usize) -> Vec<f32> {
    let subsets = subsets(batch.d, k);
    per_prompt(batch, |p| {
        let mut alive = vec![true; subsets.len()];
        let mut out = vec![0.0f32; batch.n];
        let parity = |s: &[usize], x: &[f32]| s.iter().map(|&j| x[j]).product::<f32>();
        for i in 0..batch.n {
            let x = batch.x(p, i);
            let vote: f32 = subsets.iter().zip(&alive).filter(|(_, a)| **a).map(|(s, _)| parity(s, x)).sum();
            out[i] = vote.signum() * f32::from(vote != 0.0);
            let y = batch.y(p, i);
            for (s, a) in subsets.iter().zip(alive.iter_mut()) {
                *a = *a && parity(s, x) == y;
            }
        }
        out
    })
}

/// Number of k-subsets of d items (saturating).
pub fn binomial(d: usize, k: usize) -> usize {
    (0..k.min(d)).fold(1usize, |acc, i| acc.saturating_mul(d - i) / (i + 1))
}

/// All k-subsets of 0..d in lexicographic order.
fn subsets(d: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(binomial(d, k).min(MAX_SUBSETS));
    let mut cur: Vec<usize> = (0..k).collect();
    if k > d {
        return out;
    }
    loop {
        out.push(cur.clone());
        // Advance the rightmost index that can still move.
        let Some(i) = (0..k).rev().find(|&i| cur[i] < d - k + i) else { return out };
        cur[i] += 1;
        for j in i + 1..k {
            cur[j] = cur[j - 1] + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_all_k_combinations() {
        let s = subsets(5, 2);
        assert_eq!(s.len(), 10);
        assert_eq!(s.first().unwrap(), &vec![0, 1]);
        assert_eq!(s.last().unwrap(), &vec![3, 4]);
        assert_eq!(binomial(10, 2), 45);
        assert_eq!(subsets(10, 3).len(), binomial(10, 3));
    }
}

//! The rule that turns a run's final ICL error into the paper's marks (solved, weaker, fails),
//! applied identically to every cell of the matrix.

use crate::store::RunRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Solved,
    Weaker,
    Fails,
    /// No final evaluation yet.
    Unknown,
}

impl Mark {
    pub fn symbol(self, ascii: bool) -> &'static str {
        match (self, ascii) {
            (Mark::Solved, false) => "✓",
            (Mark::Weaker, false) => "▲",
            (Mark::Fails, false) => "✗",
            (Mark::Solved, true) => "+",
            (Mark::Weaker, true) => "~",
            (Mark::Fails, true) => "x",
            (Mark::Unknown, _) => "?",
        }
    }
}

/// The rule in words (shown under the matrix and in the docs).
pub const RULE: &str = "mark = final normalised error e at the last prompt position vs. the baselines on the same prompts: \
✓ if e <= best baseline + 0.1 x trivial (zero predictor); ✗ if e >= 0.8 x trivial; ▲ otherwise.";

/// `error` against the best non-trivial baseline and the trivial (zero) predictor.
pub fn mark(error: f32, best_baseline: f32, trivial: f32) -> Mark {
    if !error.is_finite() {
        return Mark::Fails;
    }
    if error <= best_baseline.max(0.0) + 0.1 * trivial {
        Mark::Solved
    } else if error >= 0.8 * trivial {
        Mark::Fails
    } else {
        Mark::Weaker
    }
}

pub fn mark_for(r: &RunRecord) -> Mark {
    let Some(e) = r.final_error else { return Mark::Unknown };
    let trivial = r.final_baselines.get("zero").copied().unwrap_or(1.0);
    let best = r
        .final_baselines
        .iter()
        .filter(|(name, _)| name.as_str() != "zero")
        .map(|(_, v)| *v)
        .fold(f32::INFINITY, f32::min);
    mark(e, if best.is_finite() { best } else { 0.0 }, trivial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_separates_solved_weaker_and_failing() {
        assert_eq!(mark(0.05, 0.0, 1.0), Mark::Solved);
        assert_eq!(mark(0.35, 0.3, 1.0), Mark::Solved, "within 0.1 of the best baseline");
        assert_eq!(mark(0.5, 0.0, 1.0), Mark::Weaker);
        assert_eq!(mark(0.9, 0.0, 1.0), Mark::Fails);
        assert_eq!(mark(f32::NAN, 0.0, 1.0), Mark::Fails);
    }
}

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

    /// The mark as a word (JSON, tests).
    pub fn word(self) -> &'static str {
        match self {
            Mark::Solved => "solved",
            Mark::Weaker => "weaker",
            Mark::Fails => "fails",
            Mark::Unknown => "unknown",
        }
    }
}

/// The rule in words (shown under the matrix and in the docs).
pub const RULE: &str = "mark = final normalised error e (the task's summary: the last prompt position, the mean over keys for MQAR) vs. the baselines on the same prompts: \
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

/// A run's best non-trivial baseline (0 when it has none) and its trivial (zero) predictor
/// at the final evaluation.
pub fn references(r: &RunRecord) -> (f32, f32) {
    let trivial = r.final_baselines.get("zero").copied().unwrap_or(1.0);
    let best = r
        .final_baselines
        .iter()
        .filter(|(name, v)| name.as_str() != "zero" && v.is_finite())
        .map(|(_, v)| *v)
        .fold(f32::INFINITY, f32::min);
    (if best.is_finite() { best } else { 0.0 }, trivial)
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

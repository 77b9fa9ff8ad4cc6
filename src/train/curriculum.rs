//! The curriculum of paper-spec §1.2: active x dims and prompt length grow by `inc` every
//! `interval` steps, each on its own schedule, updated after every step.

use crate::spec::{CurriculumSpec, Schedule};

#[derive(Debug, Clone)]
pub struct Curriculum {
    dims: Schedule,
    points: Schedule,
    step: usize,
}

impl Curriculum {
    pub fn new(spec: &CurriculumSpec) -> Self {
        Curriculum { dims: spec.dims, points: spec.points, step: 0 }
    }

    /// Starts as if `step` steps were already taken (for resuming).
    pub fn at_step(spec: &CurriculumSpec, step: usize) -> Self {
        Curriculum { step, ..Self::new(spec) }
    }

    pub fn n_dims(&self) -> usize {
        self.dims.at(self.step)
    }

    pub fn n_points(&self) -> usize {
        self.points.at(self.step)
    }

    pub fn advance(&mut self) {
        self.step += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_paper_schedule() {
        // Linear regression: dims 5->20 (+1/2000), points 11->41 (+2/2000).
        let spec = CurriculumSpec {
            dims: Schedule { start: 5, end: 20, inc: 1, interval: 2000 },
            points: Schedule { start: 11, end: 41, inc: 2, interval: 2000 },
        };
        let mut c = Curriculum::new(&spec);
        assert_eq!((c.n_dims(), c.n_points()), (5, 11));
        for _ in 0..1999 {
            c.advance();
        }
        assert_eq!((c.n_dims(), c.n_points()), (5, 11));
        c.advance();
        assert_eq!((c.n_dims(), c.n_points()), (6, 13));
        let c = Curriculum::at_step(&spec, 30_000);
        assert_eq!((c.n_dims(), c.n_points()), (20, 41));
        let c = Curriculum::at_step(&spec, 1_000_000);
        assert_eq!((c.n_dims(), c.n_points()), (20, 41));
    }
}

//! Where a training step's host time goes, for performance work: `ICL_LAB_STEP_PHASES=1`
//! makes the training loop time each phase of every step on the host and print the means to
//! stderr when it ends. On a GPU the kernels run asynchronously, so a phase's time is the
//! host's work in it plus any wait for the device that it triggers (a copy that synchronises,
//! an allocation that frees memory): a phase far longer than its host work is where the host
//! waits. Off by default; read once per process.

use std::sync::OnceLock;
use std::time::Instant;

/// Steps left untimed at the start (kernels compile, memory pools fill).
pub const WARMUP_STEPS: usize = 10;

/// The phases of a step, in order.
pub const PHASES: [&str; 5] = ["draw", "upload", "forward", "backward", "optimiser"];

/// Whether `ICL_LAB_STEP_PHASES` asks for the phase times.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("ICL_LAB_STEP_PHASES").is_ok_and(|v| matches!(v.trim(), "1" | "true")))
}

/// Seconds spent in each phase over the steps timed so far; a timer that is off does nothing.
#[derive(Debug, Default)]
pub struct PhaseTimes {
    on: bool,
    total_s: [f64; PHASES.len()],
    /// Steps started, and steps timed (those after the warm-up).
    started: usize,
    steps: usize,
    mark: Option<Instant>,
}

impl PhaseTimes {
    /// A timer, on when `on` ([`enabled`] for the process's choice).
    pub fn new(on: bool) -> Self {
        Self { on, ..Self::default() }
    }

    /// Starts a step's first phase (timed once [`WARMUP_STEPS`] steps have started before it).
    pub fn start(&mut self) {
        self.started += 1;
        self.mark = (self.on && self.started > WARMUP_STEPS).then(Instant::now);
    }

    /// Ends phase `i` (an index into [`PHASES`]) and starts the next.
    pub fn lap(&mut self, i: usize) {
        let Some(mark) = self.mark else { return };
        let now = Instant::now();
        self.total_s[i] += now.duration_since(mark).as_secs_f64();
        self.mark = Some(now);
        if i + 1 == PHASES.len() {
            self.steps += 1;
        }
    }

    /// Mean milliseconds a step per phase, once a step has been timed.
    pub fn means_ms(&self) -> Option<[f64; PHASES.len()]> {
        (self.steps > 0).then(|| self.total_s.map(|s| s * 1e3 / self.steps as f64))
    }

    /// One line: `step phases over N steps, ms: draw 0.41, upload ...`.
    pub fn report(&self, label: &str) -> Option<String> {
        let means = self.means_ms()?;
        let parts: Vec<String> = PHASES.iter().zip(means).map(|(p, ms)| format!("{p} {ms:.2}")).collect();
        Some(format!("{label}: step phases over {} steps, ms: {} (sum {:.2})", self.steps, parts.join(", "), means.iter().sum::<f64>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_per_phase_and_a_step_ends_with_the_last() {
        let mut off = PhaseTimes::new(false);
        off.start();
        off.lap(0);
        assert_eq!(off.means_ms(), None);
        let mut t = PhaseTimes::new(true);
        assert_eq!(t.means_ms(), None);
        for step in 0..WARMUP_STEPS + 2 {
            t.start();
            // Warm-up steps are long and not counted.
            std::thread::sleep(std::time::Duration::from_millis(if step < WARMUP_STEPS { 20 } else { 2 }));
            for i in 0..PHASES.len() {
                t.lap(i);
            }
        }
        let means = t.means_ms().unwrap();
        assert!(means[0] >= 2.0 && means[0] < 20.0, "{means:?}");
        assert!(means[1..].iter().all(|&ms| ms < means[0]), "{means:?}");
        let line = t.report("run").unwrap();
        assert!(line.starts_with("run: step phases over 2 steps, ms: draw "), "{line}");
    }
}

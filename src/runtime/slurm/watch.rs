//! Following the Slurm arrays a store remembers, for the notebook's Queue view: a background
//! thread surveys every remembered job directory (squeue, sacct, exit-status files) at most
//! every `every`, and only while the view asks for it, and sends a summary per array. It also
//! collects (imports) an array's bundles on request, so the UI thread never waits on Slurm or
//! on a bundle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};

use super::{Collected, Survey, SlurmError, Verdict};
use crate::store::RunStore;

/// How often the Queue view's arrays are surveyed at most.
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// One array job as the Queue view shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArrayView {
    pub dir: PathBuf,
    pub name: String,
    /// Job ids of its submissions, oldest first.
    pub job_ids: Vec<String>,
    pub tasks: usize,
    pub not_submitted: usize,
    pub pending: usize,
    pub running: usize,
    pub done: usize,
    pub failed: usize,
    /// Bundles back, of `runs`.
    pub bundles: usize,
    pub runs: usize,
    pub failed_tasks: Vec<FailedTask>,
    /// The manifest could not be read, or Slurm did not answer (states then come from the
    /// exit-status files).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailedTask {
    pub index: usize,
    pub runs: Vec<String>,
    /// Slurm's state or the exit status, and missing bundles.
    pub state: String,
    pub log: Option<PathBuf>,
}

impl ArrayView {
    /// The summary of a survey of `dir` (or why there is none).
    pub fn new(dir: &Path, survey: Result<Survey, SlurmError>) -> ArrayView {
        let s = match survey {
            Ok(s) => s,
            Err(e) => return ArrayView { dir: dir.to_path_buf(), error: Some(e.to_string()), ..ArrayView::default() },
        };
        let m = &s.manifest;
        let count = |v: Verdict| s.tasks.iter().filter(|t| t.verdict == v).count();
        let pending = s.tasks.iter().filter(|t| t.is_pending()).count();
        ArrayView {
            dir: dir.to_path_buf(),
            name: m.job_name.clone(),
            job_ids: m.submissions.iter().map(|s| s.job_id.clone()).collect(),
            tasks: s.tasks.len(),
            not_submitted: count(Verdict::NotSubmitted),
            pending,
            running: count(Verdict::Active) - pending,
            done: count(Verdict::Done),
            failed: count(Verdict::Failed),
            bundles: s.tasks.iter().map(|t| t.bundles).sum(),
            runs: m.runs.len(),
            failed_tasks: s
                .tasks
                .iter()
                .filter(|t| t.verdict == Verdict::Failed)
                .map(|t| FailedTask { index: t.index, runs: t.runs.clone(), state: t.state.clone(), log: t.log.clone() })
                .collect(),
            error: s.slurm_error.map(|e| format!("{e} (states from the exit-status files)")),
        }
    }
}

/// What the watcher thread reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SlurmUpdate {
    /// Every remembered array, oldest first.
    Arrays(Vec<ArrayView>),
    /// An array's bundles were imported (or why not).
    Collected { dir: PathBuf, result: Result<Collected, String> },
}

enum Request {
    Poll,
    Collect(PathBuf),
}

/// The handle of the watcher thread; dropping it stops the thread.
pub struct Watcher {
    pub updates: Receiver<SlurmUpdate>,
    wanted: Arc<AtomicBool>,
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Surveys the arrays remembered in the store at `root`; `store`, when given, is where
    /// `collect` imports (None: a read-only notebook).
    pub fn spawn(root: PathBuf, store: Option<Arc<dyn RunStore>>, every: Duration) -> Watcher {
        let (tx, updates) = unbounded();
        let (requests, rx) = unbounded();
        let wanted = Arc::new(AtomicBool::new(false));
        let w = wanted.clone();
        let thread = std::thread::Builder::new()
            .name("slurm-watch".into())
            .spawn(move || watch(&root, store.as_deref(), every, &w, &rx, &tx))
            .expect("spawn the Slurm watcher");
        Watcher { updates, wanted, requests: Some(requests), thread: Some(thread) }
    }

    /// Surveys run only while someone looks (the Queue view is open).
    pub fn want(&self, on: bool) {
        if on && !self.wanted.swap(true, Ordering::SeqCst) {
            self.poll_now();
        }
        if !on {
            self.wanted.store(false, Ordering::SeqCst);
        }
    }

    pub fn poll_now(&self) {
        if let Some(r) = &self.requests {
            let _ = r.send(Request::Poll);
        }
    }

    /// Imports the bundles that came back for the array in `dir`; the outcome arrives as
    /// `SlurmUpdate::Collected`, then fresh `Arrays`.
    pub fn collect(&self, dir: PathBuf) {
        if let Some(r) = &self.requests {
            let _ = r.send(Request::Collect(dir));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.requests.take()); // wakes the thread, which then ends
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(
    root: &Path,
    store: Option<&dyn RunStore>,
    every: Duration,
    wanted: &AtomicBool,
    requests: &Receiver<Request>,
    tx: &Sender<SlurmUpdate>,
) {
    let mut last: Option<Instant> = None;
    loop {
        let due = wanted.load(Ordering::SeqCst) && last.is_none_or(|t| t.elapsed() >= every);
        let request = if due {
            Some(Request::Poll)
        } else {
            match requests.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let sent = match request {
            None => true,
            Some(Request::Poll) => {
                last = Some(Instant::now());
                tx.send(SlurmUpdate::Arrays(survey_all(root))).is_ok()
            }
            Some(Request::Collect(dir)) => {
                let result = match store {
                    None => Err("read-only store: collecting is off".to_string()),
                    Some(store) => super::Manifest::load(&dir)
                        .map_err(|e| e.to_string())
                        .and_then(|m| super::collect(store, &m).map_err(|e| format!("{e}; nothing was imported"))),
                };
                last = Some(Instant::now());
                tx.send(SlurmUpdate::Collected { dir, result }).is_ok()
                    && tx.send(SlurmUpdate::Arrays(survey_all(root))).is_ok()
            }
        };
        if !sent {
            return; // nobody listens any more
        }
    }
}

/// Every array the store at `root` remembers, surveyed now.
pub fn survey_all(root: &Path) -> Vec<ArrayView> {
    super::remembered(root).iter().map(|dir| ArrayView::new(dir, super::survey(dir))).collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::manifest;
    use super::super::{task_states, Survey};
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_array_view_counts_tasks_by_state_and_lists_the_failed_ones() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["bundles", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let m = manifest(dir.path(), 5);
        std::fs::write(dir.path().join("bundles/r0.bundle"), "").unwrap();
        std::fs::write(dir.path().join("state/7_0.exit"), "0\n").unwrap();
        std::fs::write(dir.path().join("bundles/r4.bundle"), "").unwrap();
        let slurm: BTreeMap<String, String> = [("7_1", "PENDING"), ("7_2", "RUNNING"), ("7_3", "OUT_OF_MEMORY"), ("7_4", "TIMEOUT")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let tasks = task_states(&m, &slurm);
        let v = ArrayView::new(dir.path(), Ok(Survey { manifest: m, tasks, slurm_error: None }));
        assert_eq!((v.tasks, v.pending, v.running, v.done, v.failed, v.not_submitted), (5, 1, 1, 1, 2, 0));
        assert_eq!((v.bundles, v.runs), (2, 5));
        assert_eq!(v.job_ids, ["7"]);
        let failed: Vec<(usize, &str)> = v.failed_tasks.iter().map(|t| (t.index, t.state.as_str())).collect();
        assert_eq!(failed, [(3, "OUT_OF_MEMORY, 1 of 1 bundles missing"), (4, "TIMEOUT")]);
        assert_eq!(v.failed_tasks[0].log.as_deref(), Some(dir.path().join("logs/7_3.out").as_path()));
        assert_eq!(v.error, None);
    }

    #[test]
    fn a_directory_without_manifest_is_an_array_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let v = ArrayView::new(dir.path(), super::super::survey(dir.path()));
        assert_eq!(v.tasks, 0);
        let e = v.error.unwrap();
        assert!(e.contains("manifest.json") && e.contains("written by `icl-lab sweep --slurm`"), "{e}");
    }

    #[test]
    fn the_watcher_surveys_only_when_wanted_and_stops_when_dropped() {
        let root = tempfile::tempdir().unwrap();
        let job = tempfile::tempdir().unwrap();
        super::super::remember(root.path(), job.path()).unwrap();
        let w = Watcher::spawn(root.path().to_path_buf(), None, Duration::from_millis(50));
        assert!(w.updates.recv_timeout(Duration::from_millis(400)).is_err(), "nothing while nobody looks");
        w.want(true);
        match w.updates.recv_timeout(Duration::from_secs(5)).unwrap() {
            SlurmUpdate::Arrays(a) => assert_eq!(a.len(), 1),
            other => panic!("{other:?}"),
        }
        w.collect(job.path().to_path_buf());
        let collected = w.updates.iter().find(|u| matches!(u, SlurmUpdate::Collected { .. })).unwrap();
        assert!(matches!(collected, SlurmUpdate::Collected { result: Err(ref e), .. } if e.contains("read-only")), "{collected:?}");
        drop(w); // joins the thread: the test would hang if it did not end
    }
}

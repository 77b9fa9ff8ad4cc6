//! The notebook's engine room: a store, its writer thread and a worker pool, wired together.
//! The TUI talks to it through the `Notebook` trait (so views can be tested on a bare store).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::child::Isolation;
use super::{Device, Job, Pool, PoolEvent, PoolSnapshot, StopReason};
use crate::spec::ExperimentSpec;
use crate::store::{self, NewRun, RunId, RunRecord, RunStore, SledStore, StoreError, Writer};
use crate::train::{EvalCurve, StepMetrics};
use crossbeam_channel::Receiver;

/// What the notebook's views need from the world.
pub trait Notebook {
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError>;
    fn metrics_after(&self, id: RunId, after: usize) -> Result<Vec<StepMetrics>, StoreError>;
    fn evals(&self, id: RunId) -> Result<Vec<EvalCurve>, StoreError>;
    /// Queues one run per spec; returns their ids.
    fn launch(&self, specs: Vec<ExperimentSpec>) -> Result<Vec<RunId>, String>;
    /// Stops a queued or running run of this process.
    fn stop(&self, id: RunId, reason: StopReason) -> bool;
    fn set_tags(&self, id: RunId, tags: BTreeSet<String>) -> Result<(), StoreError>;
    fn set_note(&self, id: RunId, note: String) -> Result<(), StoreError>;
    fn snapshot(&self) -> PoolSnapshot;
    fn read_only(&self) -> bool;
    /// Where the store lives (shown in the title bar).
    fn location(&self) -> String;
    /// Changes whenever the store may have changed (views re-read only then).
    fn generation(&self) -> u64;
}

/// Following a store another process holds: a snapshot copy, refreshed now and then.
struct Follow {
    source: PathBuf,
    copy: PathBuf,
    holder: String,
    last: Instant,
    /// Time between copies: at least 2 s, and 20x what a copy takes (big stores copy rarely).
    every: Duration,
    generation: u64,
}

pub struct Lab {
    store: Mutex<Arc<SledStore>>,
    follow: Mutex<Option<Follow>>,
    // Field order is drop order: the pool stops (and reports) before the writer flushes.
    pool: Option<Pool>,
    writer: Option<Writer>,
    read_only: bool,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Lab {
    /// A lab that can train on `slots`, each run in a child process of its own where the
    /// command line registered one (`child::Isolation::EverySlot`): a run that aborts must not
    /// end the notebook.
    pub fn open(store: SledStore, slots: Vec<(Device, usize)>) -> Lab {
        let store = Arc::new(store);
        let writer = Writer::spawn(store.clone() as Arc<dyn RunStore>, None);
        let pool = Pool::isolated(slots, Some(writer.sender()), Some(store.path()), Isolation::EverySlot);
        let generation = writer.generation();
        Lab {
            store: Mutex::new(store),
            follow: Mutex::new(None),
            pool: Some(pool),
            writer: Some(writer),
            read_only: false,
            generation,
        }
    }

    /// Lets each slot train up to `n` runs that differ only in seed as one stacked model
    /// (`Pool::set_members`).
    pub fn set_members(&self, n: usize) {
        if let Some(pool) = &self.pool {
            pool.set_members(n);
        }
    }

    /// A lab that only browses: no pool, no edits.
    pub fn read_only(store: SledStore) -> Lab {
        Lab {
            store: Mutex::new(Arc::new(store)),
            follow: Mutex::new(None),
            pool: None,
            writer: None,
            read_only: true,
            generation: Default::default(),
        }
    }

    /// Browses a store that another process (pid `holder`) holds and writes: a snapshot copy,
    /// refreshed by `follow_tick`, so that process's runs show up live (seconds behind).
    pub fn follow(source: &Path, holder: String) -> Result<Lab, StoreError> {
        let copy = std::env::temp_dir().join(format!("icl-lab-follow-{}", std::process::id()));
        let started = Instant::now();
        let store = snapshot(source, &copy, 0)?;
        let every = (started.elapsed() * 20).max(Duration::from_secs(2));
        let lab = Lab::read_only(store);
        *lab.follow.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Follow { source: source.to_path_buf(), copy, holder, last: Instant::now(), every, generation: 0 });
        Ok(lab)
    }

    /// In follow mode: the pid being followed.
    pub fn following(&self) -> Option<String> {
        self.follow.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|f| f.holder.clone())
    }

    /// In follow mode, re-copies the followed store when due. A copy that cannot be opened
    /// (caught mid-write) is skipped; the previous one stays.
    pub fn follow_tick(&self) {
        let mut guard = self.follow.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = guard.as_mut() else { return };
        if f.last.elapsed() < f.every {
            return;
        }
        f.last = Instant::now();
        let next = f.generation + 1;
        if let Ok(store) = snapshot(&f.source, &f.copy, next) {
            let old = std::mem::replace(&mut *self.store.lock().unwrap_or_else(|p| p.into_inner()), Arc::new(store));
            drop(old); // closes the previous copy (readers hold it only within one call)
            let _ = std::fs::remove_dir_all(f.copy.join(f.generation.to_string()));
            f.generation = next;
            self.generation.store(next, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn store(&self) -> Arc<SledStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn events(&self) -> Option<Receiver<PoolEvent>> {
        self.pool.as_ref().map(Pool::subscribe)
    }

    /// Runs queued or running in this process.
    pub fn alive(&self) -> usize {
        self.pool.as_ref().map_or(0, Pool::alive)
    }

    pub fn stop_all(&self, reason: StopReason) {
        if let Some(p) = &self.pool {
            p.stop_all(reason);
        }
    }

    /// Records one queued run per spec, tagged `tags`, and queues them on the pool; returns
    /// their ids. `git_dir`: where to look up the commit the runs were made from.
    pub fn launch_tagged(&self, specs: Vec<ExperimentSpec>, tags: &BTreeSet<String>, git_dir: &Path) -> Result<Vec<RunId>, String> {
        let pool = self.pool.as_ref().ok_or("read-only: launching is off")?;
        for spec in &specs {
            spec.validate().map_err(|e| e.to_string())?;
        }
        if let Some(spec) = specs.iter().find(|s| !Pool::serves(pool.slots(), s.device)) {
            return Err(format!("{} asks for device {}, but this notebook trains on {}", spec.name, spec.device, Pool::describe(pool.slots())));
        }
        let git_commit = store::git_commit(git_dir);
        let mut jobs = Vec::new();
        for spec in specs {
            let rec = self
                .store()
                .create_run(NewRun { spec: spec.clone(), git_commit: git_commit.clone(), tags: tags.clone() })
                .map_err(|e| e.to_string())?;
            jobs.push(Job { run: rec.id, uid: rec.uid, spec, resume: None, train_s: 0.0 });
        }
        let ids = jobs.iter().map(|j| j.run).collect();
        // All at once: a slot that trains several seeds as one model finds them all queued.
        pool.submit_all(jobs).map_err(|e| e.to_string())?;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(ids)
    }

    /// The store to import into (bundles collected from a Slurm array); None when this lab
    /// only browses.
    pub fn writable_store(&self) -> Option<Arc<dyn RunStore>> {
        (!self.read_only).then(|| self.store() as Arc<dyn RunStore>)
    }

    /// Something outside the writer (an import) changed the store: views read it again.
    pub fn store_changed(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Blocks until every run of this process has finished.
    pub fn wait_idle(&self) {
        if let Some(p) = &self.pool {
            p.wait_idle();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(self.pool.take());
        drop(self.writer.take());
        if let Some(f) = self.follow.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = std::fs::remove_dir_all(&f.copy);
        }
    }
}

/// Copies the database of the store at `source` (not its lock or checkpoints) into
/// `dir/<generation>` and opens it without recovery, so live runs show as running.
fn snapshot(source: &Path, dir: &Path, generation: u64) -> Result<SledStore, StoreError> {
    let to = dir.join(generation.to_string());
    let _ = std::fs::remove_dir_all(&to);
    copy_dir(source, &to, &["lock", "checkpoints", "autotune"])?;
    let store = SledStore::open_snapshot(&to);
    if store.is_err() {
        let _ = std::fs::remove_dir_all(&to);
    }
    store
}

fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(&name), &[])?;
        } else {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

impl Notebook for Lab {
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.store().list()
    }
    fn metrics_after(&self, id: RunId, after: usize) -> Result<Vec<StepMetrics>, StoreError> {
        self.store().metrics_after(id, after)
    }
    fn evals(&self, id: RunId) -> Result<Vec<EvalCurve>, StoreError> {
        self.store().evals(id)
    }
    fn launch(&self, specs: Vec<ExperimentSpec>) -> Result<Vec<RunId>, String> {
        self.launch_tagged(specs, &BTreeSet::new(), Path::new("."))
    }
    fn stop(&self, id: RunId, reason: StopReason) -> bool {
        self.pool.as_ref().is_some_and(|p| p.stop(id, reason))
    }
    fn set_tags(&self, id: RunId, tags: BTreeSet<String>) -> Result<(), StoreError> {
        self.store().update(id, &mut |r| r.tags = tags.clone())?;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store().flush()
    }
    fn set_note(&self, id: RunId, note: String) -> Result<(), StoreError> {
        self.store().update(id, &mut |r| r.note = note.clone())?;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store().flush()
    }
    fn snapshot(&self) -> PoolSnapshot {
        self.pool.as_ref().map(Pool::snapshot).unwrap_or_default()
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn location(&self) -> String {
        match self.following() {
            Some(pid) => format!("following pid {pid}: {}", self.store().path().display()),
            None => self.store().path().display().to_string(),
        }
    }
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

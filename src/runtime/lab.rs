//! The notebook's engine room: a store, its writer thread and a worker pool, wired together.
//! The TUI talks to it through the `Notebook` trait (so views can be tested on a bare store).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{device, Device, Job, Pool, PoolEvent, PoolSnapshot, StopReason};
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

/// Slots per device when not configured: several per GPU (paper-sized models use a sliver of
/// an H200), one on the CPU (burn-ndarray already uses every core).
pub const DEFAULT_GPU_SLOTS: usize = 4;

/// Every CUDA device found with `gpu_slots` each, else the CPU with one slot.
pub fn default_slots(gpu_slots: usize) -> Vec<(Device, usize)> {
    match device::cuda_device_count() {
        Ok(n) if n > 0 => (0..n).map(|i| (Device::Cuda(i), gpu_slots)).collect(),
        _ => vec![(Device::Cpu, 1)],
    }
}

pub struct Lab {
    pub store: Arc<SledStore>,
    // Field order is drop order: the pool stops (and reports) before the writer flushes.
    pool: Option<Pool>,
    writer: Option<Writer>,
    read_only: bool,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Lab {
    /// A lab that can train on `slots`.
    pub fn open(store: SledStore, slots: Vec<(Device, usize)>) -> Lab {
        let store = Arc::new(store);
        let writer = Writer::spawn(store.clone() as Arc<dyn RunStore>, None);
        let pool = Pool::new(slots, Some(writer.sender()), Some(store.path()));
        let generation = writer.generation();
        Lab { store, pool: Some(pool), writer: Some(writer), read_only: false, generation }
    }

    /// A lab that only browses: no pool, no edits.
    pub fn read_only(store: SledStore) -> Lab {
        Lab { store: Arc::new(store), pool: None, writer: None, read_only: true, generation: Default::default() }
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
    }
}

impl Notebook for Lab {
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.store.list()
    }
    fn metrics_after(&self, id: RunId, after: usize) -> Result<Vec<StepMetrics>, StoreError> {
        self.store.metrics_after(id, after)
    }
    fn evals(&self, id: RunId) -> Result<Vec<EvalCurve>, StoreError> {
        self.store.evals(id)
    }
    fn launch(&self, specs: Vec<ExperimentSpec>) -> Result<Vec<RunId>, String> {
        let pool = self.pool.as_ref().ok_or("read-only: launching is off")?;
        let mut ids = Vec::new();
        for spec in specs {
            spec.validate().map_err(|e| e.to_string())?;
            let rec = self
                .store
                .create_run(NewRun { spec: spec.clone(), git_commit: store::git_commit(std::path::Path::new(".")), tags: Default::default() })
                .map_err(|e| e.to_string())?;
            let job = Job { run: rec.id, uid: rec.uid, spec, resume: None, train_s: 0.0 };
            if let Err(e) = pool.submit(job) {
                let _ = self.store.update(rec.id, &mut |r| r.status = store::Status::Failed { reason: e.to_string() });
                return Err(e.to_string());
            }
            ids.push(rec.id);
        }
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(ids)
    }
    fn stop(&self, id: RunId, reason: StopReason) -> bool {
        self.pool.as_ref().is_some_and(|p| p.stop(id, reason))
    }
    fn set_tags(&self, id: RunId, tags: BTreeSet<String>) -> Result<(), StoreError> {
        self.store.update(id, &mut |r| r.tags = tags.clone())?;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.flush()
    }
    fn set_note(&self, id: RunId, note: String) -> Result<(), StoreError> {
        self.store.update(id, &mut |r| r.note = note.clone())?;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.flush()
    }
    fn snapshot(&self) -> PoolSnapshot {
        self.pool.as_ref().map(Pool::snapshot).unwrap_or_default()
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn location(&self) -> String {
        self.store.path().display().to_string()
    }
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

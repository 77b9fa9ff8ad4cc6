//! The single writer thread: training sends what happened, the writer batches metric points
//! and makes them durable at commit points (every evaluation, checkpoint and status change,
//! and at least once a second). Sending never blocks training.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};

use super::{Checkpoint, RunId, RunRecord, RunStore, Status};
use crate::train::{EvalCurve, StepMetrics};

/// How long metric points may wait in memory before a flush.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Commit early when this many points are waiting.
const MAX_PENDING: usize = 4096;

/// A change to the store, sent by a worker.
pub enum WriteOp {
    Metrics(RunId, StepMetrics),
    Eval(RunId, EvalCurve),
    /// Any edit of the record (e.g. the start of a run: device, parameter count, status).
    Update(RunId, Box<dyn FnOnce(&mut RunRecord) + Send>),
    /// The run continues from `step`: forget what was recorded after it.
    Rewind(RunId, usize),
    /// A checkpoint was written; older ones of the run are removed once it is recorded.
    Checkpoint(RunId, Checkpoint),
    /// The run ended with this status after `train_s` more seconds of training.
    Finish { run: RunId, status: Status, train_s: f64 },
    /// Reply once everything sent before is durable.
    Flush(Sender<()>),
    /// Flush and end the writer thread (other senders may still exist: their later ops are
    /// dropped).
    Close,
}

/// Called after each flush with the run and the last step now durable.
pub type FlushAck = Box<dyn Fn(RunId, usize) + Send>;

pub struct Writer {
    tx: Sender<WriteOp>,
    handle: Option<JoinHandle<()>>,
    errors: Arc<Mutex<Vec<String>>>,
    generation: Arc<AtomicU64>,
}

impl Writer {
    pub fn spawn(store: Arc<dyn RunStore>, ack: Option<FlushAck>) -> Writer {
        let (tx, rx) = unbounded();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let errs = errors.clone();
        let generation = Arc::new(AtomicU64::new(0));
        let gen = generation.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || WriterLoop { store, ack, pending: BTreeMap::new(), n_pending: 0, errors: errs, generation: gen }.run(rx))
            .expect("spawn the store writer");
        Writer { tx, handle: Some(handle), errors, generation }
    }

    pub fn sender(&self) -> Sender<WriteOp> {
        self.tx.clone()
    }

    /// Blocks until everything sent so far is durable.
    pub fn flush(&self) {
        let (tx, rx) = unbounded();
        if self.tx.send(WriteOp::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Counts commits: views re-read the store only when it moved.
    pub fn generation(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    /// Write errors so far (the writer keeps going after one).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Drop for Writer {
    /// Drains what was sent and flushes before returning.
    fn drop(&mut self) {
        let _ = self.tx.send(WriteOp::Close);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct WriterLoop {
    store: Arc<dyn RunStore>,
    ack: Option<FlushAck>,
    pending: BTreeMap<RunId, Vec<StepMetrics>>,
    n_pending: usize,
    errors: Arc<Mutex<Vec<String>>>,
    generation: Arc<AtomicU64>,
}

impl WriterLoop {
    fn run(mut self, rx: Receiver<WriteOp>) {
        let mut last_flush = Instant::now();
        loop {
            let timeout = FLUSH_EVERY.saturating_sub(last_flush.elapsed());
            match rx.recv_timeout(timeout) {
                Ok(WriteOp::Metrics(run, m)) => {
                    self.pending.entry(run).or_default().push(m);
                    self.n_pending += 1;
                    if self.n_pending >= MAX_PENDING {
                        self.commit();
                        last_flush = Instant::now();
                    }
                }
                Ok(WriteOp::Close) => {
                    self.commit();
                    return;
                }
                Ok(op) => {
                    self.apply(op);
                    last_flush = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.n_pending > 0 {
                        self.commit();
                    }
                    last_flush = Instant::now();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit();
                    return;
                }
            }
        }
    }

    fn report<T>(&self, what: &str, r: super::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = format!("store: {what}: {e}");
                eprintln!("{msg}");
                if let Ok(mut errs) = self.errors.lock() {
                    errs.push(msg);
                }
                None
            }
        }
    }

    /// Writes the pending points, the runs' progress, and flushes; then acknowledges.
    fn commit(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.n_pending = 0;
        let mut acks = Vec::new();
        for (run, points) in pending {
            if points.is_empty() {
                continue;
            }
            if self.report("metrics", self.store.append_metrics(run, &points)).is_none() {
                continue;
            }
            let last = points.iter().max_by_key(|p| p.step).cloned().expect("non-empty");
            let step = last.step;
            self.report(
                "progress",
                self.store.update(run, &mut |r| {
                    if last.step >= r.step {
                        r.step = last.step;
                        r.last = Some(last.clone());
                    }
                }),
            );
            acks.push((run, step));
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.report("flush", self.store.flush()).is_some() {
            if let Some(ack) = &self.ack {
                for (run, step) in acks {
                    ack(run, step);
                }
            }
        }
    }

    fn apply(&mut self, op: WriteOp) {
        // Each op ends with a commit: the points before it become durable with it.
        match op {
            WriteOp::Metrics(..) | WriteOp::Close => unreachable!("handled in run()"),
            WriteOp::Eval(run, curve) => {
                self.report("curve", self.store.put_eval(run, &curve));
                let model_last = curve.final_error();
                let baselines = curve.baseline_summaries();
                self.report(
                    "final error",
                    self.store.update(run, &mut |r| {
                        if curve.n_points == r.spec.train.curriculum.points.end {
                            r.final_error = model_last;
                            r.final_baselines = baselines.clone();
                        }
                    }),
                );
            }
            WriteOp::Rewind(run, step) => {
                self.pending.remove(&run);
                self.report("rewind", self.store.rewind(run, step));
            }
            WriteOp::Update(run, edit) => {
                let mut edit = Some(edit);
                self.report(
                    "update",
                    self.store.update(run, &mut |r| {
                        if let Some(f) = edit.take() {
                            f(r)
                        }
                    }),
                );
            }
            WriteOp::Checkpoint(run, ckpt) => {
                let mut old = None;
                self.report(
                    "checkpoint",
                    self.store.update(run, &mut |r| {
                        old = r.checkpoint.replace(ckpt.clone());
                    }),
                );
                self.commit();
                // Only once the new checkpoint is durable may the old one go.
                if let Some(old) = old.filter(|o| o.dir != ckpt.dir) {
                    let _ = std::fs::remove_dir_all(self.store.checkpoint_path(&old));
                }
                return;
            }
            WriteOp::Finish { run, status, train_s } => {
                // Points first, so the final record is not overtaken by an older step.
                self.commit();
                self.report(
                    "finish",
                    self.store.update(run, &mut |r| {
                        r.status = status.clone();
                        r.finished = Some(Utc::now());
                        r.pid = None;
                        r.train_s += train_s;
                    }),
                );
            }
            WriteOp::Flush(reply) => {
                self.commit();
                let _ = reply.send(());
                return;
            }
        }
        self.commit();
    }
}

//! The worker pool: a queue of runs and worker threads, in slot groups of N slots per device.
//! Workers report to the store's writer thread and to any subscribers (progress bars, the
//! TUI); the pool, not a view, owns the runs.
//!
//! Spreading: a run the spec pins (`cuda:1`) waits for a slot of that device; an `auto` run
//! goes to the least busy group with a free slot, so queued runs fill every GPU evenly. A
//! device may have several groups (`--devices cuda:0,cuda:0`), each scheduled on its own.
//!
//! A slot trains in a thread of this process, or (CUDA slots of a pool with several, by
//! default) in a child process of its own: runs in threads of one process share its
//! per-device host threads in CubeCL and barely add up (`child`).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossbeam_channel::{unbounded, Receiver, Sender};

use super::child::{self, Isolation, WorkerCommand};
use super::{train_members_on, Device};
use crate::spec::{DeviceSpec, ExperimentSpec};
use crate::store::{Checkpoint, RunId, Status, WriteOp};
use crate::train::{same_but_seed, Outcome, RunSummary, SavedCheckpoint, TrainControl, TrainEvent};

/// Progress events are forwarded to subscribers at most this often per run.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The environment variable that sets how many runs a slot may train as the members of one
/// stacked model (`Pool::set_members`); unset: 1.
pub const MEMBERS_ENV: &str = "ICL_LAB_MEMBERS";

/// The members per slot that `ICL_LAB_MEMBERS` asks for (1 to 64); 1 when unset, and when
/// set to anything else (with a note on stderr).
fn members_from_env() -> usize {
    match std::env::var(MEMBERS_ENV) {
        Err(_) => 1,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => {
                eprintln!("{MEMBERS_ENV}={v}: not a number from 1 to 64; training one run per slot");
                1
            }
        },
    }
}

/// One run to execute.
#[derive(Debug, Clone)]
pub struct Job {
    pub run: RunId,
    pub uid: String,
    pub spec: ExperimentSpec,
    /// Continue from this checkpoint (resume).
    pub resume: Option<Checkpoint>,
    /// Seconds trained before (resume).
    pub train_s: f64,
}

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Ends `interrupted`: meant to be resumed (Ctrl-C, quitting the TUI with "stop").
    Interrupt,
    /// Ends `cancelled`: the user does not want it.
    Cancel,
}

#[derive(Debug, Clone)]
pub enum PoolEvent {
    Started { run: RunId, device: Device },
    Train { run: RunId, event: TrainEvent },
    Finished { run: RunId, status: Status, summary: Option<Box<RunSummary>> },
}

/// Where jobs are and which slots exist, for views.
#[derive(Debug, Clone, Default)]
pub struct PoolSnapshot {
    /// Slot groups: a device and its number of slots.
    pub slots: Vec<(Device, usize)>,
    pub queued: Vec<RunId>,
    /// Running jobs and the device each runs on.
    pub running: Vec<(RunId, Device)>,
    /// The runs in each slot group's slots (same order as `slots`).
    pub group_runs: Vec<Vec<RunId>>,
    /// Per slot group, its busy slots, each with the runs it trains (several: the members of
    /// one stacked model, `Pool::set_members`).
    pub group_slots: Vec<Vec<Vec<RunId>>>,
}

struct Running {
    device: Device,
    group: usize,
    /// The first run its slot took: runs with the same lead train as one model.
    lead: RunId,
    stop: Arc<AtomicBool>,
    reason: Option<StopReason>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    running: HashMap<RunId, Running>,
    /// Per slot group: runs executing, workers waiting for a run.
    busy: Vec<usize>,
    idle: Vec<usize>,
    shutdown: bool,
}

impl State {
    /// Whether a free worker of group `g` (on `device`) should take `job` now: it can run it,
    /// and no other group that could take it at once is less busy.
    fn takes(&self, g: usize, device: Device, job: &Job, slots: &[(Device, usize)]) -> bool {
        accepts(device, job.spec.device)
            && slots.iter().enumerate().all(|(h, &(d, _))| {
                h == g || self.idle[h] == 0 || !accepts(d, job.spec.device) || self.busy[g] <= self.busy[h]
            })
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    writer: Option<Sender<WriteOp>>,
    slots: Vec<(Device, usize)>,
    /// Per slot group: the command its runs train in (a child process each), or `None`:
    /// threads of this process.
    children: Vec<Option<WorkerCommand>>,
    /// The store directory (checkpoints go under it); `None`: no checkpoints.
    store_root: Option<PathBuf>,
    subscribers: Mutex<Vec<Sender<PoolEvent>>>,
    /// Most runs a slot trains at once as one stacked model (`models::members`): queued runs
    /// of one spec that differ only in seed.
    members: AtomicUsize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self, op: WriteOp) {
        if let Some(w) = &self.writer {
            let _ = w.send(op);
        }
    }
    fn publish(&self, ev: PoolEvent) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| s.send(ev.clone()).is_ok());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("run {run} asks for device {wanted}, but this pool has only {have}")]
    NoSlot { run: RunId, wanted: DeviceSpec, have: String },
}

pub struct Pool {
    shared: Arc<Shared>,
    slots: Vec<(Device, usize)>,
    workers: Vec<JoinHandle<()>>,
}

fn accepts(slot: Device, wanted: DeviceSpec) -> bool {
    match wanted {
        DeviceSpec::Auto => true,
        DeviceSpec::Cpu => slot == Device::Cpu,
        DeviceSpec::Cuda(i) => slot == Device::Cuda(i),
    }
}

impl Pool {
    /// Starts `count` worker threads for each slot group `(device, count)` in `slots`; each
    /// trains in a child process or in itself as `child::slot_commands` decides for a pool of
    /// foreground runs.
    pub fn new(slots: Vec<(Device, usize)>, writer: Option<Sender<WriteOp>>, store_root: Option<PathBuf>) -> Pool {
        Pool::isolated(slots, writer, store_root, Isolation::SharedGpuOnly)
    }

    /// As `new`, for an owner whose slots need `isolation` (the notebook: every slot).
    pub fn isolated(
        slots: Vec<(Device, usize)>,
        writer: Option<Sender<WriteOp>>,
        store_root: Option<PathBuf>,
        isolation: Isolation,
    ) -> Pool {
        let children = child::slot_commands(&slots, isolation);
        Pool::with_children(slots, writer, store_root, children)
    }

    /// As `new`, with the command of each slot group's child processes given (`None`: threads).
    pub fn with_children(
        slots: Vec<(Device, usize)>,
        writer: Option<Sender<WriteOp>>,
        store_root: Option<PathBuf>,
        children: Vec<Option<WorkerCommand>>,
    ) -> Pool {
        assert_eq!(children.len(), slots.len(), "a child command (or None) per slot group");
        // Every worker counts as free from the start, so the first runs spread too.
        let idle = slots.iter().map(|&(_, n)| n).collect();
        let state = State { busy: vec![0; slots.len()], idle, ..State::default() };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            writer,
            slots: slots.clone(),
            children,
            store_root,
            subscribers: Mutex::new(Vec::new()),
            members: AtomicUsize::new(members_from_env()),
        });
        let mut workers = Vec::new();
        for (group, &(device, count)) in slots.iter().enumerate() {
            for i in 0..count {
                let shared = shared.clone();
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("worker-{device}-{group}.{i}"))
                        // burn's autodiff graphs recurse deeply on long prompts.
                        .stack_size(64 << 20)
                        .spawn(move || worker(shared, group, device))
                        .expect("spawn a worker"),
                );
            }
        }
        Pool { shared, slots, workers }
    }

    pub fn slots(&self) -> &[(Device, usize)] {
        &self.slots
    }

    /// Lets each slot train up to `n` queued runs at once as the members of one stacked model
    /// (runs of one spec that differ only in seed, none resuming): one forward and backward a
    /// step for all, which on a GPU costs little more than one run's (`bench members`). Runs
    /// taken from now on; 1 (the default, or `ICL_LAB_MEMBERS`) trains one run per slot.
    pub fn set_members(&self, n: usize) {
        self.shared.members.store(n.clamp(1, 64), Ordering::SeqCst);
    }

    /// Whether a pool of these slot groups can run a spec that asks for `wanted`.
    pub fn serves(slots: &[(Device, usize)], wanted: DeviceSpec) -> bool {
        slots.iter().any(|&(d, n)| n > 0 && accepts(d, wanted))
    }

    /// The slot groups in words: `4x cuda:0, 4x cuda:1`.
    pub fn describe(slots: &[(Device, usize)]) -> String {
        slots.iter().map(|(d, n)| format!("{n}x {d}")).collect::<Vec<_>>().join(", ")
    }

    /// Queues a run. Fails if no slot of this pool can run its device.
    pub fn submit(&self, job: Job) -> Result<(), PoolError> {
        if !Pool::serves(&self.slots, job.spec.device) {
            return Err(PoolError::NoSlot { run: job.run, wanted: job.spec.device, have: Pool::describe(&self.slots) });
        }
        self.shared.state().queue.push_back(job);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Queues several runs at once (no worker takes one before all are queued). Fails, queuing
    /// none, if no slot of this pool can run one of them.
    pub fn submit_all(&self, jobs: Vec<Job>) -> Result<(), PoolError> {
        if let Some(job) = jobs.iter().find(|j| !Pool::serves(&self.slots, j.spec.device)) {
            return Err(PoolError::NoSlot { run: job.run, wanted: job.spec.device, have: Pool::describe(&self.slots) });
        }
        self.shared.state().queue.extend(jobs);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Events of every run from now on.
    pub fn subscribe(&self) -> Receiver<PoolEvent> {
        let (tx, rx) = unbounded();
        self.shared.subscribers.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    /// Stops a run: a queued one leaves the queue at once, a running one after its current
    /// step (saving a checkpoint). Returns false if the pool does not have it.
    pub fn stop(&self, run: RunId, reason: StopReason) -> bool {
        let mut st = self.shared.state();
        if let Some(pos) = st.queue.iter().position(|j| j.run == run) {
            st.queue.remove(pos);
            drop(st);
            let status = match reason {
                StopReason::Cancel => Status::Cancelled,
                StopReason::Interrupt => Status::Interrupted,
            };
            self.shared.write(WriteOp::Finish { run, status: status.clone(), train_s: 0.0 });
            self.shared.publish(PoolEvent::Finished { run, status, summary: None });
            self.shared.changed.notify_all();
            return true;
        }
        match st.running.get_mut(&run) {
            Some(r) => {
                // The first reason stands: a run cancelled, then caught by a stop of them all,
                // stays cancelled.
                r.reason.get_or_insert(reason);
                r.stop.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Stops every queued and running run.
    pub fn stop_all(&self, reason: StopReason) {
        let ids: Vec<RunId> = {
            let st = self.shared.state();
            st.queue.iter().map(|j| j.run).chain(st.running.keys().copied()).collect()
        };
        for id in ids {
            self.stop(id, reason);
        }
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        let st = self.shared.state();
        let mut running: Vec<_> = st.running.iter().map(|(id, r)| (*id, r.device)).collect();
        running.sort();
        let mut group_runs = vec![Vec::new(); self.slots.len()];
        let mut by_lead = vec![std::collections::BTreeMap::<RunId, Vec<RunId>>::new(); self.slots.len()];
        for (id, r) in &st.running {
            group_runs[r.group].push(*id);
            by_lead[r.group].entry(r.lead).or_default().push(*id);
        }
        group_runs.iter_mut().for_each(|g| g.sort());
        let sorted = |mut runs: Vec<RunId>| {
            runs.sort();
            runs
        };
        let group_slots = by_lead.into_iter().map(|slots| slots.into_values().map(sorted).collect()).collect();
        PoolSnapshot { slots: self.slots.clone(), queued: st.queue.iter().map(|j| j.run).collect(), running, group_runs, group_slots }
    }

    /// Queued plus running.
    pub fn alive(&self) -> usize {
        let st = self.shared.state();
        st.queue.len() + st.running.len()
    }

    /// Blocks until nothing is queued or running.
    pub fn wait_idle(&self) {
        let mut st = self.shared.state();
        while !st.queue.is_empty() || !st.running.is_empty() {
            st = self.shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Pool {
    /// Interrupts whatever still runs (it stays resumable) and joins the workers.
    fn drop(&mut self) {
        self.stop_all(StopReason::Interrupt);
        self.shared.state().shutdown = true;
        self.shared.changed.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A run taken by a worker, with the flag that stops it.
type Taken = (Job, Arc<AtomicBool>);

fn worker(shared: Arc<Shared>, group: usize, device: Device) {
    loop {
        let taken = {
            let mut st = shared.state();
            loop {
                if st.shutdown {
                    return;
                }
                if let Some(pos) = st.queue.iter().position(|j| st.takes(group, device, j, &shared.slots)) {
                    let job = st.queue.remove(pos).expect("position is valid");
                    let lead = job.run;
                    let mut taken = vec![take(&mut st, job, device, group, lead)];
                    // Runs that can share this one's model as members come along.
                    let most = shared.members.load(Ordering::SeqCst);
                    while taken.len() < most && taken[0].0.resume.is_none() {
                        let first = &taken[0].0.spec;
                        let Some(pos) = st.queue.iter().position(|j| j.resume.is_none() && same_but_seed(first, &j.spec) && accepts(device, j.spec.device)) else { break };
                        let job = st.queue.remove(pos).expect("position is valid");
                        taken.push(take(&mut st, job, device, group, lead));
                    }
                    st.idle[group] -= 1;
                    st.busy[group] += 1;
                    // Another group may have left a run to this one: let it look again.
                    shared.changed.notify_all();
                    break taken;
                }
                st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        execute(&shared, group, device, &taken);
        {
            let mut st = shared.state();
            for (job, _) in &taken {
                st.running.remove(&job.run);
            }
            st.busy[group] -= 1;
            st.idle[group] += 1;
        }
        shared.changed.notify_all();
    }
}

/// Marks `job` running in `group` (in the slot of run `lead`), with a fresh stop flag.
fn take(st: &mut State, job: Job, device: Device, group: usize, lead: RunId) -> Taken {
    let stop = Arc::new(AtomicBool::new(false));
    st.running.insert(job.run, Running { device, group, lead, stop: stop.clone(), reason: None });
    (job, stop)
}

/// Writes one run's training events to the store and passes them on to subscribers.
struct Reporter {
    run: RunId,
    last_progress: Instant,
    /// Its end is recorded (`TrainEvent::Ended`: a member may end before its group).
    ended: bool,
}

impl Reporter {
    fn report(&mut self, shared: &Shared, ev: TrainEvent) {
        let run = self.run;
        match &ev {
            TrainEvent::Ended(summary) => {
                if !self.ended {
                    self.ended = true;
                    finish(shared, run, Ok((**summary).clone()));
                    shared.state().running.remove(&run);
                    shared.changed.notify_all();
                }
                return;
            }
            TrainEvent::Started { stats, .. } => {
                let (params, flops) = (stats.params, stats.flops_per_token);
                shared.write(WriteOp::Update(
                    run,
                    Box::new(move |r| {
                        r.params = Some(params);
                        r.flops_per_token = Some(flops);
                    }),
                ));
            }
            TrainEvent::Step(m) => shared.write(WriteOp::Metrics(run, m.clone())),
            TrainEvent::Eval(c) => shared.write(WriteOp::Eval(run, c.clone())),
            TrainEvent::Checkpoint(c) => {
                if let Some(root) = &shared.store_root {
                    let dir = c.dir.strip_prefix(root).unwrap_or(&c.dir).to_string_lossy().into_owned();
                    shared.write(WriteOp::Checkpoint(
                        run,
                        Checkpoint { step: c.step, dir, data_word_pos: c.data_word_pos },
                    ));
                }
            }
            TrainEvent::Progress { .. } => {
                if self.last_progress.elapsed() < PROGRESS_EVERY {
                    return;
                }
                self.last_progress = Instant::now();
            }
        }
        shared.publish(PoolEvent::Train { run, event: ev });
    }
}

/// Trains the runs a worker took: one run, or several as the members of one stacked model.
fn execute(shared: &Shared, group: usize, device: Device, taken: &[Taken]) {
    let pid = std::process::id();
    for (job, _) in taken {
        let run = job.run;
        // What was recorded after the checkpoint is trained again: drop it (no stale points).
        shared.write(WriteOp::Rewind(run, job.resume.as_ref().map_or(0, |c| c.step)));
        shared.write(WriteOp::Update(
            run,
            Box::new(move |r| {
                r.status = Status::Running;
                r.started.get_or_insert_with(Utc::now);
                r.finished = None;
                r.device = Some(device.to_string());
                r.pid = Some(pid);
            }),
        ));
        shared.publish(PoolEvent::Started { run, device });
    }

    let ctls: Vec<TrainControl> = taken
        .iter()
        .map(|(job, stop)| {
            let checkpoints = shared.store_root.as_ref().map(|root| root.join("checkpoints").join(&job.uid));
            let resume = match (&job.resume, &shared.store_root) {
                (Some(c), Some(root)) => Some(SavedCheckpoint { step: c.step, dir: root.join(&c.dir), data_word_pos: c.data_word_pos }),
                _ => None,
            };
            TrainControl { cancel: stop, checkpoints, resume, wall_offset_s: job.train_s }
        })
        .collect();
    let specs: Vec<ExperimentSpec> = taken.iter().map(|(job, _)| job.spec.clone()).collect();
    let mut reporters: Vec<Reporter> = taken.iter().map(|(job, _)| Reporter { run: job.run, last_progress: Instant::now() - PROGRESS_EVERY, ended: false }).collect();
    let mut on_event = |k: usize, ev: TrainEvent| reporters[k].report(shared, ev);
    let result = match &shared.children[group] {
        Some(cmd) => child::train_members_in_child(cmd, device, &specs, &ctls, &mut on_event),
        None => train_members_on(device, &specs, &ctls, &mut on_event),
    };
    // Runs whose end was not reported (a lone run's summary is also the result; a failed
    // worker reports none).
    for (k, reporter) in reporters.iter().enumerate() {
        if !reporter.ended {
            finish(shared, reporter.run, result.as_ref().map(|summaries| summaries[k].clone()).map_err(|e| e.to_string()));
        }
    }
}

/// Records how `run` ended (its summary, or why it failed) and tells the subscribers.
fn finish(shared: &Shared, run: RunId, result: Result<RunSummary, String>) {
    let reason = shared.state().running.get(&run).and_then(|r| r.reason);
    let (status, train_s, summary) = match result {
        Ok(s) => {
            let status = match (&s.outcome, &s.checkpoint_error) {
                (_, Some(e)) => Status::Failed { reason: e.clone() },
                (Outcome::Done, _) => Status::Done,
                (Outcome::Interrupted, _) if reason == Some(StopReason::Cancel) => Status::Cancelled,
                (Outcome::Interrupted, _) => Status::Interrupted,
                (Outcome::Diverged { loss }, _) => Status::Diverged { step: s.steps, loss: *loss },
            };
            (status, s.wall_s - s.setup_s, Some(Box::new(s)))
        }
        Err(reason) => (Status::Failed { reason }, 0.0, None),
    };
    shared.write(WriteOp::Finish { run, status: status.clone(), train_s: train_s.max(0.0) });
    shared.publish(PoolEvent::Finished { run, status, summary });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(run: RunId, device: DeviceSpec, steps: usize) -> Job {
        let text = include_str!("../../experiments/quick/linear_regression.toml");
        let mut spec = ExperimentSpec::from_toml(text).expect("the quick experiment parses");
        spec.device = device;
        spec.train.steps = steps;
        Job { run, uid: format!("u{run}"), spec, resume: None, train_s: 0.0 }
    }

    fn state(busy: &[usize], idle: &[usize]) -> State {
        State { busy: busy.to_vec(), idle: idle.to_vec(), ..State::default() }
    }

    #[test]
    fn an_auto_run_goes_to_the_least_busy_group_with_a_free_slot() {
        let slots = [(Device::Cuda(0), 4), (Device::Cuda(1), 4)];
        let auto = job(1, DeviceSpec::Auto, 1);
        let st = state(&[1, 0], &[3, 4]);
        assert!(!st.takes(0, Device::Cuda(0), &auto, &slots));
        assert!(st.takes(1, Device::Cuda(1), &auto, &slots));
        // A full group is no alternative; a tie may go either way.
        let st = state(&[1, 4], &[3, 0]);
        assert!(st.takes(0, Device::Cuda(0), &auto, &slots));
        let st = state(&[2, 2], &[2, 2]);
        assert!(st.takes(0, Device::Cuda(0), &auto, &slots) && st.takes(1, Device::Cuda(1), &auto, &slots));
    }

    #[test]
    fn a_pinned_run_waits_for_its_device() {
        let slots = [(Device::Cuda(0), 4), (Device::Cuda(1), 4)];
        let pinned = job(1, DeviceSpec::Cuda(1), 1);
        let st = state(&[0, 3], &[4, 1]);
        assert!(!st.takes(0, Device::Cuda(0), &pinned, &slots));
        assert!(st.takes(1, Device::Cuda(1), &pinned, &slots));
        // Two groups on one GPU share its pinned runs by load too.
        let slots = [(Device::Cuda(0), 2), (Device::Cuda(0), 2)];
        let pinned = job(1, DeviceSpec::Cuda(0), 1);
        let st = state(&[1, 0], &[1, 2]);
        assert!(!st.takes(0, Device::Cuda(0), &pinned, &slots));
        assert!(st.takes(1, Device::Cuda(0), &pinned, &slots));
    }

    #[test]
    fn queued_runs_spread_over_slot_groups() {
        // Two groups of two CPU slots; two long runs must land one in each group.
        let pool = Pool::new(vec![(Device::Cpu, 2), (Device::Cpu, 2)], None, None);
        let events = pool.subscribe();
        for run in [1, 2] {
            pool.submit(job(run, DeviceSpec::Auto, 100_000)).unwrap();
        }
        let mut started = 0;
        while started < 2 {
            if let PoolEvent::Started { .. } = events.recv_timeout(Duration::from_secs(30)).expect("runs start") {
                started += 1;
            }
        }
        let snap = pool.snapshot();
        assert_eq!(snap.group_runs.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1], "{:?}", snap.group_runs);
        pool.stop_all(StopReason::Cancel);
        pool.wait_idle();
        assert!(pool.snapshot().group_runs.iter().all(Vec::is_empty));
    }

    /// A slot's child process that dies before reporting fails its run with its exit status
    /// and the end of its stderr; the slot then takes the next run.
    #[cfg(unix)]
    #[test]
    fn a_crashed_child_fails_its_run_with_its_stderr_tail() {
        let crash = WorkerCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "read job; echo 'CUDA_ERROR_ILLEGAL_ADDRESS at step 3' >&2; exit 3".into()],
        };
        let pool = Pool::with_children(vec![(Device::Cpu, 1)], None, None, vec![Some(crash)]);
        let events = pool.subscribe();
        for run in [1, 2] {
            pool.submit(job(run, DeviceSpec::Auto, 10)).unwrap();
        }
        let mut failed = Vec::new();
        while failed.len() < 2 {
            if let PoolEvent::Finished { run, status, summary } = events.recv_timeout(Duration::from_secs(30)).expect("runs end") {
                assert!(summary.is_none());
                let Status::Failed { reason } = status else { panic!("run {run}: {status:?}") };
                failed.push((run, reason));
            }
        }
        for (run, reason) in failed {
            assert!(reason.contains("its worker process exited with status 3"), "run {run}: {reason}");
            assert!(reason.ends_with("its stderr ended with:\nCUDA_ERROR_ILLEGAL_ADDRESS at step 3"), "run {run}: {reason}");
        }
        let missing = WorkerCommand { program: "/nonexistent/icl-lab".into(), args: vec![] };
        let pool = Pool::with_children(vec![(Device::Cpu, 1)], None, None, vec![Some(missing)]);
        let events = pool.subscribe();
        pool.submit(job(3, DeviceSpec::Auto, 10)).unwrap();
        loop {
            if let PoolEvent::Finished { status, .. } = events.recv_timeout(Duration::from_secs(30)).expect("the run ends") {
                let Status::Failed { reason } = status else { panic!("{status:?}") };
                assert!(reason.contains("cannot start a worker process (/nonexistent/icl-lab)"), "{reason}");
                break;
            }
        }
    }

    /// With members allowed, one slot takes the queued runs that differ only in seed together
    /// (up to the limit) and leaves a run of another spec queued; a stop reaches each member.
    #[test]
    fn a_slot_takes_seeds_of_one_spec_together_as_members() {
        let pool = Pool::new(vec![(Device::Cpu, 1)], None, None);
        pool.set_members(3);
        let events = pool.subscribe();
        let mut jobs: Vec<Job> = (1..=4).map(|run| job(run, DeviceSpec::Auto, 100_000)).collect();
        for (seed, j) in jobs.iter_mut().enumerate() {
            j.spec.seed = seed as u64;
        }
        let mut other = job(5, DeviceSpec::Auto, 100_000);
        other.spec.train.lr *= 2.0;
        jobs.insert(1, other);
        pool.submit_all(jobs).unwrap();
        let mut started = Vec::new();
        while started.len() < 3 {
            if let PoolEvent::Started { run, .. } = events.recv_timeout(Duration::from_secs(30)).expect("runs start") {
                started.push(run);
            }
        }
        started.sort();
        assert_eq!(started, [1, 2, 3], "the first run and the next two of its spec");
        let snap = pool.snapshot();
        assert_eq!(snap.group_runs, [vec![1, 2, 3]]);
        assert_eq!(snap.group_slots, [vec![vec![1, 2, 3]]], "one slot trains the three");
        assert_eq!(snap.queued, [5, 4], "another spec, and a seed beyond the limit, wait");
        // A stopped member ends at once; its group goes on.
        assert!(pool.stop(2, StopReason::Cancel));
        let mut ended = std::collections::BTreeMap::new();
        while !ended.contains_key(&2) {
            if let PoolEvent::Finished { run, status, .. } = events.recv_timeout(Duration::from_secs(30)).expect("run 2 ends") {
                ended.insert(run, status);
            }
        }
        assert_eq!(ended.len(), 1, "only run 2 ended: {ended:?}");
        assert_eq!(pool.snapshot().group_slots, [vec![vec![1, 3]]]);
        pool.stop_all(StopReason::Interrupt);
        pool.wait_idle();
        while let Ok(ev) = events.try_recv() {
            if let PoolEvent::Finished { run, status, .. } = ev {
                ended.insert(run, status);
            }
        }
        assert_eq!(ended.get(&2), Some(&Status::Cancelled));
        for run in [1, 3, 4, 5] {
            assert_eq!(ended.get(&run), Some(&Status::Interrupted), "run {run}");
        }
    }

    #[test]
    fn a_run_for_a_device_the_pool_lacks_is_refused() {
        let pool = Pool::new(vec![(Device::Cpu, 1)], None, None);
        let e = pool.submit(job(1, DeviceSpec::Cuda(1), 1)).unwrap_err().to_string();
        assert_eq!(e, "run 1 asks for device cuda:1, but this pool has only 1x cpu");
    }
}

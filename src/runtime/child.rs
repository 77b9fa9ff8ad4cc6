//! Slots as child processes: a slot trains its run in a child process (this binary's hidden
//! `slot-worker` command) instead of a thread of this process.
//!
//! Why: burn 0.21 / CubeCL 0.10 serve each device of a process from one host thread per
//! pipeline stage (cubecl-common's `ChannelDeviceHandle`: one "upstream" thread for burn-fusion
//! and one "downstream" thread for the CUDA server per device). Every tensor operation of every
//! run on `cuda:0` in this process goes through those two threads, so runs in threads of one
//! process share one host thread's throughput; separate processes each get their own
//! (`docs/performance.md`, "Several runs on one GPU").
//!
//! The protocol, one JSON value a line: the pool writes a [`ChildJob`] on the child's stdin
//! (one run, or several seeds of one spec as the members of one stacked model), then `stop K`
//! when member K (0 for a lone run) is to stop after its current step; a closed stdin (the
//! pool's process died) stops them all, as does SIGINT. The child writes a [`Message`] per
//! training event on its stdout, tagged with its member, then `done` with the summaries or
//! `failed` with the reason. Everything
//! else the child prints goes to its stderr, of which the pool keeps the tail: a child that ends
//! without `done` or `failed` (a crash, a kill) fails its run with that tail. The child writes
//! checkpoints into the store's checkpoint directory, as a thread would; only the pool's
//! process touches the store itself, so the notebook, `sweep` and their views see the same
//! events either way.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use serde::{Deserialize, Serialize};

use super::{train_members_on, Device, RunError};
use crate::spec::ExperimentSpec;
use crate::train::{RunSummary, SavedCheckpoint, TrainControl, TrainEvent};

/// `ICL_LAB_SLOTS`: `threads` (every slot a thread), `processes` (every slot a child process),
/// unset or `auto`: as [`Isolation`] says for the pool's owner. Unix only.
pub const SLOTS_ENV: &str = "ICL_LAB_SLOTS";

/// After asking a child to stop, kill it if it has not ended within this time (a wedged GPU
/// run would otherwise hold its slot for ever).
const STOP_GRACE: Duration = Duration::from_secs(120);
/// Lines of a child's stderr kept for the failure message.
const TAIL_LINES: usize = 20;
/// Characters of those kept at most.
const TAIL_CHARS: usize = 4_000;
/// Progress events are sent at most this often (the pool forwards them at most as often).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// How to start a slot's child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    /// The icl-lab binary at `exe`, as a slot worker.
    pub fn icl_lab(exe: PathBuf) -> Self {
        WorkerCommand { program: exe, args: vec!["slot-worker".into()] }
    }
}

static PROGRAM: OnceLock<WorkerCommand> = OnceLock::new();

/// Called once by the command line: pools of this process may start slot workers with `cmd`.
/// Without it (the library used on its own, unit tests) every slot is a thread.
pub fn register_worker_program(cmd: WorkerCommand) {
    let _ = PROGRAM.set(cmd);
}

/// Which slots of a pool train in child processes when [`SLOTS_ENV`] does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A pool that outlives its runs (the notebook, a sweep): every slot a child, so a run
    /// that aborts (out of memory, a driver fault) fails that run, not the notebook. A child
    /// costs about 0.4 s to start on the CPU (docs/performance.md, "Runs in child processes").
    EverySlot,
    /// A pool for one run in the foreground (`icl-lab run`): child processes only for the
    /// CUDA slots of a pool with at least two, where threads would share CubeCL's host
    /// threads; otherwise the process itself trains, as the run is all it does.
    SharedGpuOnly,
}

/// For each slot group: the command its slots run their runs with, or `None` for threads
/// (see [`SLOTS_ENV`]).
pub fn slot_commands(slots: &[(Device, usize)], isolation: Isolation) -> Vec<Option<WorkerCommand>> {
    choose(&std::env::var(SLOTS_ENV).unwrap_or_default(), PROGRAM.get(), slots, isolation)
}

/// `slot_commands` for the value `mode` of [`SLOTS_ENV`] and the registered `program`.
fn choose(
    mode: &str,
    program: Option<&WorkerCommand>,
    slots: &[(Device, usize)],
    isolation: Isolation,
) -> Vec<Option<WorkerCommand>> {
    let cuda_slots: usize = slots.iter().filter(|(d, _)| matches!(d, Device::Cuda(_))).map(|(_, n)| n).sum();
    slots
        .iter()
        .map(|&(device, _)| {
            // Off Unix the child's protocol (its own process group, stdout kept apart) is not
            // built: threads there.
            let child = cfg!(unix)
                && match mode.trim() {
                    "threads" => false,
                    "processes" => true,
                    _ => match isolation {
                        Isolation::EverySlot => true,
                        Isolation::SharedGpuOnly => matches!(device, Device::Cuda(_)) && cuda_slots >= 2,
                    },
                };
            program.filter(|_| child).cloned()
        })
        .collect()
}

/// What a child trains: the parts of its jobs and their `TrainControl`s that cross the pipe.
/// Several specs are the members of one stacked model (`train::train_members`), one per run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildJob {
    pub specs: Vec<ExperimentSpec>,
    pub device: Device,
    /// Per member.
    pub checkpoints: Vec<Option<PathBuf>>,
    /// A lone run only.
    pub resume: Option<SavedCheckpoint>,
    /// Per member.
    pub wall_offset_s: Vec<f64>,
}

/// A line of a child's stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// An event of member `.0`.
    Event(usize, Box<TrainEvent>),
    /// Every member's summary, in order.
    Done(Vec<RunSummary>),
    Failed(String),
}

/// The last lines of a child's stderr.
#[derive(Default)]
struct Tail(VecDeque<String>);

impl Tail {
    fn push(&mut self, line: String) {
        if self.0.len() == TAIL_LINES {
            self.0.pop_front();
        }
        self.0.push_back(line);
    }

    fn render(&self) -> String {
        let text = self.0.iter().map(String::as_str).collect::<Vec<_>>().join("\n");
        let text = text.trim();
        if text.is_empty() {
            return "; it printed nothing on stderr".into();
        }
        let skip = text.chars().count().saturating_sub(TAIL_CHARS);
        let cut: String = text.chars().skip(skip).collect();
        format!("; its stderr ended with:\n{}{cut}", if skip > 0 { "..." } else { "" })
    }
}

fn lines_of(reader: impl Read, mut each: impl FnMut(String) -> bool) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                if !each(line) {
                    return;
                }
            }
        }
    }
}

fn ended(status: Option<ExitStatus>, killed: bool) -> String {
    let Some(status) = status else { return "could not be waited for".into() };
    if killed {
        return format!("did not stop within {} s of being asked and was killed", STOP_GRACE.as_secs());
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL: killed, e.g. out of memory)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT: aborted)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code} before reporting an outcome"),
        None => "ended before reporting an outcome".into(),
    }
}

/// Trains `spec` on `device` in a child process started with `cmd`, as [`train_on`] does in
/// this thread: events go to `on_event` as they come, `ctl.cancel` stops the run after its
/// current step, and a child that dies fails the run with the tail of its stderr.
pub fn train_in_child(
    cmd: &WorkerCommand,
    device: Device,
    spec: &ExperimentSpec,
    ctl: &TrainControl,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, RunError> {
    let mut summaries = train_members_in_child(cmd, device, std::slice::from_ref(spec), std::slice::from_ref(ctl), &mut |_, event| on_event(event))?;
    Ok(summaries.remove(0))
}

/// [`train_in_child`] for the members of one stacked model (`runtime::train_members_on`):
/// `ctls[k].cancel` stops member k, events come as `on_event(member, event)`.
pub fn train_members_in_child(
    cmd: &WorkerCommand,
    device: Device,
    specs: &[ExperimentSpec],
    ctls: &[TrainControl],
    on_event: &mut dyn FnMut(usize, TrainEvent),
) -> Result<Vec<RunSummary>, RunError> {
    let fail = |reason: String| RunError::Backend { device, reason };
    let mut command = Command::new(&cmd.program);
    command.args(&cmd.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Its own process group: a Ctrl-C on the terminal reaches the pool's process only, which
        // stops its runs in order (each child saves a checkpoint and reports).
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .map_err(|e| fail(format!("cannot start a worker process ({}): {e}", cmd.program.display())))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let job = ChildJob {
        specs: specs.to_vec(),
        device,
        checkpoints: ctls.iter().map(|c| c.checkpoints.clone()).collect(),
        resume: ctls[0].resume.clone(),
        wall_offset_s: ctls.iter().map(|c| c.wall_offset_s).collect(),
    };
    let line = serde_json::to_string(&job).expect("a job serialises");
    // A child that cannot read it has died: that is reported below, from its exit status.
    let _ = writeln!(stdin, "{line}").and_then(|_| stdin.flush());

    let tail = Arc::new(Mutex::new(Tail::default()));
    let err_reader = {
        let tail = tail.clone();
        std::thread::spawn(move || {
            lines_of(stderr, |line| {
                tail.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                true
            })
        })
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let out_reader = std::thread::spawn(move || {
        lines_of(stdout, |line| match serde_json::from_str::<Message>(&line) {
            Ok(message) => tx.send(Ok(message)).is_ok(),
            Err(_) => tx.send(Err(line)).is_ok(),
        })
    });

    let (mut summary, mut failure) = (None, None);
    // When each member was asked to stop; the child is killed once every member has been
    // asked and the last of them did not stop in time.
    let mut asked_to_stop: Vec<Option<Instant>> = vec![None; ctls.len()];
    let mut killed = false;
    loop {
        for (k, ctl) in ctls.iter().enumerate() {
            if asked_to_stop[k].is_none() && ctl.cancel.load(Ordering::SeqCst) {
                let _ = writeln!(stdin, "stop {k}").and_then(|_| stdin.flush());
                asked_to_stop[k] = Some(Instant::now());
            }
        }
        let all_asked = asked_to_stop.iter().map(|a| a.map(|at| at.elapsed())).collect::<Option<Vec<_>>>();
        if !killed && all_asked.is_some_and(|waited| waited.iter().min().is_some_and(|w| *w > STOP_GRACE)) {
            killed = child.kill().is_ok();
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(Message::Event(k, ev))) if k < ctls.len() => on_event(k, *ev),
            Ok(Ok(Message::Event(k, _))) => failure = Some(format!("the worker process reported member {k} of {}", ctls.len())),
            Ok(Ok(Message::Done(s))) if s.len() == ctls.len() => summary = Some(s),
            Ok(Ok(Message::Done(s))) => failure = Some(format!("the worker process reported {} summaries for {} runs", s.len(), ctls.len())),
            Ok(Ok(Message::Failed(reason))) => failure = Some(reason),
            Ok(Err(line)) => tail.lock().unwrap_or_else(|p| p.into_inner()).push(line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(stdin);
    let status = child.wait().ok();
    let _ = out_reader.join();
    let _ = err_reader.join();
    match (summary, failure) {
        (Some(s), _) => Ok(s),
        (None, Some(reason)) => Err(fail(reason)),
        (None, None) => {
            let tail = tail.lock().unwrap_or_else(|p| p.into_inner()).render();
            Err(fail(format!("its worker process {}{tail}", ended(status, killed))))
        }
    }
}

/// The protocol's output: the process's stdout, after pointing file descriptor 1 at stderr so
/// that nothing else printed (a library's message) can end up in the protocol.
fn protocol_out() -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd;
        std::io::stdout().flush()?;
        // SAFETY: plain descriptor calls; the duplicate is owned by the returned File alone.
        unsafe {
            let fd = libc::dup(1);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let out = std::fs::File::from_raw_fd(fd);
            if libc::dup2(2, 1) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(out)
        }
    }
    #[cfg(not(unix))]
    {
        Err(std::io::Error::other("slot worker processes need a Unix system"))
    }
}

/// The child's side (`icl-lab slot-worker`): reads a [`ChildJob`] on stdin, trains it and
/// reports on stdout (see the module's documentation). Returns the process's exit status: 0
/// when an outcome (`done` or `failed`) was written, 1 when not even that was possible.
pub fn serve() -> u8 {
    let mut out = match protocol_out() {
        Ok(out) => std::io::BufWriter::new(out),
        Err(e) => {
            eprintln!("slot-worker: {e}");
            return 1;
        }
    };
    let mut first = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut first) {
        eprintln!("slot-worker: reading the job: {e}");
        return 1;
    }
    let job: ChildJob = match serde_json::from_str(&first) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("slot-worker: the job is not valid: {e}");
            return 1;
        }
    };
    let members = job.specs.len();
    if members == 0 || job.checkpoints.len() != members || job.wall_offset_s.len() != members {
        eprintln!("slot-worker: the job lists {members} specs, {} checkpoint directories and {} wall offsets", job.checkpoints.len(), job.wall_offset_s.len());
        return 1;
    }
    let cancels: Arc<Vec<AtomicBool>> = Arc::new((0..members).map(|_| AtomicBool::new(false)).collect());
    let stop_all = |cancels: &[AtomicBool]| cancels.iter().for_each(|c| c.store(true, Ordering::SeqCst));
    {
        let cancels = cancels.clone();
        std::thread::spawn(move || {
            lines_of(std::io::stdin(), |line| {
                // `stop K` stops member K; anything else that says stop stops them all.
                if let Some(k) = line.trim().strip_prefix("stop").map(str::trim) {
                    match k.parse::<usize>().ok().and_then(|k| cancels.get(k)) {
                        Some(c) => c.store(true, Ordering::SeqCst),
                        None => stop_all(&cancels),
                    }
                }
                true
            });
            stop_all(&cancels); // the pool's end of the pipe closed
        });
    }
    {
        let cancels = cancels.clone();
        let _ = ctrlc::set_handler(move || stop_all(&cancels));
    }
    // burn's autodiff graphs recurse deeply on long prompts: the stack a pool's thread has.
    let trainer = std::thread::Builder::new().name("slot-worker".into()).stack_size(64 << 20).spawn(move || {
        let send = |m: &Message, out: &mut std::io::BufWriter<std::fs::File>| {
            let ok = serde_json::to_writer(&mut *out, m).is_ok() && out.write_all(b"\n").is_ok() && out.flush().is_ok();
            if !ok {
                stop_all(&cancels); // nobody listens: stop (a checkpoint is saved)
            }
        };
        let ctls: Vec<TrainControl> = (0..members)
            .map(|k| TrainControl {
                cancel: &cancels[k],
                checkpoints: job.checkpoints[k].clone(),
                resume: if k == 0 { job.resume.clone() } else { None },
                wall_offset_s: job.wall_offset_s[k],
            })
            .collect();
        let mut last_progress = vec![Instant::now() - PROGRESS_EVERY; members];
        let result = train_members_on(job.device, &job.specs, &ctls, &mut |k, ev| {
            if let TrainEvent::Progress { .. } = ev {
                if last_progress[k].elapsed() < PROGRESS_EVERY {
                    return;
                }
                last_progress[k] = Instant::now();
            }
            send(&Message::Event(k, Box::new(ev)), &mut out);
        });
        let message = match result {
            Ok(summaries) => Message::Done(summaries),
            Err(e) => Message::Failed(e.to_string()),
        };
        send(&message, &mut out);
    });
    match trainer.map(|t| t.join()) {
        Ok(Ok(())) => 0,
        _ => {
            eprintln!("slot-worker: the training thread could not run or panicked");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_a_line_of_json() {
        let ckpt = SavedCheckpoint { step: 7, dir: PathBuf::from("/s/checkpoints/u/step-7"), data_word_pos: u128::MAX - 3 };
        let line = serde_json::to_string(&Message::Event(2, Box::new(TrainEvent::Checkpoint(ckpt.clone())))).unwrap();
        assert!(!line.contains('\n'));
        match serde_json::from_str::<Message>(&line).unwrap() {
            Message::Event(2, ev) => assert!(matches!(*ev, TrainEvent::Checkpoint(ref back) if *back == ckpt), "{ev:?}"),
            other => panic!("{other:?}"),
        }
        let line = serde_json::to_string(&Message::Event(0, Box::new(TrainEvent::Progress { step: 3 }))).unwrap();
        assert!(matches!(serde_json::from_str::<Message>(&line).unwrap(), Message::Event(0, ev) if matches!(*ev, TrainEvent::Progress { step: 3 })));
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let mut tail = Tail::default();
        assert_eq!(tail.render(), "; it printed nothing on stderr");
        for i in 0..30 {
            tail.push(format!("line {i}"));
        }
        let text = tail.render();
        assert!(text.starts_with("; its stderr ended with:\nline 10\n") && text.ends_with("line 29"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn slots_take_child_processes_as_their_pool_needs_unless_told_otherwise() {
        let exe = WorkerCommand::icl_lab("/opt/icl-lab".into());
        let p = Some(&exe);
        let (gpu, cpu) = (Device::Cuda(0), Device::Cpu);
        let some = || Some(exe.clone());
        let one_run = Isolation::SharedGpuOnly;
        assert_eq!(choose("", p, &[(gpu, 4), (cpu, 1)], one_run), [some(), None]);
        assert_eq!(choose("auto", p, &[(gpu, 1), (gpu, 1)], one_run), [some(), some()], "two groups of one slot on a GPU");
        assert_eq!(choose("", p, &[(gpu, 1), (cpu, 1)], one_run), [None, None], "one CUDA slot (icl-lab run): a thread");
        // The notebook and sweeps: every slot, the CPU's and a lone GPU slot too.
        let lab = Isolation::EverySlot;
        assert_eq!(choose("", p, &[(cpu, 1)], lab), [some()]);
        assert_eq!(choose("auto", p, &[(gpu, 1), (cpu, 2)], lab), [some(), some()]);
        for isolation in [one_run, lab] {
            assert_eq!(choose("threads", p, &[(gpu, 4), (cpu, 1)], isolation), [None, None]);
            assert_eq!(choose("processes", p, &[(gpu, 1), (cpu, 1)], isolation), [some(), some()]);
            assert_eq!(choose("processes", None, &[(gpu, 4)], isolation), [None], "no program registered: threads");
            assert_eq!(choose("", None, &[(cpu, 1)], isolation), [None], "no program registered: threads");
        }
        assert_eq!(exe.args, vec![OsString::from("slot-worker")]);
    }
}

//! `icl-lab sweep` end to end on the CPU: every run of a sweep file trains through the worker
//! pool and lands in the store; --dry-run records nothing; Ctrl-C interrupts every run, queued
//! or running; bad flags and specs are one clear line with exit code 2.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};

use icl_lab::store::{RunStore, SledStore, Status};

mod common;

/// Two archs x two seeds: tiny-gpt2-s0, tiny-gpt2-s1, tiny-mamba-s0, tiny-mamba-s1.
fn sweep_text(steps: usize) -> String {
    common::tiny_sweep("tiny", "[0, 1]", steps, true)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icl-lab")).arg("--store").arg(store).arg("sweep").args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn every_run_of_a_sweep_trains_over_two_slot_groups_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "tiny.toml", &sweep_text(40));
    let store = dir.path().join("store");
    let out = sweep(&store, &[spec.to_str().unwrap(), "--devices", "cpu,cpu", "--tag", "batch1", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["counts"]["done"], 4, "{v:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("queued 4 runs (ids 1-4)") && stderr.contains("on 1x cpu, 1x cpu"), "{stderr}");
    assert_eq!(stderr.matches("finish #").count(), 4, "a line per finished run: {stderr}");

    let s = SledStore::open(&store).unwrap();
    let mut names: Vec<String> = s.list().unwrap().iter().map(|r| r.spec.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["tiny-gpt2-s0", "tiny-gpt2-s1", "tiny-mamba-s0", "tiny-mamba-s1"]);
    for r in s.list().unwrap() {
        assert_eq!(r.status, Status::Done);
        assert!(r.tags.contains("batch1"));
        assert_eq!(s.metrics(r.id).unwrap().last().map(|m| m.step), Some(40));
        assert!(!s.evals(r.id).unwrap().is_empty());
    }
}

#[test]
fn dry_run_lists_scaled_runs_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "tiny.toml", &sweep_text(400));
    let store = dir.path().join("store");
    let out = sweep(&store, &[spec.to_str().unwrap(), "--dry-run", "--json", "--scale", "0.25"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r["train"]["steps"] == 100 && r["train"]["eval_every"] == 5), "{v:#}");
    assert!(!store.exists(), "a dry run opens no store");
}

/// Asserts exit code 2 and one `error:` line containing `phrase`.
fn assert_bad_input(out: &Output, phrase: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(phrase), "{stderr}");
}

#[test]
fn bad_flags_and_sweeps_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "tiny.toml", &sweep_text(40));
    let store = dir.path().join("store");
    let f = spec.to_str().unwrap();
    assert_bad_input(&sweep(&store, &[f, "--devices", "cpu,cuda:x"]), "--devices: entry \"cuda:x\"");
    assert_bad_input(&sweep(&store, &[f, "--devices", "cuda:64"]), "--devices: entry \"cuda:64\"");
    assert_bad_input(&sweep(&store, &[f, "--scale", "1.5"]), "--scale must be in (0, 1], got 1.5");
    assert_bad_input(&sweep(&store, &[f, "--tag", "a b"]), "bad tag \"a b\"");
    assert_bad_input(&sweep(&store, &[f, "--members", "0"]), "--members <N>");
    let bad = write(dir.path(), "bad.toml", &sweep_text(40).replace("arch = \"mamba\"\nn_embd = 16", "arch = \"mamba\"\nn_embd = 0"));
    assert_bad_input(&sweep(&store, &[bad.to_str().unwrap()]), "bad.toml: models[1].n_embd must be >= 1, got 0");
    // The same runs twice (one file given twice) would collide by name.
    let out = sweep(&store, &[f, f, "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run name \"tiny-gpt2-s0\" is also a run of"), "{}", text(&out));
    assert!(!store.exists(), "bad input opens no store");
}

/// A 4-run sweep of 1,000,000-step runs on one CPU slot (`env` set), once run #1 has started:
/// the process, the rest of its stderr and its store.
fn start_long_sweep(dir: &Path, env: &[(&str, &str)]) -> (Child, Lines<BufReader<ChildStderr>>, PathBuf) {
    let spec = write(dir, "long.toml", &sweep_text(1_000_000));
    let store = dir.join("store");
    // One slot: one run trains, three wait in the queue.
    let mut child = Command::new(env!("CARGO_BIN_EXE_icl-lab"))
        .envs(env.iter().copied())
        .arg("--store")
        .arg(&store)
        .args(["sweep", spec.to_str().unwrap(), "--devices", "cpu"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("start  #1") {
            break;
        }
    }
    (child, lines, store)
}

/// Ctrl-C to a sweep of `start_long_sweep` after `wait_ms`: it exits 130 with all four runs
/// interrupted, the one that trained resumable. Returns that run's checkpoint directory.
fn interrupt_long_sweep(mut child: Child, lines: Lines<BufReader<ChildStderr>>, store: &Path, wait_ms: u64) -> PathBuf {
    std::thread::sleep(std::time::Duration::from_millis(wait_ms));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert_eq!(rest.iter().filter(|l| l.starts_with("finish #") && l.contains("interrupted")).count(), 4, "{rest:?}");
    let s = SledStore::open(store).unwrap();
    let runs = s.list().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r.status == Status::Interrupted), "{:?}", runs.iter().map(|r| &r.status).collect::<Vec<_>>());
    let trained = runs.iter().find(|r| r.step > 0).expect("the running one trained a while");
    store.join(&trained.checkpoint.as_ref().expect("it can be resumed").dir)
}

/// With every slot a thread of the sweep's process (`ICL_LAB_SLOTS=threads`).
#[test]
fn ctrl_c_interrupts_every_run_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, store) = start_long_sweep(dir.path(), &[("ICL_LAB_SLOTS", "threads")]);
    interrupt_long_sweep(child, lines, &store, 300);
}

/// The pids of live `slot-worker` children of process `parent` (Linux: read from /proc).
#[cfg(target_os = "linux")]
fn slot_workers_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let (Ok(stat), Ok(cmdline)) = (std::fs::read_to_string(entry.path().join("stat")), std::fs::read(entry.path().join("cmdline"))) else {
            continue;
        };
        // stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ppid = fields.get(1).and_then(|p| p.parse::<u32>().ok());
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if ppid == Some(parent) && fields.first() != Some(&"Z") && args.contains(&&b"slot-worker"[..]) {
            found.push(pid);
        }
    }
    found
}

/// `ICL_LAB_SLOTS=processes` (the default for every slot of a sweep or the notebook): each run
/// trains in a child process of its own, and the store ends as with threads: the same runs,
/// done, with their metrics, curves and (same seed, same data) the same losses up to rounding.
#[cfg(target_os = "linux")]
#[test]
fn runs_in_child_processes_land_in_the_store_as_runs_in_threads_do() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "tiny.toml", &sweep_text(40));
    let mut finals = Vec::new();
    // Then each arch's two seeds as the members of one stacked model, in a child process and
    // in a thread: the same runs again, each as if it had trained alone.
    for (mode, members) in [("processes", "1"), ("threads", "1"), ("processes", "2"), ("threads", "2")] {
        let store = dir.path().join(format!("{mode}-{members}"));
        let out = Command::new(env!("CARGO_BIN_EXE_icl-lab"))
            .env("ICL_LAB_SLOTS", mode)
            .arg("--store")
            .arg(&store)
            .args(["sweep", spec.to_str().unwrap(), "--devices", "cpu,cpu", "--members", members, "--json"])
            .output()
            .unwrap();
        let mode = format!("{mode}, {members} per slot");
        assert!(out.status.success(), "{mode}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["counts"]["done"], 4, "{mode}: {v:#}");
        let s = SledStore::open(&store).unwrap();
        // The steady rate is the run's last logged window (what `bench slots` reports).
        for r in v["runs"].as_array().unwrap() {
            let id = r["id"].as_u64().unwrap();
            let last = s.metrics(id).unwrap().last().unwrap().steps_per_s;
            assert_eq!(r["steady_steps_per_s"].as_f64(), Some(last), "{mode}: {r}");
        }
        let mut runs: Vec<(String, Vec<(usize, f32)>)> = Vec::new();
        for r in s.list().unwrap() {
            assert_eq!(r.status, Status::Done, "{mode}");
            assert!(r.params.is_some_and(|p| p > 0), "{mode}: the Started event arrived");
            assert!(!s.evals(r.id).unwrap().is_empty(), "{mode}: the evaluations arrived");
            let metrics = s.metrics(r.id).unwrap();
            assert_eq!(metrics.last().map(|m| m.step), Some(40), "{mode}");
            runs.push((r.spec.name.clone(), metrics.iter().map(|m| (m.step, m.loss)).collect()));
        }
        runs.sort_by(|a, b| a.0.cmp(&b.0));
        finals.push(runs);
    }
    // The same runs, steps and losses; the CPU backend's parallel sums may differ in the last
    // bits from one process to another (seen: 1 in 1e7 after 25 steps).
    let threads = &finals[1];
    for (other, how) in [(&finals[0], "in a child process"), (&finals[2], "a member in a child process"), (&finals[3], "a member in a thread")] {
        assert_eq!(other.iter().map(|r| &r.0).collect::<Vec<_>>(), threads.iter().map(|r| &r.0).collect::<Vec<_>>());
        for ((name, a), (_, b)) in other.iter().zip(threads) {
            assert_eq!(a.iter().map(|p| p.0).collect::<Vec<_>>(), b.iter().map(|p| p.0).collect::<Vec<_>>(), "{name}: the same steps");
            for (&(step, x), &(_, y)) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{name} step {step}: loss {x} {how}, {y} alone in a thread");
            }
        }
    }
}

/// The slot workers of `parent` once there is one: "start" is printed as the slot takes the
/// run, just before it starts its child.
#[cfg(target_os = "linux")]
fn wait_for_slot_workers(parent: u32) -> Vec<u32> {
    let mut workers = slot_workers_of(parent);
    for _ in 0..100 {
        if !workers.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        workers = slot_workers_of(parent);
    }
    workers
}

/// Ctrl-C with runs in child processes (a sweep's default, CPU slots too): the children are
/// the pool's (own process group, so the terminal's Ctrl-C reaches only the pool), each stops
/// after its current step and saves a checkpoint, every run ends interrupted, and no child
/// outlives the sweep.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_stops_runs_in_child_processes_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, store) = start_long_sweep(dir.path(), &[]);
    let workers = wait_for_slot_workers(child.id());
    assert_eq!(workers.len(), 1, "one slot, one child process: {workers:?}");
    let ckpt = interrupt_long_sweep(child, lines, &store, 1500);
    assert!(ckpt.join("model.bin").exists(), "the child wrote its checkpoint into the store: {}", ckpt.display());
    assert!(!Path::new(&format!("/proc/{}", workers[0])).exists(), "the child process ended with the sweep");
}

/// A run whose process dies (here killed, as the kernel's out-of-memory killer or an abort
/// would end it) fails alone: the sweep, like the notebook, lives on and trains the next run.
#[cfg(target_os = "linux")]
#[test]
fn a_run_whose_process_dies_fails_alone_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines, store) = start_long_sweep(dir.path(), &[]);
    let workers = wait_for_slot_workers(child.id());
    assert_eq!(workers.len(), 1, "run #1 in a child process by default: {workers:?}");
    Command::new("kill").args(["-KILL", &workers[0].to_string()]).status().unwrap();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let next_started = line.starts_with("start  #2");
        seen.push(line);
        if next_started {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.starts_with("finish #1") && l.contains("failed")), "{seen:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{rest:?}");
    let s = SledStore::open(&store).unwrap();
    let runs = s.list().unwrap();
    let status = |id: u64| runs.iter().find(|r| r.id == id).map(|r| r.status.clone()).unwrap();
    match status(1) {
        Status::Failed { reason } => assert!(reason.contains("SIGKILL"), "{reason}"),
        other => panic!("run 1: {other:?}"),
    }
    assert!((2..=4).all(|id| status(id) == Status::Interrupted), "{:?}", runs.iter().map(|r| (r.id, &r.status)).collect::<Vec<_>>());
}

//! `icl-lab sweep` end to end on the CPU: every run of a sweep file trains through the worker
//! pool and lands in the store; --dry-run records nothing; Ctrl-C interrupts every run, queued
//! or running; bad flags and specs are one clear line with exit code 2.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
    let bad = write(dir.path(), "bad.toml", &sweep_text(40).replace("arch = \"mamba\"\nn_embd = 16", "arch = \"mamba\"\nn_embd = 0"));
    assert_bad_input(&sweep(&store, &[bad.to_str().unwrap()]), "bad.toml: models[1].n_embd must be >= 1, got 0");
    // The same runs twice (one file given twice) would collide by name.
    let out = sweep(&store, &[f, f, "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run name \"tiny-gpt2-s0\" is also a run of"), "{}", text(&out));
    assert!(!store.exists(), "bad input opens no store");
}

#[test]
fn ctrl_c_interrupts_every_run_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "long.toml", &sweep_text(1_000_000));
    let store = dir.path().join("store");
    // One slot: one run trains, three wait in the queue.
    let mut child = Command::new(env!("CARGO_BIN_EXE_icl-lab"))
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
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert_eq!(rest.iter().filter(|l| l.starts_with("finish #") && l.contains("interrupted")).count(), 4, "{rest:?}");
    let s = SledStore::open(&store).unwrap();
    let runs = s.list().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r.status == Status::Interrupted), "{:?}", runs.iter().map(|r| &r.status).collect::<Vec<_>>());
    let trained = runs.iter().find(|r| r.step > 0).expect("the running one trained a while");
    assert!(trained.checkpoint.is_some(), "it can be resumed");
}

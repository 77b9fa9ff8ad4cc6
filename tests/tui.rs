//! The TUI end to end in a real pseudo-terminal (tmux): open it on a temp store, launch a quick
//! experiment from the form (two seeds), wait for both runs, compare them, quit; the store then
//! holds both runs, done.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// tmux, installed from the distribution's packages if missing (as CI machines may lack it).
fn ensure_tmux() {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return;
    }
    let sudo = if unsafe { libc_geteuid() } == 0 { vec![] } else { vec!["sudo", "-n"] };
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.clone();
        all.extend_from_slice(args);
        Command::new(all[0]).args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive").status()
    };
    let _ = run(&["apt-get", "update", "-q"]);
    let ok = run(&["apt-get", "install", "-y", "-q", "tmux"]).is_ok_and(|s| s.success());
    assert!(ok, "this test needs tmux and could not install it (apt-get install tmux)");
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs (CI installs it: see .ci/run)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session])
}

fn keys(session: &str, keys: &[&str]) {
    for k in keys {
        tmux(&["send-keys", "-t", session, k]);
        std::thread::sleep(Duration::from_millis(60));
    }
}

/// Waits until the screen contains `text`; fails with the screen after `secs`.
fn wait_for(session: &str, text: &str, secs: u64) -> String {
    let start = Instant::now();
    loop {
        let s = screen(session);
        if s.contains(text) {
            return s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            tmux(&["kill-session", "-t", session]);
            panic!("timed out waiting for {text:?}; screen:\n{s}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn launch_from_the_form_watch_compare_and_quit() {
    ensure_tmux();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let session = format!("icl-lab-e2e-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_icl-lab");
    let root = env!("CARGO_MANIFEST_DIR");
    let cmd = format!(
        "cd {root} && ICL_LAB_HOME={} {bin} --fps 20; echo EXITED $? > {}",
        store.display(),
        dir.path().join("exit").display()
    );
    tmux(&["new-session", "-d", "-s", &session, "-x", "200", "-y", "50", &cmd]);
    wait_for(&session, "No runs yet", 20);

    // New experiment: load the quick linear-regression file, then 30 steps, seeds 0 and 1.
    keys(&session, &["5", "C-l"]);
    wait_for(&session, "load an experiment", 5);
    let files = screen(&session);
    let quick = files.lines().position(|l| l.contains("quick/linear_regression.toml")).unwrap();
    let first = files.lines().position(|l| l.contains(".toml")).unwrap();
    for _ in first..quick {
        keys(&session, &["Down"]);
    }
    keys(&session, &["Enter"]);
    wait_for(&session, "loaded experiments/quick/linear_regression.toml", 5);
    // Seeds is the 10th field, steps the 11th.
    for _ in 0..9 {
        keys(&session, &["j"]);
    }
    keys(&session, &["Enter", "BSpace", "0", "-", "1", "Enter", "j", "Enter", "BSpace", "BSpace", "BSpace", "BSpace", "3", "0", "Enter"]);
    wait_for(&session, "2 runs (1 arch x 2 seed)", 5);
    keys(&session, &["C-r"]);
    wait_for(&session, "queued 2 runs", 5);

    // Both finish (each ~2 s of training on a CPU).
    keys(&session, &["1"]);
    let start = Instant::now();
    loop {
        let s = screen(&session);
        if s.matches(" done ").count() >= 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "runs did not finish:\n{s}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Select both and compare.
    keys(&session, &["g", "Space", "Space", "c"]);
    let s = wait_for(&session, "config keys differ", 5);
    assert!(s.contains("seed"), "{s}");
    assert!(s.contains("x2 seeds"), "seed groups are drawn as one band:\n{s}");
    keys(&session, &["q"]);
    let exit = dir.path().join("exit");
    let start = Instant::now();
    while !exit.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "the TUI did not quit:\n{}", screen(&session));
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux(&["kill-session", "-t", &session]);
    assert_eq!(std::fs::read_to_string(&exit).unwrap().trim(), "EXITED 0");

    let out = Command::new(bin).arg("--store").arg(&store).args(["ls", "--json"]).output().unwrap();
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 2);
    for r in &runs {
        assert_eq!(r["status"]["state"], "done");
        assert_eq!(r["step"], 30);
    }
    assert!(Path::new(&store).join("store.json").exists());
}

#[test]
fn a_store_held_by_another_process_is_followed_live() {
    ensure_tmux();
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = dir.path().join("long.toml");
    let quick = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quick/linear_regression.toml")).unwrap();
    std::fs::write(&spec, quick.replace("n_embd = 64", "n_embd = 16").replace("steps = 2000", "steps = 1000000")).unwrap();
    let bin = env!("CARGO_BIN_EXE_icl-lab");
    let mut child = Command::new(bin)
        .arg("--store")
        .arg(&store)
        .args(["run", spec.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    common::read_until(&mut stderr, |l| l.contains("parameters"));
    std::thread::spawn(move || for _ in stderr.lines() {});

    let session = format!("icl-lab-follow-{}", std::process::id());
    let cmd = format!("{bin} --store {} --fps 20", store.display());
    tmux(&["new-session", "-d", "-s", &session, "-x", "200", "-y", "50", &cmd]);
    wait_for(&session, &format!("following pid {}", child.id()), 20);
    // tmux may capture a frame half drawn (the title bar without the table): wait for the row.
    let first = wait_for(&session, "/1000000", 20);
    let step_of = |screen: &str| -> usize {
        let row = screen.lines().find(|l| l.contains("linear_regression")).unwrap_or_else(|| panic!("no run row:\n{screen}"));
        let cell = row.split_whitespace().find(|w| w.ends_with("/1000000")).unwrap_or_else(|| panic!("no step cell: {row}"));
        cell.split('/').next().unwrap().parse().unwrap()
    };
    let before = step_of(&first);
    std::thread::sleep(Duration::from_secs(5));
    let after = step_of(&screen(&session));
    keys(&session, &["q"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["kill-session", "-t", &session]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(after > before, "the followed run did not move on screen: {before} -> {after}");
}

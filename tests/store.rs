//! The run store end to end: crash safety under SIGKILL, concurrent writers, divergence, bad
//! store paths, and the browse/export/bundle commands.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use icl_lab::runtime::{Device, Job, Pool};
use icl_lab::spec::ExperimentSpec;
use icl_lab::store::{NewRun, RunStore, SledStore, Status, Writer};

/// A model small enough that a step takes milliseconds on a CPU.
fn tiny_spec(name: &str, lr: f64, steps: usize, checkpoint_every: usize) -> String {
    format!(
        r#"
name = "{name}"
device = "cpu"
[task]
kind = "linear_regression"
n_dims = 3
[model]
arch = "gpt2"
n_embd = 16
n_layer = 1
n_head = 2
n_positions = 5
[train]
steps = {steps}
batch_size = 8
lr = {lr:e}
eval_every = 25
eval_prompts = 16
log_every = 1
checkpoint_every = {checkpoint_every}
[train.curriculum]
dims = {{ start = 3, end = 3 }}
points = {{ start = 5, end = 5 }}
"#
    )
}

fn bin(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_icl-lab"));
    c.arg("--store").arg(store);
    c
}

fn run_ok(store: &Path, args: &[&str]) -> String {
    let out = bin(store).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn show(store: &Path, id: u64) -> serde_json::Value {
    serde_json::from_str(&run_ok(store, &["show", &id.to_string(), "--json"])).unwrap()
}

fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A small deterministic generator for kill times (no extra dependency for one number).
struct Lcg(u64);
impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_point() {
    let kills: usize = std::env::var("ICL_LAB_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = write_spec(dir.path(), "tiny.toml", &tiny_spec("crash", 1e-3, 1_000_000, 15));
    let mut rng = Lcg(0x1c1_1ab);
    let mut resumed = 0;
    for round in 0..kills {
        let mut child = bin(&store)
            .args(["run", spec.to_str().unwrap(), "--ack-flushes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let acked: Arc<Mutex<(Option<u64>, usize)>> = Arc::default();
        let reader = {
            let acked = acked.clone();
            let stderr = BufReader::new(child.stderr.take().unwrap());
            std::thread::spawn(move || {
                for line in stderr.lines().map_while(Result::ok) {
                    // SIGKILL may tear the last line ("flushed run=3"): only whole ones count.
                    let ack = line.strip_prefix("flushed run=").and_then(|rest| rest.split_once(" step="));
                    if let Some((Ok(run), Ok(step))) = ack.map(|(r, s)| (r.parse(), s.parse())) {
                        *acked.lock().unwrap() = (Some(run), step);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(rng.next_ms(150, 2500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let (run, acked_step) = *acked.lock().unwrap();
        let id = round as u64 + 1;
        if let Some(run) = run {
            assert_eq!(run, id);
        }
        let v = show(&store, id);
        assert_eq!(v["run"]["status"]["state"], "interrupted", "round {round}");
        let steps: Vec<u64> = v["metrics"].as_array().unwrap().iter().map(|m| m["step"].as_u64().unwrap()).collect();
        let unique: BTreeSet<u64> = steps.iter().copied().collect();
        assert_eq!(unique.len(), steps.len(), "round {round}: duplicated points");
        for s in 1..=acked_step as u64 {
            assert!(unique.contains(&s), "round {round}: acknowledged step {s} lost (acked {acked_step})");
        }
        // Resumable: continue two of the killed runs a few steps past their checkpoint.
        if round % 10 == 0 || round + 1 == kills {
            let from = v["run"]["checkpoint"]["step"].as_u64().unwrap_or(0);
            let to = (from + 5).to_string();
            run_ok(&store, &["resume", &id.to_string(), "--steps", &to]);
            let after = show(&store, id);
            assert_eq!(after["run"]["status"]["state"], "done");
            assert_eq!(after["run"]["step"].as_u64().unwrap(), from + 5);
            resumed += 1;
        }
    }
    assert!(resumed >= 2);
    let ls = run_ok(&store, &["ls", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&ls).unwrap();
    assert_eq!(runs.len(), kills);
}

fn run_pool(store: &Arc<SledStore>, specs: Vec<ExperimentSpec>, slots: usize) -> Vec<u64> {
    let writer = Writer::spawn(store.clone(), None);
    let pool = Pool::new(vec![(Device::Cpu, slots)], Some(writer.sender()), Some(store.path()));
    let mut ids = Vec::new();
    for spec in specs {
        let rec = store.create_run(NewRun { spec: spec.clone(), git_commit: None, tags: Default::default() }).unwrap();
        pool.submit(Job { run: rec.id, uid: rec.uid, spec, resume: None, train_s: 0.0 }).unwrap();
        ids.push(rec.id);
    }
    pool.wait_idle();
    drop(pool);
    drop(writer);
    ids
}

#[test]
fn eight_runs_on_four_slots_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let specs: Vec<ExperimentSpec> = (0..8)
        .map(|i| {
            let mut s = ExperimentSpec::from_toml(&tiny_spec(&format!("c{i}"), 1e-3, 60, 20)).unwrap();
            s.seed = i;
            s
        })
        .collect();
    let ids = run_pool(&store, specs, 4);
    for id in ids {
        let rec = store.get(id).unwrap();
        assert_eq!(rec.status, Status::Done, "run {id}");
        let steps: Vec<usize> = store.metrics(id).unwrap().iter().map(|m| m.step).collect();
        assert_eq!(steps, (1..=60).collect::<Vec<_>>(), "run {id}");
        let evals: Vec<usize> = store.evals(id).unwrap().iter().map(|e| e.step).collect();
        assert_eq!(evals, [25, 50, 60], "run {id}");
        assert_eq!(rec.checkpoint.as_ref().map(|c| c.step), Some(60));
        // Only the latest checkpoint is kept.
        let kept = std::fs::read_dir(dir.path().join("checkpoints").join(&rec.uid)).unwrap().count();
        assert_eq!(kept, 1, "run {id}");
    }
}

#[test]
fn a_diverging_run_ends_diverged_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let specs = vec![
        ExperimentSpec::from_toml(&tiny_spec("wild", 1e12, 200, 50)).unwrap(),
        ExperimentSpec::from_toml(&tiny_spec("calm", 1e-3, 40, 50)).unwrap(),
    ];
    let ids = run_pool(&store, specs, 2);
    let wild = store.get(ids[0]).unwrap();
    match wild.status {
        Status::Diverged { step, loss } => {
            assert!((1..200).contains(&step), "step {step}");
            assert!(!loss.is_finite());
            assert_eq!(store.metrics(ids[0]).unwrap().last().unwrap().step, step);
        }
        other => panic!("expected diverged, got {other}"),
    }
    assert_eq!(store.get(ids[1]).unwrap().status, Status::Done);
}

fn assert_bad_store(out: &Output, phrase: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(phrase), "{stderr}");
}

#[test]
fn a_file_or_foreign_directory_as_the_store_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("thesis.pdf");
    std::fs::write(&file, b"%PDF precious").unwrap();
    assert_bad_store(&bin(&file).arg("ls").output().unwrap(), "is a file");
    assert_eq!(std::fs::read(&file).unwrap(), b"%PDF precious");
    assert_bad_store(&bin(dir.path()).arg("ls").output().unwrap(), "no store.json");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn browse_tag_note_compare_export_bundle_and_rm() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let spec = write_spec(dir.path(), "t.toml", &tiny_spec("browse", 1e-3, 30, 10));
    let s = spec.to_str().unwrap();
    run_ok(&a, &["run", s, "--tag", "first"]);
    run_ok(&a, &["run", s, "--seed", "4"]);
    run_ok(&a, &["run", s, "--steps", "20"]);

    let table = run_ok(&a, &["ls"]);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.lines().next().unwrap().starts_with("ID  STATUS"));
    assert!(run_ok(&a, &["ls", "tag:first"]).lines().count() == 2);
    let sorted: Vec<serde_json::Value> =
        serde_json::from_str(&run_ok(&a, &["ls", "--sort", "step", "--json"])).unwrap();
    assert_eq!(sorted[0]["id"], 3);

    run_ok(&a, &["tag", "1-2", "paper", "sweep"]);
    run_ok(&a, &["tag", "2", "sweep", "--remove"]);
    run_ok(&a, &["note", "1", "lr looks too high"]);
    run_ok(&a, &["note", "1", "second thought"]);
    let one = show(&a, 1);
    assert_eq!(one["run"]["tags"], serde_json::json!(["first", "paper", "sweep"]));
    assert_eq!(one["run"]["note"], "lr looks too high\nsecond thought");
    assert_eq!(show(&a, 2)["run"]["tags"], serde_json::json!(["paper"]));

    let cmp = run_ok(&a, &["compare", "1", "2", "--json"]);
    let cmp: serde_json::Value = serde_json::from_str(&cmp).unwrap();
    let diff = cmp["config_diff"].as_object().unwrap();
    assert_eq!(diff.keys().collect::<Vec<_>>(), ["seed"], "only the changed key");
    assert!(run_ok(&a, &["compare", "1,3"]).contains("train.steps"));

    let csv = run_ok(&a, &["export", "1", "--format", "csv", "--series", "metrics"]);
    assert_eq!(csv.lines().count(), 31);
    let md = run_ok(&a, &["export", "1-3", "--format", "md"]);
    assert!(md.contains("| id | name |") && md.contains("### Run 3"));

    let bundle = dir.path().join("ab.bundle");
    run_ok(&a, &["export", "1-3", "--bundle", bundle.to_str().unwrap()]);
    run_ok(&b, &["import", bundle.to_str().unwrap()]);
    run_ok(&b, &["import", bundle.to_str().unwrap()]);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&run_ok(&b, &["ls", "--json"])).unwrap();
    assert_eq!(runs.len(), 3, "importing twice adds nothing");
    assert_eq!(show(&a, 2)["metrics"], show(&b, 2)["metrics"]);
    // An imported run continues on the other machine from its checkpoint.
    run_ok(&b, &["resume", "3", "--steps", "30"]);
    assert_eq!(show(&b, 3)["run"]["step"], 30);

    let refused = bin(&a).args(["rm", "2"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(run_ok(&a, &["ls", "--json"]).matches("\"uid\"").count(), 3);
    bin(&a).args(["rm", "2", "--yes"]).output().unwrap();
    let left: Vec<serde_json::Value> = serde_json::from_str(&run_ok(&a, &["ls", "--json"])).unwrap();
    assert_eq!(left.iter().map(|r| r["id"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3]);
}

#[test]
fn a_second_process_is_told_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let spec = write_spec(dir.path(), "long.toml", &tiny_spec("long", 1e-3, 1_000_000, 1000));
    let mut child = bin(&store).args(["run", spec.to_str().unwrap()]).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    common::read_until(&mut stderr, |l| l.contains("parameters"));
    let out = bin(&store).arg("ls").output().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains(&format!("store in use by pid {}", child.id())), "{err}");
}

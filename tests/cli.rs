//! The `icl-lab` binary end to end: bad input gets one clear line and exit code 2; a tiny run
//! trains, prints the curve table, and `--json` prints the same as JSON.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

const QUICK: &str = include_str!("../experiments/quick/linear_regression.toml");

/// The binary on a store of its own (tests run in parallel; a store admits one process).
fn bin() -> Command {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let home = std::env::temp_dir().join(format!("icl-lab-cli-store-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_icl-lab"));
    cmd.env("ICL_LAB_HOME", home);
    cmd
}

fn temp_spec(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("icl-lab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// Asserts exit code 2 and one `error:` line on stderr containing `phrase`.
fn assert_bad_input(out: &Output, phrase: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(phrase), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

fn bad_spec(name: &str, from: &str, to: &str, phrase: &str) {
    assert!(QUICK.contains(from), "fixture text {from:?} missing");
    let path = temp_spec(name, &QUICK.replace(from, to));
    assert_bad_input(&run(&["run", path.to_str().unwrap(), "--device", "cpu"]), phrase);
}

#[test]
fn unknown_task() {
    bad_spec("task.toml", "\"linear_regression\"", "\"cubic_regression\"", "unknown variant `cubic_regression`");
}

#[test]
fn negative_dims() {
    bad_spec("dims.toml", "n_dims = 5", "n_dims = -5", "invalid value: integer `-5`");
}

#[test]
fn nan_lr() {
    bad_spec("lr.toml", "lr = 1e-3", "lr = nan", "train.lr must be > 0 and finite, got NaN");
}

#[test]
fn points_beyond_positions() {
    bad_spec(
        "points.toml",
        "points = { start = 11, end = 11 }",
        "points = { start = 11, end = 12 }",
        "train.curriculum.points.end makes prompts of 24 tokens for this task: must fit 2 x model.n_positions (22 tokens), got 12",
    );
}

#[test]
fn toml_syntax_error() {
    bad_spec("syntax.toml", "[train]", "[train", "line ");
}

#[test]
fn missing_file() {
    assert_bad_input(&run(&["run", "/nonexistent/spec.toml"]), "cannot read /nonexistent/spec.toml");
}

#[test]
fn bad_device_flag() {
    let path = temp_spec("ok.toml", QUICK);
    assert_bad_input(&run(&["run", path.to_str().unwrap(), "--device", "tpu"]), "device must be auto, cpu, cuda or cuda:N");
}

#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    if icl_lab::runtime::device::cuda_device_count().is_ok_and(|n| n > 0) {
        return; // this machine has a GPU: nothing to check
    }
    let path = temp_spec("ok2.toml", QUICK);
    assert_bad_input(&run(&["run", path.to_str().unwrap(), "--device", "cuda:0"]), "use --device cpu");
}

#[test]
fn tiny_run_prints_table_and_json() {
    let path = temp_spec("tiny.toml", QUICK);
    let p = path.to_str().unwrap();
    let out = run(&["run", p, "--device", "cpu", "--steps", "20"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("done after 20 steps on cpu"), "{stdout}");
    assert!(stdout.contains("least_squares"), "{stdout}");
    // One row per number of in-context examples, 0..=10.
    let rows = stdout.lines().filter(|l| l.split_whitespace().next().is_some_and(|w| w.parse::<usize>().is_ok())).count();
    assert_eq!(rows, 11, "{stdout}");

    let out = run(&["run", p, "--device", "cpu", "--steps", "20", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["outcome"]["status"], "done");
    assert_eq!(v["steps"], 20);
    assert!(v["params"].as_u64().unwrap() > 0);
    let model = v["final_eval"]["model"]["mean"].as_array().unwrap();
    assert_eq!(model.len(), 11);
    let baselines = v["final_eval"]["baselines"].as_array().unwrap();
    let ls = baselines.iter().find(|b| b["name"] == "least_squares").expect("a least-squares curve");
    // Least squares is exact once there are more examples than dims.
    assert!(ls["mean"][8].as_f64().unwrap() < 1e-3);
}

/// `--bundle-out` where no folder can be made (under a file) fails before anything trains,
/// and leaves no run behind.
#[test]
fn a_bundle_that_cannot_be_written_fails_before_training() {
    let path = temp_spec("bundle_fast.toml", QUICK);
    let store = std::env::temp_dir().join(format!("icl-lab-cli-bundle-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let bundle = path.join("out.bundle"); // under the spec file: not a folder
    let out = bin().args(["--store", store.to_str().unwrap(), "run", path.to_str().unwrap(), "--device", "cpu", "--steps", "5", "--bundle-out", bundle.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("--bundle-out {}: cannot create its folder {}", bundle.display(), path.display())), "{stderr}");
    assert!(!stderr.contains("eval @") && !stderr.contains("panicked"), "trained or panicked: {stderr}");
    let ls = bin().args(["--store", store.to_str().unwrap(), "ls"]).output().unwrap();
    let listed = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success() && !listed.contains("linear_regression"), "a run was left: {listed}");
}

#[test]
fn ctrl_c_stops_cleanly_after_the_current_step() {
    use std::io::BufReader;
    use std::process::Stdio;

    let path = temp_spec("long.toml", QUICK);
    let mut child = bin()
        .args(["run", path.to_str().unwrap(), "--device", "cpu", "--steps", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training has started, then interrupt as a terminal would.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    common::read_until(&mut stderr, |l| l.contains("parameters"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{rest}");
    assert!(rest.contains("stopping after the current step"), "{rest}");
    assert!(rest.contains("stopped cleanly after step"), "{rest}");
    assert!(stdout.contains("interrupted after"), "{stdout}");
    // The curve of the model as it stood is still printed, and how to continue.
    assert!(stdout.contains("ICL curve at step"), "{stdout}");
    assert!(rest.contains("continue with: icl-lab resume 1"), "{rest}");
}

/// `report` on a store with two seeds of one experiment: one Markdown row with both seeds, the
/// rule, and an SVG of the curves; an empty selection is bad input naming the prefix.
#[test]
fn report_tabulates_seeds_and_writes_svg_curves() {
    let home = std::env::temp_dir().join(format!("icl-lab-cli-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let spec = temp_spec("report.toml", QUICK);
    let with_home = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_icl-lab"));
        cmd.env("ICL_LAB_HOME", &home).args(args).output().expect("the binary runs")
    };
    for seed in ["0", "1"] {
        let out = with_home(&["run", spec.to_str().unwrap(), "--device", "cpu", "--steps", "10", "--seed", seed]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let plots = home.join("plots");
    let out = with_home(&["report", "--plots", plots.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("Rule: "), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("| linear_regression | quick-linear-regression |")).expect("a row");
    assert!(row.contains("[2]") && row.contains(" / ✓"), "two seeds, the paper's ✓ beside: {row}");
    let svg = std::fs::read_to_string(plots.join("quick-linear-regression.svg")).unwrap();
    assert!(svg.contains("gpt2 (2 seeds)") && svg.contains("least_squares"), "{svg}");

    let json = with_home(&["report", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("stdout is JSON");
    assert_eq!(v["cells"][0]["runs"].as_array().unwrap().len(), 2);

    assert_bad_input(&with_home(&["report", "--family", "nope-"]), "no runs in families starting with \"nope-\"");
    let _ = std::fs::remove_dir_all(&home);
}

/// `bench slots` trains N copies of one config at once in one pool and reports steps/s per run
/// and together (a few steps on the CPU here; the H200's numbers are in docs/performance.md).
#[test]
fn bench_slots_measures_runs_together() {
    let out = run(&["bench", "slots", "--device", "cpu", "--runs", "1,2", "--steps", "2", "--json"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("steps/s per run") && stdout.contains("vs one run"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["runs"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    for r in rows {
        let rates: Vec<f64> = r["steps_per_s_per_run"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(rates.len() as u64, r["runs"].as_u64().unwrap(), "{r}");
        assert!(rates.iter().all(|&v| v > 0.0), "{r}");
        assert!((r["together"].as_f64().unwrap() - rates.iter().sum::<f64>()).abs() < 1e-9, "{r}");
    }
    let ratio = rows[1]["vs_one_run"].as_f64().unwrap();
    let want = rows[1]["together"].as_f64().unwrap() / rows[0]["median_per_run"].as_f64().unwrap();
    assert!((ratio - want).abs() < 1e-9, "{ratio} vs {want}");

    assert_bad_input(&run(&["bench", "slots", "--runs", "1,0"]), "--runs: \"0\" is not a number of runs from 1 to 64");
    assert_bad_input(&run(&["bench", "slots", "--config", "nope"]), "--config nope: not a config; the configs are gpt2-e128-l2-t82");
}

/// `bench members` trains K seeds of one config as one stacked model and reports each member's
/// rate and the members' together against one run (a few CPU steps here).
#[test]
fn bench_members_measures_seeds_as_one_model() {
    let out = run(&["bench", "members", "--device", "cpu", "--members", "1,2", "--steps", "2", "--json"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("steps/s per member") && stdout.contains("vs one run"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["members"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    for r in rows {
        let (each, together) = (r["steps_per_s_per_member"].as_f64().unwrap(), r["steps_per_s_together"].as_f64().unwrap());
        assert!(each > 0.0 && (together - each * r["members"].as_f64().unwrap()).abs() < 1e-9, "{r}");
    }
    let want = rows[1]["steps_per_s_together"].as_f64().unwrap() / rows[0]["steps_per_s_together"].as_f64().unwrap();
    assert!((rows[1]["vs_one_run"].as_f64().unwrap() - want).abs() < 1e-9, "{json}");
    // Member 0 is seed 0, as the lone run: the same logged losses (CPU: equal up to rounding).
    assert_eq!(rows[1]["seed0_losses"].as_array().unwrap().len(), 2, "{json}");
    assert!(rows[1]["seed0_loss_rel_gap"].as_f64().unwrap() < 1e-4, "{json}");

    assert_bad_input(&run(&["bench", "members", "--members", "4,0"]), "--members: \"0\" is not a number of runs from 1 to 64");
    assert_bad_input(&run(&["bench", "members", "--config", "nope"]), "--config nope: not a config");
    assert_bad_input(&run(&["bench", "members", "--steps", "1"]), "--steps 1: at least 2");
}

/// `bench scan` names a bad `--against` or `--kernel` before it looks for a GPU; `--against
/// none` is accepted (it then needs CUDA, which this machine may lack: either way no bad input).
#[test]
fn bench_scan_names_bad_options_before_needing_a_gpu() {
    assert_bad_input(&run(&["bench", "scan", "--against", "chunked:4,nope"]), "--against: unknown scan form \"nope\"");
    assert_bad_input(&run(&["bench", "scan", "--shape", "64,1024,512"]), "--shape 64,1024,512: expected four sizes b,l,e,n");
    assert_bad_input(&run(&["bench", "scan", "--shape", "64,0,512,16"]), "--shape 64,0,512,16: sizes must be positive");
    let out = run(&["bench", "scan", "--kernel", "warp"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'warp'"));
    let out = run(&["bench", "scan", "--against", "none", "--reps", "1", "--shape", "2,8,8,4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("--against") && !stderr.contains("panicked"), "{stderr}");
}

/// `bench attention` names a bad `--shape` (a head size with no kernel, too few sizes) before
/// it looks for a GPU; a good shape gets past input checking (then needs CUDA).
#[test]
fn bench_attention_names_a_bad_shape_before_needing_a_gpu() {
    assert_bad_input(&run(&["bench", "attention", "--shape", "64,280,96,8"]), "--shape 64,280,96,8: head size e / heads = 12 has no kernel");
    assert_bad_input(&run(&["bench", "attention", "--shape", "64,280,256"]), "--shape 64,280,256: expected four sizes b,t,e,heads");
    let out = run(&["bench", "attention", "--reps", "1", "--shape", "2,8,32,2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("--shape") && !stderr.contains("panicked"), "{stderr}");
}

/// `bench layer-norm` names a width with no kernel before it looks for a GPU.
#[test]
fn bench_layer_norm_names_a_bad_shape_before_needing_a_gpu() {
    assert_bad_input(&run(&["bench", "layer-norm", "--shape", "64,280,100"]), "--shape 64,280,100: width e = 100 has no kernel");
    assert_bad_input(&run(&["bench", "layer-norm", "--shape", "64,280"]), "--shape 64,280: expected three sizes b,t,e");
}

/// `bench matmul` names an unknown strategy or a bad shape before it looks for a GPU.
#[test]
fn bench_matmul_names_bad_options_before_needing_a_gpu() {
    assert_bad_input(&run(&["bench", "matmul", "--strategies", "auto,fastest"]), "--strategies: unknown strategy \"fastest\"");
    assert_bad_input(&run(&["bench", "matmul", "--shape", "64,0,256"]), "--shape 64,0,256: sizes must be positive");
}

/// `bench adam` on a machine without a GPU (as CI) says so, naming itself, and does not panic.
#[test]
fn bench_adam_without_a_gpu_says_so() {
    let out = run(&["bench", "adam", "--reps", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return; // a GPU is present: the bench ran
    }
    assert_ne!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bench adam") && !stderr.contains("panicked"), "{stderr}");
}

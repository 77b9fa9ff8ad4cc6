//! Slurm end to end: a single-node cluster started here (munged, slurmctld, slurmd, loopback
//! only, every file in a temporary directory), a 3-task array of tiny CPU runs submitted with
//! `icl-lab sweep --slurm DIR --submit`, collected into a store; and the bad inputs (no sbatch,
//! a controller that cannot be reached, a bundle from a newer icl-lab) without Slurm.
//!
//! Debian's `slurm-wlm` and `munge` are installed when missing; where that is impossible the
//! test fails, unless ICL_LAB_SKIP_SLURM=1 says to skip it.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use icl_lab::store::bundle::{self, BundledRun};
use icl_lab::store::{RunStore, SledStore, Status};

mod common;

/// Three runs (seeds 0-2) of a tiny GPT-2, 20 steps each.
fn sweep_text() -> String {
    common::tiny_sweep("slurm-e2e", "[0, 1, 2]", 20, false)
}

/// The store of this test process: the binary's default (never the user's).
fn test_home() -> PathBuf {
    std::env::temp_dir().join(format!("icl-lab-slurm-test-home-{}", std::process::id()))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_icl-lab"));
    c.env("ICL_LAB_HOME", test_home());
    c
}

fn text(out: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// The runs of a store, opened after the binary has let go of it.
fn runs_of(store: &Path) -> Vec<icl_lab::store::RunRecord> {
    SledStore::open(store).unwrap().list().unwrap()
}

// ---- a cluster of one node ----

/// Where `program` is: on PATH or in /usr/sbin (daemons). Found by looking, since Slurm's
/// clients fail even `-V` without a configuration.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]).map(|d| d.join(program)).find(|p| p.is_file())
}

fn have(program: &str) -> bool {
    which(program).is_some()
}

fn daemon(program: &str) -> Command {
    Command::new(which(program).unwrap_or_else(|| PathBuf::from(program)))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs slurm-wlm and munge when missing (apt-get, with sudo -n unless root). Returns false
/// only when ICL_LAB_SKIP_SLURM=1; an impossible install fails the test.
fn ensure_slurm() -> bool {
    if std::env::var("ICL_LAB_SKIP_SLURM").is_ok_and(|v| v == "1") {
        eprintln!("ICL_LAB_SKIP_SLURM=1: skipping the Slurm cluster test");
        return false;
    }
    let needed = ["slurmctld", "slurmd", "sbatch", "squeue", "munged"];
    if needed.iter().all(|p| have(p)) {
        return true;
    }
    let sudo: Vec<&str> = if is_root() { vec![] } else { vec!["sudo", "-n"] };
    let apt = |args: &[&str]| {
        let mut all = sudo.clone();
        all.extend_from_slice(args);
        Command::new(all[0]).args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive").status()
    };
    let _ = apt(&["apt-get", "update", "-q"]);
    let installed = apt(&["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]).is_ok_and(|s| s.success());
    assert!(
        installed && needed.iter().all(|p| have(p)),
        "this test needs Slurm (slurmctld, slurmd, sbatch, squeue) and munged, and could not install them \
         (apt-get install slurm-wlm munge, as root or with passwordless sudo); set ICL_LAB_SKIP_SLURM=1 to skip it"
    );
    true
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemons this test started; dropping it stops each by its pid (also when an assertion
/// failed), so nothing outlives the test.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.daemons.iter_mut().rev() {
            // SIGTERM first (slurmctld saves its state), SIGKILL if it lingers.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let until = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log_tail(&self) -> String {
        ["slurmctld.log", "slurmd.log", "munged.log"]
            .iter()
            .map(|f| {
                let t = std::fs::read_to_string(self.path(f)).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(15).collect();
                format!("--- {f}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        let out = std::fs::File::create(self.path(&format!("{name}.out"))).unwrap();
        let child = cmd
            .env("SLURM_CONF", &self.conf)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name, child));
    }

    /// munged with its own key and socket, slurmctld and slurmd on free loopback ports.
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let p = |n: &str| root.join(n);
        for d in ["state", "spool"] {
            std::fs::create_dir_all(p(d)).unwrap();
        }
        let mut key = [0u8; 1024];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key).unwrap();
        std::fs::write(p("munge.key"), key).unwrap();
        Command::new("chmod").args(["600"]).arg(p("munge.key")).status().unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = |n: &str| p(n).display().to_string();
        let conf = format!(
            "ClusterName=icllab\n\
             SlurmctldHost=localhost(127.0.0.1)\n\
             SlurmctldPort={ctld}\nSlurmdPort={slurmd}\n\
             AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={sock}\n\
             SlurmUser={user}\nSlurmdUser={user}\n\
             StateSaveLocation={state}\nSlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={ctldpid}\nSlurmdPidFile={dpid}\n\
             SlurmctldLogFile={ctldlog}\nSlurmdLogFile={dlog}\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             SchedulerType=sched/builtin\nMpiDefault=none\nReturnToService=2\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
             MinJobAge=600\n\
             NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN\n\
             PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            sock = d("munge.socket"),
            state = d("state"),
            spool = d("spool"),
            ctldpid = d("slurmctld.pid"),
            dpid = d("slurmd.pid"),
            ctldlog = d("slurmctld.log"),
            dlog = d("slurmd.log"),
        );
        let conf_path = write(&p("slurm.conf"), &conf);
        let mut c = Cluster { dir, conf: conf_path, daemons: Vec::new() };
        c.spawn(
            "munged",
            daemon("munged")
                .args(["-F", "-f"])
                .arg(format!("--socket={}", d("munge.socket")))
                .arg(format!("--key-file={}", d("munge.key")))
                .arg(format!("--pid-file={}", d("munged.pid")))
                .arg(format!("--log-file={}", d("munged.log")))
                .arg(format!("--seed-file={}", d("munged.seed"))),
        );
        c.wait_for(|| p("munge.socket").exists(), "munged's socket", 10);
        c.spawn("slurmctld", daemon("slurmctld").args(["-D", "-i"]));
        std::thread::sleep(Duration::from_millis(500));
        c.spawn("slurmd", daemon("slurmd").args(["-D", "-N", "localhost"]));
        let conf = c.conf.clone();
        c.wait_for(
            || {
                Command::new("sinfo").args(["-h", "-o", "%T"]).env("SLURM_CONF", &conf).output().is_ok_and(|o| {
                    let s = String::from_utf8_lossy(&o.stdout);
                    s.contains("idle") || s.contains("mix") || s.contains("alloc")
                })
            },
            "the node to be idle",
            30,
        );
        c
    }

    fn wait_for(&self, mut ok: impl FnMut() -> bool, what: &str, secs: u64) {
        let until = Instant::now() + Duration::from_secs(secs);
        while !ok() {
            assert!(Instant::now() < until, "waited {secs} s for {what}\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The binary with this cluster's configuration.
    fn icl_lab(&self, args: &[&str]) -> Output {
        bin().args(args).env("SLURM_CONF", &self.conf).output().unwrap()
    }

    /// Waits until no task of the job in `dir` is pending or running.
    fn wait_job(&self, dir: &Path, secs: u64) -> serde_json::Value {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.icl_lab(&["slurm", "status", dir.to_str().unwrap(), "--json"]);
            assert!(out.status.success(), "{}", text(&out));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let active =
                v["tasks"].as_array().unwrap().iter().any(|t| t["verdict"] == "active" || t["verdict"] == "not_submitted");
            if !active {
                return v;
            }
            assert!(Instant::now() < until, "the job did not end in {secs} s: {v:#}\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn a_three_task_array_runs_on_a_local_cluster_and_comes_back_as_bundles() {
    if !ensure_slurm() {
        return;
    }
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let spec = write(&work.path().join("sweep.toml"), &sweep_text());
    let job = work.path().join("job");
    let store = work.path().join("store");
    let (job_s, store_s) = (job.to_str().unwrap(), store.to_str().unwrap());

    let out = cluster.icl_lab(&["--store", store_s, "sweep", spec.to_str().unwrap(), "--slurm", job_s, "--submit", "--tag", "e2e"]);
    assert!(out.status.success(), "{}", text(&out));
    // The store remembers the job: the notebook's Queue view follows it.
    assert_eq!(icl_lab::runtime::slurm::remembered(&store), [job.canonicalize().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("array 0-2 (3 tasks)"), "{}", text(&out));
    let status = cluster.wait_job(&job, 240);
    let tasks = status["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    for t in tasks {
        assert_eq!(t["verdict"], "done", "{status:#}");
        let log = std::fs::read_to_string(t["log"].as_str().unwrap()).unwrap();
        assert!(log.contains("icl-lab: run slurm-e2e-gpt2-s"), "{log}");
    }

    let out = cluster.icl_lab(&["--store", store_s, "slurm", "collect", job_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 3 of 3 bundles"), "{}", text(&out));
    let runs = runs_of(&store);
    assert_eq!(runs.len(), 3);
    let s = SledStore::open(&store).unwrap();
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.spec.seed).collect();
    seeds.sort();
    assert_eq!(seeds, [0, 1, 2]);
    for r in &runs {
        assert_eq!(r.status, Status::Done, "{}", r.spec.name);
        assert_eq!(r.step, 20);
        assert!(r.tags.contains("e2e"));
        assert_eq!(s.metrics(r.id).unwrap().len(), 20, "loss curve of {}", r.spec.name);
        let evals = s.evals(r.id).unwrap();
        assert!(!evals.is_empty() && evals.last().unwrap().model.mean.len() == 5, "ICL curve of {}", r.spec.name);
        assert!(r.final_error.is_some());
    }
    drop(s);

    // Collecting again adds nothing.
    let out = cluster.icl_lab(&["--store", store_s, "slurm", "collect", job_s]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 added, 0 updated, 3 already there"), "{}", text(&out));
    assert_eq!(runs_of(&store).len(), 3);

    // A task whose bundle is missing is resubmitted alone.
    let lost = tasks[1]["runs"][0].as_str().unwrap().to_string();
    std::fs::remove_file(job.join("bundles").join(format!("{lost}.bundle"))).unwrap();
    let out = cluster.icl_lab(&["slurm", "resubmit", job_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("array 1 (1 tasks)"), "{}", text(&out));
    let status = cluster.wait_job(&job, 120);
    assert!(status["tasks"].as_array().unwrap().iter().all(|t| t["verdict"] == "done"), "{status:#}");
    assert_eq!(status["submissions"].as_array().unwrap().len(), 2);
    let out = cluster.icl_lab(&["--store", store_s, "slurm", "collect", job_s]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 added, 0 updated, 2 already there"), "{}", text(&out));
    assert_eq!(runs_of(&store).iter().filter(|r| r.status == Status::Done).count(), 4);

    // Task 2 as if its run had been stopped at the time limit: its bundle holds an interrupted
    // run with a checkpoint, the task ended 130. Collected, it is an interrupted run here;
    // resubmitted, the task continues that run from its bundle instead of training it again.
    let third = tasks[2]["runs"][0].as_str().unwrap().to_string();
    let third_bundle = job.join("bundles").join(format!("{third}.bundle"));
    let spec3 = job.join("specs").join(format!("{third}.toml"));
    interrupted_run(&spec3, &work.path().join("node"), &third_bundle, &["--steps", "3000"]);
    let before = bundled(&third_bundle);
    let ckpt = before.record.checkpoint.as_ref().unwrap().step;
    let first_job = status["submissions"][0]["job_id"].as_str().unwrap().to_string();
    std::fs::write(job.join("state").join(format!("{first_job}_2.exit")), "130\n").unwrap();
    let out = cluster.icl_lab(&["--store", store_s, "slurm", "collect", job_s]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 added, 0 updated, 2 already there"), "{}", text(&out));
    let out = cluster.icl_lab(&["slurm", "resubmit", job_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("array 2 (1 tasks)"), "{}", text(&out));
    let plan = format!("task 2: {third} resumes from its bundle (interrupted at step {ckpt} of 3000, checkpoint at step {ckpt})");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&plan), "{}", text(&out));
    let status = cluster.wait_job(&job, 180);
    assert!(status["tasks"].as_array().unwrap().iter().all(|t| t["verdict"] == "done"), "{status:#}");
    let log = std::fs::read_to_string(status["tasks"][2]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains(&format!("icl-lab: resume {third} from its bundle")), "{log}");
    assert!(log.contains(&format!("continues from its checkpoint at step {ckpt} of 3000")), "{log}");
    let out = cluster.icl_lab(&["--store", store_s, "slurm", "collect", job_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 added, 1 updated, 2 already there"), "{}", text(&out));
    let s = SledStore::open(&store).unwrap();
    let id = s.find_uid(&before.record.uid).unwrap().expect("the continued run is the collected one");
    let run = s.get(id).unwrap();
    assert_eq!((run.status, run.step), (Status::Done, 3000));
    let steps: Vec<usize> = s.metrics(id).unwrap().iter().map(|m| m.step).collect();
    assert_eq!(steps, (1..=3000).collect::<Vec<_>>());
    assert_eq!(s.list().unwrap().len(), 5);
}

// ---- bad input, no cluster needed ----

/// A directory of fake Slurm commands: each prints `stdout`/`stderr` and exits with `code`.
fn fake_slurm(dir: &Path, commands: &[(&str, &str, &str, i32)]) -> PathBuf {
    let bin = dir.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, stdout, stderr, code) in commands {
        let path = bin.join(name);
        write(&path, &format!("#!/bin/sh\necho '{stdout}'\necho '{stderr}' >&2\nexit {code}\n"));
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    }
    bin
}

fn sweep_to(dir: &Path, path_env: &Path, extra: &[&str]) -> Output {
    let spec = write(&dir.join("sweep.toml"), &sweep_text());
    bin()
        .args(["sweep", spec.to_str().unwrap(), "--slurm", dir.join("job").to_str().unwrap()])
        .args(extra)
        .env("PATH", path_env)
        .output()
        .unwrap()
}

#[test]
fn no_sbatch_on_path_is_a_clear_error_and_the_job_stays_written() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = sweep_to(dir.path(), &empty, &["--submit"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("error: sbatch not found on PATH: is Slurm installed?"), "{err}");
    assert!(err.contains("nothing was submitted") && err.contains("icl-lab slurm resubmit"), "{err}");
    let job = dir.path().join("job");
    assert!(job.join("job.sbatch").is_file() && job.join("manifest.json").is_file());
    assert_eq!(std::fs::read_dir(job.join("specs")).unwrap().count(), 3);
    // The (default) store remembers the job for the notebook's Queue view.
    assert!(icl_lab::runtime::slurm::remembered(&test_home()).contains(&job.canonicalize().unwrap()));
    // status without squeue: the same sentence, after a (fake) submission.
    let fake = fake_slurm(dir.path(), &[("sbatch", "41", "", 0)]);
    let out = bin().args(["slurm", "resubmit", job.to_str().unwrap()]).env("PATH", &fake).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = bin().args(["slurm", "status", job.to_str().unwrap()]).env("PATH", &empty).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("squeue not found on PATH"), "{}", text(&out));
}

#[test]
fn an_unreachable_controller_shows_slurms_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let refused = "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)";
    let fake = fake_slurm(dir.path(), &[("sbatch", "", refused, 1)]);
    let out = sweep_to(dir.path(), &fake, &["--submit"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("sbatch failed (exit status: 1): sbatch: error: Batch job submission failed: Unable to contact slurm controller"), "{err}");
    // squeue failing the same way: status names it; collect still imports what came back.
    let job = dir.path().join("job");
    let squeue_err = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)";
    let fake = fake_slurm(dir.path(), &[("sbatch", "42", "", 0), ("squeue", "", squeue_err, 1)]);
    let out = bin().args(["slurm", "resubmit", job.to_str().unwrap()]).env("PATH", &fake).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = bin().args(["slurm", "status", job.to_str().unwrap()]).env("PATH", &fake).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(squeue_err), "{}", text(&out));
}

/// A bundle whose header says schema 2: what a newer icl-lab might write.
fn newer_bundle(path: &Path) {
    let header = serde_json::json!({
        "kind": "header", "format": "icl-lab-bundle", "schema": 2,
        "created": "2027-01-01T00:00:00Z", "host": "future", "version": "9.0.0",
    });
    let bytes = rmp_serde::to_vec_named(&header).unwrap();
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    gz.write_all(&(bytes.len() as u32).to_be_bytes()).unwrap();
    gz.write_all(&bytes).unwrap();
    gz.finish().unwrap();
}

#[test]
fn a_bundle_from_a_newer_icl_lab_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep_to(dir.path(), Path::new("/usr/bin:/bin"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let job = dir.path().join("job");
    // Task 0's run trains here and writes its bundle as an array task would; task 1's bundle
    // comes from a newer icl-lab.
    let node_store = dir.path().join("node");
    let out = bin()
        .args(["--store", node_store.to_str().unwrap(), "run"])
        .arg(job.join("specs/slurm-e2e-gpt2-s0.toml"))
        .arg("--bundle-out")
        .arg(job.join("bundles/slurm-e2e-gpt2-s0.bundle"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(job.join("bundles/slurm-e2e-gpt2-s0.bundle").is_file());
    newer_bundle(&job.join("bundles/slurm-e2e-gpt2-s1.bundle"));

    let store = dir.path().join("store");
    let out = bin().args(["--store", store.to_str().unwrap(), "slurm", "collect", job.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains("slurm-e2e-gpt2-s1.bundle: bundle schema 2 is newer than this icl-lab's 1; upgrade icl-lab"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(!store.exists() || runs_of(&store).is_empty(), "nothing may be imported half-way");
}

// ---- resuming from a bundle ----

/// Trains `spec` into `store` with `--bundle-out bundle` and sends SIGINT once some metric
/// points are durable: the run stops part way, checkpoints and still writes its bundle.
fn interrupted_run(spec: &Path, store: &Path, bundle: &Path, extra: &[&str]) {
    let mut child = bin()
        .args(["--store", store.to_str().unwrap(), "run", spec.to_str().unwrap(), "--ack-flushes", "--bundle-out"])
        .arg(bundle)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    common::read_until(&mut stderr, |l| l.starts_with("flushed run=1 step="));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{rest}");
    assert!(rest.contains("(elsewhere: icl-lab resume "), "{rest}");
}

/// The one run of a bundle.
fn bundled(path: &Path) -> BundledRun {
    let mut runs = bundle::read(path).unwrap();
    assert_eq!(runs.len(), 1);
    runs.remove(0)
}

fn steps_of(run: &BundledRun) -> Vec<usize> {
    run.metrics.iter().map(|m| m.step).collect()
}

/// A Slurm job directory (not submitted) of one run of `steps` steps; returns its spec.
fn one_run_job(dir: &Path, steps: usize) -> PathBuf {
    let sweep = write(&dir.join("long.toml"), &common::tiny_sweep("long", "[0]", steps, false));
    let job = dir.join("job");
    let out = bin().args(["sweep", sweep.to_str().unwrap(), "--slurm", job.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    job.join("specs/long-gpt2-s0.toml")
}

#[test]
fn an_interrupted_run_resumes_from_its_bundle_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_run_job(dir.path(), 3000);
    let bundle_path = dir.path().join("job/bundles/long-gpt2-s0.bundle");
    interrupted_run(&spec, &dir.path().join("node1"), &bundle_path, &[]);
    let before = bundled(&bundle_path);
    assert_eq!(before.record.status, Status::Interrupted);
    let ckpt = before.record.checkpoint.clone().expect("an interrupted run has a checkpoint").step;
    assert!(ckpt > 0 && ckpt < 3000, "interrupted part way: step {ckpt}");
    assert_eq!(steps_of(&before), (1..=before.record.step).collect::<Vec<_>>());
    assert!(!before.files.is_empty(), "the bundle carries the checkpoint's files");

    // Another node (another store) continues it from the bundle and writes it back in place.
    let node2 = dir.path().join("node2");
    let out = bin()
        .args(["--store", node2.to_str().unwrap(), "resume", bundle_path.to_str().unwrap(), "--json", "--ack-flushes"])
        .arg("--bundle-out")
        .arg(&bundle_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("continues from its checkpoint at step {ckpt} of 3000")), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resumed_from"], ckpt);
    assert_eq!(v["status"]["state"], "done");
    assert_eq!(v["steps"], 3000);
    // Everything the resumed process wrote lies after the checkpoint.
    let flushed: Vec<usize> =
        err.lines().filter_map(|l| l.strip_prefix("flushed run=1 step=")).map(|n| n.parse().unwrap()).collect();
    assert!(!flushed.is_empty() && flushed.iter().all(|&s| s > ckpt), "{flushed:?} after {ckpt}");

    let after = bundled(&bundle_path);
    assert_eq!(after.record.uid, before.record.uid, "the same run, continued");
    assert_eq!(after.record.status, Status::Done);
    assert_eq!(after.record.step, 3000);
    assert_eq!(steps_of(&after), (1..=3000).collect::<Vec<_>>(), "every step once, in order");
    // The points up to the checkpoint are the first process's, untouched (wall times too).
    assert_eq!(after.metrics[..ckpt], before.metrics[..ckpt]);
    assert_eq!(after.evals.last().unwrap().step, 3000);

    // Again: the run is done, nothing trains, the bundle is written back, nothing duplicates.
    let out = bin().args(["--store", node2.to_str().unwrap(), "resume", bundle_path.to_str().unwrap(), "--bundle-out"]).arg(&bundle_path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is already done (3000 steps): nothing to train"), "{}", text(&out));
    assert_eq!(runs_of(&node2).len(), 1, "importing the same run again adds nothing");
    assert_eq!(steps_of(&bundled(&bundle_path)).len(), 3000);
}

/// Bad bundles are named and refused before anything is imported; a run without a checkpoint
/// starts again from step 0.
#[test]
fn resume_from_a_bundle_refuses_bad_files_and_restarts_a_run_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_run_job(dir.path(), 20);
    let store = dir.path().join("store");
    let resume = |args: &[&str]| bin().args(["--store", store.to_str().unwrap(), "resume"]).args(args).output().unwrap();
    let bad = |out: Output, phrase: &str| {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(phrase), "{err}");
        assert!(!store.exists() || runs_of(&store).is_empty(), "nothing imported");
    };
    let missing = dir.path().join("missing.bundle");
    bad(resume(&[missing.to_str().unwrap()]), "missing.bundle: no such bundle file (resume takes a run id or a bundle file)");
    bad(resume(&[spec.to_str().unwrap()]), "long-gpt2-s0.toml: not an icl-lab bundle");
    let newer = dir.path().join("newer.bundle");
    newer_bundle(&newer);
    bad(resume(&[newer.to_str().unwrap()]), "newer.bundle: bundle schema 2 is newer than this icl-lab's 1; upgrade icl-lab");

    // Two queued runs (a sweep stopped before they started): interrupted, no checkpoint.
    let other = dir.path().join("other");
    let two = dir.path().join("two.bundle");
    let one = dir.path().join("one.bundle");
    {
        let s = SledStore::open(&other).unwrap();
        let spec = icl_lab::spec::ExperimentSpec::load(&spec).unwrap();
        let new = || icl_lab::store::NewRun { spec: spec.clone(), git_commit: None, tags: Default::default() };
        let (a, b) = (s.create_run(new()).unwrap().id, s.create_run(new()).unwrap().id);
        for id in [a, b] {
            s.update(id, &mut |r| r.status = Status::Interrupted).unwrap();
        }
        bundle::export(&s, &[a, b], &two).unwrap();
        bundle::export(&s, &[a], &one).unwrap();
    }
    bad(resume(&[two.to_str().unwrap()]), "two.bundle: holds 2 runs; resume takes a bundle of one run");
    let out_path = dir.path().join("out/one.bundle");
    let out = resume(&[one.to_str().unwrap(), "--bundle-out", out_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run 1 has no checkpoint; it starts again from step 0"), "{}", text(&out));
    let run = bundled(&out_path);
    assert_eq!((run.record.status.clone(), run.record.step), (Status::Done, 20));
    assert_eq!(steps_of(&run), (1..=20).collect::<Vec<_>>());
}

use std::sync::Arc;

use super::bundle;
use super::query::{parse_ids, Query, SortKey};
use super::*;
use crate::train::{Curve, EvalCurve, StepMetrics};

const SPEC: &str = include_str!("../../experiments/quick/linear_regression.toml");

fn spec() -> ExperimentSpec {
    ExperimentSpec::from_toml(SPEC).unwrap()
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn point(step: usize) -> StepMetrics {
    StepMetrics {
        step,
        loss: 1.0 / step as f32,
        grad_norm: 0.5,
        lr: 1e-3,
        n_points: 11,
        n_dims: 5,
        wall_s: step as f64 * 0.01,
        steps_per_s: 100.0,
    }
}

fn curve(step: usize) -> EvalCurve {
    let c = |name: &str, v: f32| Curve { name: name.into(), mean: vec![v; 3], ci_low: vec![v - 0.1; 3], ci_high: vec![v + 0.1; 3], std: vec![0.2; 3] };
    EvalCurve {
        step,
        n_points: 11,
        prompts: 8,
        scale: 5.0,
        metric: "squared error / 5".into(),
        summary: Default::default(),
        model: c("model", 0.5),
        variants: Vec::new(),
        baselines: vec![c("least_squares", 0.1)],
    }
}

fn new_run(store: &SledStore) -> RunRecord {
    store.create_run(NewRun { spec: spec(), git_commit: None, tags: ["t1".to_string()].into() }).unwrap()
}

#[test]
fn records_metrics_and_curves_round_trip() {
    let dir = temp();
    let store = SledStore::open(dir.path()).unwrap();
    let a = new_run(&store);
    let b = new_run(&store);
    assert_eq!((a.id, b.id), (1, 2));
    assert_ne!(a.uid, b.uid);
    store.append_metrics(a.id, &[point(10), point(20), point(30)]).unwrap();
    store.append_metrics(b.id, &[point(10)]).unwrap();
    // Writing a step again replaces it: no duplicates.
    store.append_metrics(a.id, &[point(20)]).unwrap();
    store.put_eval(a.id, &curve(20)).unwrap();
    assert_eq!(store.metrics(a.id).unwrap().iter().map(|m| m.step).collect::<Vec<_>>(), [10, 20, 30]);
    assert_eq!(store.metrics_after(a.id, 10).unwrap().len(), 2);
    assert_eq!(store.metrics(b.id).unwrap().len(), 1);
    assert_eq!(store.evals(a.id).unwrap(), vec![curve(20)]);
    let rec = store.update(a.id, &mut |r| r.note = "hello".into()).unwrap();
    assert_eq!(store.get(a.id).unwrap(), rec);
    assert_eq!(store.find_uid(&a.uid).unwrap(), Some(a.id));
    store.delete(a.id).unwrap();
    assert!(matches!(store.get(a.id), Err(StoreError::NoRun(1))));
    assert!(store.metrics(a.id).unwrap().is_empty());
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn a_second_opener_is_told_who_holds_the_store() {
    let dir = temp();
    let _held = SledStore::open(dir.path()).unwrap();
    let err = SledStore::open(dir.path()).err().expect("second open must fail").to_string();
    assert!(err.contains(&format!("store in use by pid {}", std::process::id())), "{err}");
}

#[test]
fn foreign_and_newer_stores_are_refused_untouched() {
    let dir = temp();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "precious").unwrap();
    assert!(matches!(SledStore::open(&file), Err(StoreError::IsFile { .. })));
    assert!(matches!(SledStore::open(dir.path()), Err(StoreError::Foreign { .. })));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing created");

    let newer = temp();
    std::fs::write(newer.path().join("store.json"), r#"{"format":"icl-lab-store","schema":99}"#).unwrap();
    let err = SledStore::open(newer.path()).err().unwrap().to_string();
    assert!(err.contains("schema 99"), "{err}");
    let garbage = temp();
    std::fs::write(garbage.path().join("store.json"), "{not json").unwrap();
    assert!(matches!(SledStore::open(garbage.path()), Err(StoreError::BadMarker { .. })));
    // Under a file, no store can be made: the error names where.
    let under_file = file.join("store");
    let err = SledStore::open(&under_file).err().expect("a store under a file").to_string();
    assert!(err.starts_with(&format!("store {} could not be opened: ", under_file.display())), "{err}");
}

#[test]
fn runs_left_alive_by_a_dead_process_become_interrupted() {
    let dir = temp();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let r = new_run(&store);
        store.update(r.id, &mut |r| {
            r.status = Status::Running;
            r.pid = Some(u32::MAX - 1); // not us, not alive
        })
        .unwrap();
        store.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.get(1).unwrap().status, Status::Interrupted);
}

#[test]
fn writer_batches_and_acknowledges_only_durable_points() {
    let dir = temp();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let r = new_run(&store);
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let acked2 = acked.clone();
    let writer = Writer::spawn(store.clone(), Some(Box::new(move |run, step| acked2.lock().unwrap().push((run, step)))));
    let tx = writer.sender();
    for s in 1..=50 {
        tx.send(WriteOp::Metrics(r.id, point(s))).unwrap();
    }
    tx.send(WriteOp::Eval(r.id, curve(50))).unwrap();
    writer.flush();
    assert_eq!(acked.lock().unwrap().last(), Some(&(r.id, 50)));
    tx.send(WriteOp::Finish { run: r.id, status: Status::Done, train_s: 2.0 }).unwrap();
    drop(writer);
    let rec = store.get(r.id).unwrap();
    assert_eq!((rec.step, rec.status, rec.train_s), (50, Status::Done, 2.0));
    assert_eq!(rec.final_error, Some(0.5));
    assert_eq!(store.metrics(r.id).unwrap().len(), 50);
}

fn filled_store(dir: &std::path::Path) -> SledStore {
    let store = SledStore::open(dir).unwrap();
    for i in 0..3 {
        let r = new_run(&store);
        store.append_metrics(r.id, &(1..=20).map(|s| point(s * 10)).collect::<Vec<_>>()).unwrap();
        store.put_eval(r.id, &curve(100)).unwrap();
        store.put_eval(r.id, &curve(200)).unwrap();
        let ck = dir.join(format!("checkpoints/{}/step-200", r.uid));
        std::fs::create_dir_all(&ck).unwrap();
        std::fs::write(ck.join("model.bin"), vec![i as u8; 1000]).unwrap();
        std::fs::write(ck.join("optim.bin"), b"optimiser").unwrap();
        store
            .update(r.id, &mut |rec| {
                rec.status = Status::Done;
                rec.step = 200;
                rec.checkpoint = Some(Checkpoint {
                    step: 200,
                    dir: format!("checkpoints/{}/step-200", rec.uid),
                    data_word_pos: 12345678901234567890,
                });
            })
            .unwrap();
    }
    store
}

#[test]
fn bundle_round_trip_is_exact_and_idempotent() {
    let (src_dir, dst_dir, tmp) = (temp(), temp(), temp());
    let src = filled_store(src_dir.path());
    let file = tmp.path().join("runs.bundle");
    assert_eq!(bundle::export(&src, &[1, 3], &file).unwrap(), 2);

    let dst = SledStore::open(&dst_dir.path().join("store")).unwrap();
    new_run(&dst); // id 1 is taken here: the imported runs are remapped
    let report = bundle::import(&dst, &file).unwrap();
    assert_eq!(report.added, vec![(1, 2), (3, 3)]);
    for (from, to) in report.added {
        let (a, b) = (src.get(from).unwrap(), dst.get(to).unwrap());
        assert_eq!(a.uid, b.uid);
        assert_eq!(a.spec, b.spec);
        assert_eq!((a.status, a.step, a.tags), (b.status.clone(), b.step, b.tags.clone()));
        assert!(b.origin.as_deref().unwrap().contains("runs.bundle"));
        assert_eq!(src.metrics(from).unwrap(), dst.metrics(to).unwrap());
        assert_eq!(src.evals(from).unwrap(), dst.evals(to).unwrap());
        let (ca, cb) = (a.checkpoint.unwrap(), b.checkpoint.unwrap());
        assert_eq!(ca.data_word_pos, cb.data_word_pos);
        for f in ["model.bin", "optim.bin"] {
            assert_eq!(
                std::fs::read(src.checkpoint_path(&ca).join(f)).unwrap(),
                std::fs::read(dst.checkpoint_path(&cb).join(f)).unwrap()
            );
        }
    }
    let before = dst.list().unwrap();
    let again = bundle::import(&dst, &file).unwrap();
    assert!(again.added.is_empty() && again.updated.is_empty());
    assert_eq!(again.unchanged.len(), 2);
    assert_eq!(dst.list().unwrap(), before);
}

#[test]
fn a_lean_bundle_drops_only_finished_runs_checkpoints() {
    let (src_dir, dst_dir, tmp) = (temp(), temp(), temp());
    let src = filled_store(src_dir.path());
    src.update(2, &mut |r| r.status = Status::Interrupted).unwrap();
    let (lean, full) = (tmp.path().join("lean.bundle"), tmp.path().join("full.bundle"));
    bundle::export_with(&src, &[1, 2], &lean, bundle::BundleCheckpoints::Unfinished).unwrap();
    bundle::export(&src, &[1, 2], &full).unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&lean) < size(&full), "the done run's 1 KB model is left out");

    let dst = SledStore::open(dst_dir.path()).unwrap();
    let report = bundle::import(&dst, &lean).unwrap();
    let (done, interrupted) = (dst.get(report.added[0].1).unwrap(), dst.get(report.added[1].1).unwrap());
    assert_eq!(done.status, Status::Done);
    assert!(done.checkpoint.is_none());
    assert_eq!(dst.metrics(done.id).unwrap(), src.metrics(1).unwrap(), "metrics travel all the same");
    let c = interrupted.checkpoint.expect("the interrupted run keeps its checkpoint");
    assert_eq!(std::fs::read(dst.checkpoint_path(&c).join("model.bin")).unwrap(), vec![1u8; 1000], "run 2 is the second filled run");
}

#[test]
fn a_run_that_went_further_elsewhere_updates_the_local_copy() {
    let (src_dir, tmp) = (temp(), temp());
    let src = filled_store(src_dir.path());
    let early = tmp.path().join("early.bundle");
    bundle::export(&src, &[2], &early).unwrap();
    src.append_metrics(2, &[point(210), point(220)]).unwrap();
    src.update(2, &mut |r| r.step = 220).unwrap();
    let late = tmp.path().join("late.bundle");
    bundle::export(&src, &[2], &late).unwrap();

    let dst_dir = temp();
    let dst = SledStore::open(dst_dir.path()).unwrap();
    bundle::import(&dst, &early).unwrap();
    dst.update(1, &mut |r| {
        r.tags.insert("local".into());
    })
    .unwrap();
    let report = bundle::import(&dst, &late).unwrap();
    assert_eq!(report.updated, vec![1]);
    let rec = dst.get(1).unwrap();
    assert_eq!(rec.step, 220);
    assert!(rec.tags.contains("local"), "local tags survive");
    assert_eq!(dst.metrics(1).unwrap().len(), 22);
    // The older copy never replaces the newer.
    assert_eq!(bundle::import(&dst, &early).unwrap().unchanged, vec![1]);
}

#[test]
fn truncated_or_foreign_bundles_are_rejected_and_change_nothing() {
    let (src_dir, tmp) = (temp(), temp());
    let src = filled_store(src_dir.path());
    let file = tmp.path().join("runs.bundle");
    bundle::export(&src, &[1, 2, 3], &file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let dst_dir = temp();
    let dst = SledStore::open(dst_dir.path()).unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 12, bytes.len() - 1] {
        let t = tmp.path().join(format!("cut{cut}.bundle"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        let err = bundle::import(&dst, &t).expect_err("truncated bundle must fail").to_string();
        assert!(err.contains("truncated") || err.contains("not an icl-lab bundle"), "{err}");
        assert!(dst.list().unwrap().is_empty());
    }
    let junk = tmp.path().join("junk.bundle");
    std::fs::write(&junk, b"hello world").unwrap();
    assert!(bundle::import(&dst, &junk).err().unwrap().to_string().contains("not an icl-lab bundle"));
    assert!(dst.list().unwrap().is_empty());
    assert!(std::fs::read_dir(dst_dir.path().join("checkpoints")).map_or(true, |mut d| d.next().is_none()));
}

#[test]
fn queries_filter_and_sort() {
    let dir = temp();
    let store = SledStore::open(dir.path()).unwrap();
    let a = new_run(&store);
    let b = new_run(&store);
    store.update(b.id, &mut |r| {
        r.status = Status::Done;
        r.final_error = Some(0.1);
        r.tags.insert("paper".into());
    })
    .unwrap();
    let runs = store.list().unwrap();
    let ids = |q: &str| -> Vec<u64> {
        let q = Query::parse(q).unwrap();
        runs.iter().filter(|r| q.matches(r)).map(|r| r.id).collect()
    };
    assert_eq!(ids(""), [a.id, b.id]);
    assert_eq!(ids("status:done"), [b.id]);
    assert_eq!(ids("tag:pap task:linear"), [b.id]);
    assert_eq!(ids("arch:mamba"), Vec::<u64>::new());
    assert_eq!(ids("quick"), [a.id, b.id]);
    assert!(Query::parse("colour:red").is_err());
    assert!(Query::parse("status:sleeping").is_err());
    assert!(Query::parse("seed:x").is_err());
    let mut sorted = runs.clone();
    sorted.sort_by(|x, y| SortKey::Error.compare(x, y));
    assert_eq!(sorted[0].id, b.id, "runs with an error sort before runs without");
    assert_eq!(parse_ids(&["3,5".into(), "7-9".into()]).unwrap(), [3, 5, 7, 8, 9]);
    assert!(parse_ids(&["9-7".into()]).is_err());
    assert!(parse_ids(&["x".into()]).is_err());
}

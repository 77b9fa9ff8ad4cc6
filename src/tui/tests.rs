//! App state transitions on a fake notebook, and snapshots of every view on ratatui's
//! TestBackend at 80x24 and 200x50.

use std::cell::RefCell;
use std::collections::BTreeSet;

use chrono::TimeZone;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use super::app::{key, App, Command, Popup, View};
use super::form::{FieldId, FIELDS};
use super::ui::{self, Theme};
use crate::runtime::lab::Notebook;
use crate::runtime::slurm::watch::{ArrayView, FailedTask, SlurmUpdate};
use crate::runtime::slurm::Collected;
use crate::runtime::{Device, PoolSnapshot, StopReason};
use crate::spec::ExperimentSpec;
use crate::store::{RunId, RunRecord, Status, StoreError};
use crate::train::{Curve, EvalCurve, StepMetrics};

const QUICK: &str = include_str!("../../experiments/quick/linear_regression.toml");

/// An in-memory notebook: fixed runs, a recorded launch list, a scripted queue.
#[derive(Default)]
struct Fake {
    runs: RefCell<Vec<RunRecord>>,
    launched: RefCell<Vec<ExperimentSpec>>,
    stopped: RefCell<Vec<(RunId, StopReason)>>,
    queue: RefCell<PoolSnapshot>,
    generation: RefCell<u64>,
}

fn record(id: RunId, arch: &str, seed: u64, status: Status, err: Option<f32>) -> RunRecord {
    let mut spec = ExperimentSpec::from_toml(QUICK).unwrap();
    spec.seed = seed;
    if arch != "gpt2" {
        spec.model = super::form::model_spec(arch, 64, 2, 4, 22);
    }
    RunRecord {
        id,
        uid: format!("uid{id}"),
        spec,
        status,
        created: chrono::Utc.with_ymd_and_hms(2026, 11, 28, 12, id as u32 % 60, 0).unwrap(),
        started: None,
        finished: None,
        device: Some("cpu".into()),
        host: "test".into(),
        pid: None,
        git_commit: None,
        params: Some(102_000 + id as usize),
        flops_per_token: None,
        step: 2000,
        last: None,
        final_error: err,
        final_baselines: [("least_squares".to_string(), 0.0f32), ("zero".to_string(), 1.0)].into(),
        train_s: 60.0,
        tags: if id.is_multiple_of(2) { ["paper".to_string()].into() } else { BTreeSet::new() },
        note: String::new(),
        checkpoint: None,
        origin: None,
    }
}

fn metrics(n: usize) -> Vec<StepMetrics> {
    (1..=n)
        .map(|i| StepMetrics {
            step: i * 10,
            loss: 5.0 / (1.0 + i as f32 * 0.1),
            grad_norm: 1.0,
            lr: 1e-3,
            n_points: 11,
            n_dims: 5,
            wall_s: i as f64,
            steps_per_s: 25.0,
        })
        .collect()
}

fn eval(step: usize) -> EvalCurve {
    let c = |name: &str, f: fn(f32) -> f32| {
        let mean: Vec<f32> = (0..11).map(|i| f(i as f32)).collect();
        Curve { name: name.into(), ci_low: mean.iter().map(|v| v * 0.9).collect(), ci_high: mean.iter().map(|v| v * 1.1).collect(), std: vec![0.1; mean.len()], mean }
    };
    EvalCurve {
        step,
        n_points: 11,
        prompts: 256,
        scale: 5.0,
        metric: "squared error / 5".into(),
        summary: Default::default(),
        model: c("model", |i| 1.0 / (1.0 + i * 0.5)),
        variants: Vec::new(),
        baselines: vec![c("least_squares", |i| if i < 5.0 { 1.0 - i / 5.0 } else { 0.0 }), c("zero", |_| 1.0)],
    }
}

impl Fake {
    fn with_runs() -> Fake {
        let f = Fake::default();
        *f.runs.borrow_mut() = vec![
            record(1, "gpt2", 0, Status::Done, Some(0.05)),
            record(2, "gpt2", 1, Status::Done, Some(0.07)),
            record(3, "mamba", 0, Status::Done, Some(0.5)),
            record(4, "s4", 0, Status::Diverged { step: 120, loss: f32::NAN }, None),
            record(5, "mamba", 1, Status::Running, None),
        ];
        f.runs.borrow_mut()[4].step = 700;
        *f.queue.borrow_mut() = PoolSnapshot { slots: vec![(Device::Cpu, 1)], queued: vec![], running: vec![(5, Device::Cpu)], group_runs: vec![vec![5]], group_slots: vec![vec![vec![5]]] };
        f
    }
}

impl Notebook for Fake {
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        Ok(self.runs.borrow().clone())
    }
    fn metrics_after(&self, _id: RunId, after: usize) -> Result<Vec<StepMetrics>, StoreError> {
        Ok(metrics(100).into_iter().filter(|m| m.step > after).collect())
    }
    fn evals(&self, _id: RunId) -> Result<Vec<EvalCurve>, StoreError> {
        Ok(vec![eval(500), eval(1000)])
    }
    fn launch(&self, specs: Vec<ExperimentSpec>) -> Result<Vec<RunId>, String> {
        let n = self.launched.borrow().len() as u64;
        self.launched.borrow_mut().extend(specs.iter().cloned());
        *self.generation.borrow_mut() += 1;
        Ok((0..specs.len() as u64).map(|i| 100 + n + i).collect())
    }
    fn stop(&self, id: RunId, reason: StopReason) -> bool {
        self.stopped.borrow_mut().push((id, reason));
        true
    }
    fn set_tags(&self, id: RunId, tags: BTreeSet<String>) -> Result<(), StoreError> {
        self.runs.borrow_mut().iter_mut().find(|r| r.id == id).unwrap().tags = tags;
        *self.generation.borrow_mut() += 1;
        Ok(())
    }
    fn set_note(&self, id: RunId, note: String) -> Result<(), StoreError> {
        self.runs.borrow_mut().iter_mut().find(|r| r.id == id).unwrap().note = note;
        *self.generation.borrow_mut() += 1;
        Ok(())
    }
    fn snapshot(&self) -> PoolSnapshot {
        self.queue.borrow().clone()
    }
    fn read_only(&self) -> bool {
        false
    }
    fn location(&self) -> String {
        "/tmp/store".into()
    }
    fn generation(&self) -> u64 {
        *self.generation.borrow()
    }
}

fn press(app: &mut App, nb: &Fake, keys: &str) -> Option<Command> {
    let mut last = None;
    for c in keys.chars() {
        last = app.on_key(key(KeyCode::Char(c)), nb);
    }
    last
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn app(nb: &Fake) -> App {
    App::new(nb, "experiments".into())
}

fn visible_ids(app: &App) -> Vec<RunId> {
    app.visible.iter().map(|&i| app.runs[i].id).collect()
}

#[test]
fn filter_narrows_and_a_bad_filter_is_explained() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    assert_eq!(visible_ids(&a), [5, 4, 3, 2, 1], "newest first");
    press(&mut a, &nb, "/arch:mamba");
    assert_eq!(visible_ids(&a).len(), 5, "applied only on Enter");
    a.on_key(key(KeyCode::Enter), &nb);
    assert_eq!(visible_ids(&a), [5, 3]);
    press(&mut a, &nb, "/ colour:red");
    assert!(a.filter_error.as_deref().unwrap().contains("unknown filter field"));
    a.on_key(key(KeyCode::Enter), &nb);
    assert!(a.filter_input.is_some(), "a bad filter stays open for editing");
    a.on_key(key(KeyCode::Esc), &nb);
    assert_eq!(a.filter, "arch:mamba");
    press(&mut a, &nb, "\\");
    assert_eq!(visible_ids(&a).len(), 5);
    press(&mut a, &nb, "/tag:paper status:done");
    a.on_key(key(KeyCode::Enter), &nb);
    assert_eq!(visible_ids(&a), [2]);
}

#[test]
fn navigation_stays_in_bounds_and_sorting_keeps_the_cursor_sane() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    press(&mut a, &nb, "kkk");
    assert_eq!(a.cursor, 0);
    press(&mut a, &nb, "jjjjjjjjj");
    assert_eq!(a.cursor, 4);
    press(&mut a, &nb, "g");
    assert_eq!(a.current_id(), Some(5));
    press(&mut a, &nb, "G");
    assert_eq!(a.current_id(), Some(1));
    // s cycles the sort key: id -> status.
    press(&mut a, &nb, "s");
    assert_eq!(a.sort.name(), "status");
    press(&mut a, &nb, "S");
    let statuses: Vec<&str> = a.visible.iter().map(|&i| a.runs[i].status.label()).collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(statuses, sorted);
}

#[test]
fn selection_opens_compare_and_enter_opens_a_run() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    press(&mut a, &nb, "c");
    assert_eq!(a.view, View::Runs, "compare needs a selection");
    assert!(a.message.as_deref().unwrap().contains("select two"));
    press(&mut a, &nb, "jj  "); // cursor on 3, select 3 and 2
    assert_eq!(a.selected, [2, 3].into());
    press(&mut a, &nb, "k "); // unselect 2
    assert_eq!(a.selected, [3].into());
    press(&mut a, &nb, "j ");
    press(&mut a, &nb, "c");
    assert_eq!(a.view, View::Compare);
    assert_eq!(a.compare.iter().map(|s| s.run).collect::<Vec<_>>(), [1, 3]);
    a.on_key(key(KeyCode::Esc), &nb);
    assert_eq!(a.view, View::Runs);
    press(&mut a, &nb, "g");
    a.on_key(key(KeyCode::Enter), &nb);
    assert_eq!(a.view, View::Run);
    assert_eq!(a.open.as_ref().unwrap().run, 5);
    assert_eq!(a.open.as_ref().unwrap().metrics.len(), 100);
    press(&mut a, &nb, "L+w");
    assert!(!a.chart.log_y && a.chart.wall_x && a.chart.smoothing > 0.6);
}

#[test]
fn form_errors_sit_next_to_their_fields_and_launch_queues_arch_x_seed() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    press(&mut a, &nb, "5");
    assert_eq!(a.view, View::New);
    let pos = |f: FieldId| FIELDS.iter().position(|x| *x == f).unwrap();
    // lr = "abc"
    a.form.lr = "abc".into();
    a.form.heads = "3".into(); // does not divide 64
    a.on_key(ctrl('r'), &nb);
    assert!(nb.launched.borrow().is_empty());
    assert!(a.form.errors[&pos(FieldId::Lr)].contains("not a number"));
    assert!(a.form.errors[&pos(FieldId::Heads)].contains("divide"), "{:?}", a.form.errors);
    assert_eq!(a.form.cursor, pos(FieldId::Heads).min(pos(FieldId::Lr)));
    // Fix them through the keys: edit heads.
    a.form.cursor = pos(FieldId::Heads);
    a.on_key(key(KeyCode::Enter), &nb);
    a.on_key(key(KeyCode::Backspace), &nb);
    press(&mut a, &nb, "4");
    a.on_key(key(KeyCode::Enter), &nb);
    a.form.lr = "1e-3".into();
    // Two archs x two seeds.
    a.form.cursor = pos(FieldId::Archs);
    press(&mut a, &nb, "l"); // arch cursor -> mamba
    a.on_key(key(KeyCode::Enter), &nb);
    a.form.seeds = "0-1".into();
    a.on_key(ctrl('r'), &nb);
    let launched = nb.launched.borrow();
    assert_eq!(launched.len(), 4, "{:?}", a.form.errors);
    let combos: BTreeSet<(&str, u64)> = launched.iter().map(|s| (s.model.arch(), s.seed)).collect();
    assert_eq!(combos, [("gpt2", 0), ("gpt2", 1), ("mamba", 0), ("mamba", 1)].into());
    assert_eq!(a.view, View::Queue);
}

/// Sizes that cannot fit in memory are errors at the width and the batch, not a crash.
#[test]
fn form_sizes_too_large_to_train_are_errors_at_their_fields() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    press(&mut a, &nb, "5");
    let pos = |f: FieldId| FIELDS.iter().position(|x| *x == f).unwrap();
    a.form.embd = "10000000".into();
    a.form.heads = "1".into();
    a.on_key(ctrl('r'), &nb);
    assert!(nb.launched.borrow().is_empty());
    assert!(a.form.errors[&pos(FieldId::Embd)].contains("at most 2^32 parameters"), "{:?}", a.form.errors);
    a.form.embd = "64".into();
    a.form.batch = "100000000".into();
    a.on_key(ctrl('r'), &nb);
    assert!(nb.launched.borrow().is_empty());
    assert!(a.form.errors[&pos(FieldId::Batch)].contains("at most 2^31"), "{:?}", a.form.errors);
    assert!(!a.form.errors.contains_key(&pos(FieldId::Embd)), "{:?}", a.form.errors);
}

#[test]
fn quitting_with_live_runs_asks_and_cancel_asks_too() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    assert_eq!(press(&mut a, &nb, "q"), None);
    assert!(matches!(a.popup, Some(Popup::Quit { alive: 1 })));
    assert_eq!(press(&mut a, &nb, "z"), None, "any other key stays");
    assert!(a.popup.is_none());
    press(&mut a, &nb, "q");
    assert_eq!(press(&mut a, &nb, "l"), Some(Command::QuitDetach));
    // Cancel the running run 5 (top row), confirm with y.
    let mut a = app(&nb);
    press(&mut a, &nb, "x");
    assert_eq!(a.popup, Some(Popup::ConfirmCancel(5)));
    press(&mut a, &nb, "y");
    assert_eq!(*nb.stopped.borrow(), [(5, StopReason::Cancel)]);
    // A finished run cannot be cancelled.
    press(&mut a, &nb, "jx");
    assert!(a.popup.is_none());
    // With nothing alive, q quits at once.
    nb.queue.borrow_mut().running.clear();
    a.refresh(&nb);
    assert_eq!(press(&mut a, &nb, "q"), Some(Command::QuitStop));
}

#[test]
fn notes_and_tags_are_edited_in_place() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    press(&mut a, &nb, "G");
    a.on_key(key(KeyCode::Enter), &nb); // run 1
    press(&mut a, &nb, "nlooks good");
    a.on_key(key(KeyCode::Enter), &nb);
    assert_eq!(a.record(1).unwrap().note, "looks good");
    press(&mut a, &nb, "tbest baseline");
    a.on_key(key(KeyCode::Enter), &nb);
    assert_eq!(a.record(1).unwrap().tags, ["baseline".to_string(), "best".to_string()].into());
    press(&mut a, &nb, "nzzz");
    a.on_key(key(KeyCode::Esc), &nb);
    assert_eq!(a.record(1).unwrap().note, "looks good", "Esc discards");
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, app, Theme { color: false, ascii: false })).unwrap();
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn snapshots_of_every_view() {
    // Run times are shown in local time: pin it.
    std::env::set_var("TZ", "UTC");
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    let mut shots: Vec<(&str, Box<dyn Fn(&mut App)>)> = vec![
        ("runs", Box::new(|_| {})),
        ("run", Box::new(|a: &mut App| {
            let nb = Fake::with_runs();
            a.open_id(1, &nb);
        })),
        ("compare", Box::new(|a: &mut App| {
            let nb = Fake::with_runs();
            a.selected = [1, 2, 3].into();
            a.on_key(key(KeyCode::Char('3')), &nb);
        })),
        ("matrix", Box::new(|a: &mut App| a.view = View::Matrix)),
        ("new", Box::new(|a: &mut App| a.view = View::New)),
        ("queue", Box::new(|a: &mut App| a.view = View::Queue)),
        ("help", Box::new(|a: &mut App| a.view = View::Help)),
    ];
    for (name, setup) in shots.drain(..) {
        setup(&mut a);
        for (w, h) in [(80, 24), (200, 50)] {
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(&a, w, h));
        }
    }
}

#[test]
fn queue_view_shows_each_slot_group_with_its_slots() {
    let nb = Fake::with_runs();
    // Two groups on cuda:0 (as `--devices cuda:0,cuda:0`) and one on cuda:1.
    *nb.queue.borrow_mut() = PoolSnapshot {
        slots: vec![(Device::Cuda(0), 2), (Device::Cuda(0), 2), (Device::Cuda(1), 2)],
        queued: vec![],
        running: vec![(3, Device::Cuda(0)), (4, Device::Cuda(0)), (5, Device::Cuda(1)), (6, Device::Cuda(1)), (7, Device::Cuda(1))],
        group_runs: vec![vec![3, 4], vec![], vec![5, 6, 7]],
        // cuda:1's slot trains three seeds as one model.
        group_slots: vec![vec![vec![3], vec![4]], vec![], vec![vec![5, 6, 7]]],
    };
    let mut a = app(&nb);
    a.view = View::Queue;
    let screen = render(&a, 100, 20);
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("busy")).collect();
    assert_eq!(rows.len(), 3, "{screen}");
    assert!(rows[0].contains("cuda:0") && rows[0].contains("2/2 busy") && rows[0].contains("[#3] [#4]"), "{screen}");
    assert!(rows[1].contains("cuda:0") && rows[1].contains("0/2 busy") && rows[1].contains("[ ] [ ]"), "{screen}");
    assert!(rows[2].contains("cuda:1") && rows[2].contains("1/2 busy") && rows[2].contains("[#5 #6 #7] [ ]"), "{screen}");
}

/// Two arrays as the Slurm watcher would report them: one half done with a failed task, one
/// not yet submitted whose states came from nowhere (Slurm unreachable).
fn slurm_arrays() -> Vec<ArrayView> {
    vec![
        ArrayView {
            dir: "/home/u/jobs/grid".into(),
            name: "grid".into(),
            job_ids: vec!["41".into(), "57".into()],
            tasks: 6,
            pending: 1,
            running: 1,
            done: 3,
            failed: 1,
            bundles: 4,
            runs: 6,
            failed_tasks: vec![FailedTask {
                index: 4,
                runs: vec!["grid-mamba-s1".into()],
                state: "TIMEOUT, 1 of 1 bundles missing".into(),
                log: Some("/home/u/jobs/grid/logs/41_4.out".into()),
            }],
            ..ArrayView::default()
        },
        ArrayView {
            dir: "/home/u/jobs/lin".into(),
            name: "lin".into(),
            tasks: 3,
            not_submitted: 3,
            runs: 3,
            error: Some("squeue not found on PATH: is Slurm installed? (states from the exit-status files)".into()),
            ..ArrayView::default()
        },
    ]
}

#[test]
fn queue_view_shows_slurm_arrays_with_their_failed_tasks() {
    std::env::set_var("TZ", "UTC");
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    a.view = View::Queue;
    a.on_slurm(SlurmUpdate::Arrays(slurm_arrays()));
    a.on_key(key(KeyCode::Down), &nb); // from run 5 to the first array
    insta::assert_snapshot!("queue_slurm_120x30", render(&a, 120, 30));
    let screen = render(&a, 120, 30);
    let row = screen.lines().find(|l| l.contains("41,57")).unwrap();
    let cells: Vec<&str> = row.trim_matches(|c| c == '│' || c == ' ').split_whitespace().collect();
    assert_eq!(cells, ["41,57", "grid", "6", "1", "1", "3", "1", "4/6", "/home/u/jobs/grid"], "{screen}");
    assert!(screen.contains("task 4 (grid-mamba-s1): TIMEOUT, 1 of 1 bundles missing; log /home/u/jobs/grid/logs/41_4.out"), "{screen}");
    assert!(screen.contains("(3 not submitted)") && screen.contains("! squeue not found on PATH"), "{screen}");
}

#[test]
fn the_slurm_arrays_scroll_to_the_one_under_the_cursor() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    a.view = View::Queue;
    let many: Vec<ArrayView> = (0..30)
        .map(|i| ArrayView { dir: format!("/jobs/a{i:02}").into(), name: format!("array{i:02}"), tasks: 1, runs: 1, ..ArrayView::default() })
        .collect();
    a.on_slurm(SlurmUpdate::Arrays(many));
    press(&mut a, &nb, "j");
    let screen = render(&a, 120, 30);
    assert!(screen.contains("array00") && screen.contains("JOB"), "{screen}");
    assert!(!screen.contains("array29"), "30 arrays cannot all fit in 30 rows: {screen}");
    press(&mut a, &nb, &"j".repeat(40));
    assert_eq!(a.array_at_cursor().map(|x| x.name.as_str()), Some("array29"));
    let screen = render(&a, 120, 30);
    assert!(screen.contains("array29") && !screen.contains("array00"), "{screen}");
    assert!(screen.contains("JOB"), "the header stays: {screen}");
}

#[test]
fn c_in_the_queue_view_collects_the_array_under_the_cursor() {
    let nb = Fake::with_runs();
    let mut a = app(&nb);
    a.view = View::Queue;
    assert_eq!(press(&mut a, &nb, "c"), None);
    assert!(a.message.as_deref().unwrap().starts_with("no Slurm arrays"), "{:?}", a.message);
    a.on_slurm(SlurmUpdate::Arrays(slurm_arrays()));
    assert_eq!(press(&mut a, &nb, "c"), None, "the cursor is on run 5, not an array");
    assert!(a.message.as_deref().unwrap().contains("move the cursor down"), "{:?}", a.message);
    press(&mut a, &nb, "jj");
    assert_eq!(a.array_at_cursor().map(|x| x.name.as_str()), Some("lin"));
    press(&mut a, &nb, "j");
    assert_eq!(a.array_at_cursor().map(|x| x.name.as_str()), Some("lin"), "the cursor stops at the last array");
    assert_eq!(press(&mut a, &nb, "c"), Some(Command::Collect("/home/u/jobs/lin".into())));
    let done = Collected { bundles: 3, added: 2, updated: 1, unchanged: 0 };
    a.on_slurm(SlurmUpdate::Collected { dir: "/home/u/jobs/lin".into(), result: Ok(done) });
    assert_eq!(a.message.as_deref(), Some("lin: imported 3 bundles: 2 added, 1 updated, 0 already here"));
    // Fewer arrays after a survey: the cursor stays on the list.
    a.on_slurm(SlurmUpdate::Arrays(slurm_arrays()[..1].to_vec()));
    assert_eq!(a.array_at_cursor().map(|x| x.name.as_str()), Some("grid"));
    a.read_only = true;
    assert_eq!(press(&mut a, &nb, "c"), None);
    assert_eq!(a.message.as_deref(), Some("read-only store: collecting is off"));
}

#[test]
fn a_long_reason_is_wrapped_keeping_its_start_and_its_end() {
    let text = "first line that is long\n\nsecond\nthird\nfourth\nlast line";
    assert_eq!(ui::wrapped(text, 10, 20), ["first line", " that is l", "ong", "second", "third", "fourth", "last line"]);
    assert_eq!(ui::wrapped(text, 10, 5), ["first line", " that is l", "...", "fourth", "last line"]);
    assert_eq!(ui::wrapped(text, 10, 1), ["last line"]);
    assert_eq!(ui::wrapped(text, 10, 3), ["third", "fourth", "last line"]);
    assert!(ui::wrapped("", 10, 5).is_empty());
}

/// A run that failed in a child process shows why, whole enough to act on: the first line of
/// the reason and the last line of the child's stderr, in an 80-column terminal.
#[test]
fn the_run_view_shows_a_failed_runs_reason_wrapped() {
    let nb = Fake::with_runs();
    let stderr: Vec<String> = (0..30).map(|i| format!("stderr line {i} of the worker process, long enough to need wrapping")).collect();
    let reason = format!("its worker process was killed by signal 9 (SIGKILL: killed, e.g. out of memory); its stderr ended with:\n{}", stderr.join("\n"));
    nb.runs.borrow_mut()[2].status = Status::Failed { reason };
    let mut a = app(&nb);
    a.open_id(3, &nb);
    let screen = render(&a, 80, 40);
    // The left pane's text, spaces left out (a wrapped line may end in one).
    let flat: String = screen.lines().flat_map(|l| l.split('│').nth(1).unwrap_or("").chars()).filter(|c| !c.is_whitespace()).collect();
    let has = |phrase: &str| flat.contains(&phrase.replace(' ', ""));
    assert!(screen.contains("#3 failed"), "{screen}");
    assert!(has("its worker process was killed by signal 9"), "{screen}");
    assert!(has("stderr line 29 of the worker process, long enough to need wrapping"), "the end of stderr: {screen}");
    assert!(screen.contains("..."), "the middle left out: {screen}");
}

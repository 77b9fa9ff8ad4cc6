//! The notebook's state and how keys change it. No terminal here: `App` is driven by key
//! events and by what the `Notebook` reports, so every transition is testable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::form::{Form, FieldId, ARCHS, FIELDS, TASKS};
use super::keymap::{self, Action, Scope};
use crate::report::matrix::{Cell as MatrixCell, Matrix};
use crate::runtime::lab::Notebook;
use crate::runtime::slurm::watch::{ArrayView, SlurmUpdate};
use crate::runtime::{PoolSnapshot, StopReason};
use crate::store::query::{Query, SortKey};
use crate::store::{RunId, RunRecord};
use crate::train::{EvalCurve, StepMetrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Runs,
    Run,
    Compare,
    Matrix,
    New,
    Queue,
    Help,
}

impl View {
    pub const TABS: [(View, &'static str); 6] = [
        (View::Runs, "Runs"),
        (View::Run, "Run"),
        (View::Compare, "Compare"),
        (View::Matrix, "Matrix"),
        (View::New, "New"),
        (View::Queue, "Queue"),
    ];

    fn scope(self) -> Scope {
        match self {
            View::Runs => Scope::Runs,
            View::Run => Scope::Run,
            View::Compare => Scope::Compare,
            View::Matrix => Scope::Matrix,
            View::New => Scope::New,
            View::Queue => Scope::Queue,
            View::Help => Scope::Global,
        }
    }
}

/// A run's history as shown in charts.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub run: RunId,
    pub metrics: Vec<StepMetrics>,
    pub evals: Vec<EvalCurve>,
}

/// Chart settings shared by the run and compare views.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartOpts {
    /// EMA weight of the past, 0 (raw) to 0.95.
    pub smoothing: f64,
    pub log_y: bool,
    /// x = wall-clock seconds instead of steps.
    pub wall_x: bool,
}

impl Default for ChartOpts {
    fn default() -> Self {
        ChartOpts { smoothing: 0.6, log_y: true, wall_x: false }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    ConfirmCancel(RunId),
    /// Quitting while this many runs are queued or running.
    Quit { alive: usize },
    EditNote { run: RunId, text: String },
    EditTags { run: RunId, text: String },
    Files { files: Vec<PathBuf>, cursor: usize },
    SaveAs { text: String },
}

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Leave; live runs are stopped (resumable) first.
    QuitStop,
    /// Leave the terminal but keep training until every run is done.
    QuitDetach,
    Suspend,
    ToggleMouse,
    /// Import the bundles of the Slurm array in this directory (in the background).
    Collect(PathBuf),
}

/// Live progress of a run of this process, from pool events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub step: usize,
    pub steps_per_s: f64,
}

pub struct App {
    pub view: View,
    help_return: View,
    pub runs: Vec<RunRecord>,
    /// The Matrix view's cells (task, arch): each task's latest experiment family, over seeds.
    pub matrix: BTreeMap<(String, String), MatrixCell>,
    /// Indices into `runs`, filtered and sorted.
    pub visible: Vec<usize>,
    pub cursor: usize,
    pub selected: BTreeSet<RunId>,
    pub filter: String,
    /// The filter being typed (`/`), if any.
    pub filter_input: Option<String>,
    pub filter_error: Option<String>,
    pub sort: SortKey,
    pub sort_desc: bool,
    pub open: Option<Series>,
    pub compare: Vec<Series>,
    pub chart: ChartOpts,
    /// Focused pane of the run view (0 config, 1 loss, 2 curve).
    pub pane: usize,
    pub matrix_cursor: (usize, usize),
    pub form: Form,
    pub queue: PoolSnapshot,
    /// Over the queue's runs, then the Slurm arrays below them.
    pub queue_cursor: usize,
    /// The Slurm arrays this store follows, as last surveyed.
    pub slurm: Vec<ArrayView>,
    pub live: HashMap<RunId, Live>,
    pub popup: Option<Popup>,
    pub message: Option<String>,
    pub read_only: bool,
    pub mouse: bool,
    /// Where experiment files are looked for (the `experiments/` folder).
    pub experiments_dir: PathBuf,
    pub location: String,
    /// The store generation last read (None: never).
    seen_generation: Option<u64>,
    /// Utilisation and memory per GPU, when nvidia-smi answers.
    pub gpu_info: HashMap<crate::runtime::Device, String>,
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

impl App {
    pub fn new(nb: &dyn Notebook, experiments_dir: PathBuf) -> App {
        let mut app = App {
            view: View::Runs,
            help_return: View::Runs,
            runs: Vec::new(),
            visible: Vec::new(),
            cursor: 0,
            selected: BTreeSet::new(),
            filter: String::new(),
            filter_input: None,
            filter_error: None,
            sort: SortKey::Id,
            sort_desc: true,
            open: None,
            compare: Vec::new(),
            chart: ChartOpts::default(),
            pane: 0,
            matrix_cursor: (0, 0),
            matrix: BTreeMap::new(),
            form: Form::default(),
            queue: PoolSnapshot::default(),
            queue_cursor: 0,
            slurm: Vec::new(),
            live: HashMap::new(),
            popup: None,
            message: None,
            read_only: nb.read_only(),
            mouse: false,
            experiments_dir,
            location: nb.location(),
            gpu_info: HashMap::new(),
            seen_generation: None,
        };
        app.refresh(nb);
        app
    }

    /// Reads what changed: the run list, the open run's new points, compared runs, the queue.
    pub fn refresh(&mut self, nb: &dyn Notebook) {
        self.queue = nb.snapshot();
        let generation = nb.generation();
        if self.seen_generation == Some(generation) {
            return; // nothing written since the last read
        }
        self.seen_generation = Some(generation);
        let keep = self.current_id();
        match nb.runs() {
            Ok(runs) => {
                self.matrix = Matrix::latest_per_task(&runs);
                self.runs = runs;
            }
            Err(e) => self.message = Some(format!("store: {e}")),
        }
        self.apply_filter();
        if let Some(id) = keep {
            if let Some(pos) = self.visible.iter().position(|&i| self.runs[i].id == id) {
                self.cursor = pos;
            }
        }
        if let Some(s) = &mut self.open {
            update_series(s, nb);
        }
        for s in &mut self.compare {
            update_series(s, nb);
        }
        // Forget live progress of runs that are no longer alive.
        let alive: BTreeSet<RunId> = self.queue.running.iter().map(|(id, _)| *id).collect();
        self.live.retain(|id, _| alive.contains(id));
    }

    pub fn current_id(&self) -> Option<RunId> {
        self.visible.get(self.cursor).map(|&i| self.runs[i].id)
    }

    pub fn record(&self, id: RunId) -> Option<&RunRecord> {
        self.runs.iter().find(|r| r.id == id)
    }

    fn apply_filter(&mut self) {
        let query = Query::parse(&self.filter).unwrap_or_default();
        let mut idx: Vec<usize> = (0..self.runs.len()).filter(|&i| query.matches(&self.runs[i])).collect();
        let sort = self.sort;
        idx.sort_by(|&a, &b| sort.compare(&self.runs[a], &self.runs[b]));
        if self.sort_desc {
            idx.reverse();
        }
        self.visible = idx;
        self.cursor = self.cursor.min(self.visible.len().saturating_sub(1));
    }

    /// Handles one key; returns what the event loop must do, if anything.
    pub fn on_key(&mut self, ev: KeyEvent, nb: &dyn Notebook) -> Option<Command> {
        if let Some(popup) = self.popup.take() {
            return self.on_popup_key(popup, ev, nb);
        }
        if let Some(text) = self.filter_input.take() {
            self.on_filter_key(text, ev);
            return None;
        }
        if self.view == View::New && self.form.editing {
            self.on_form_text_key(ev);
            return None;
        }
        let action = keymap::lookup(self.view.scope(), &ev)?;
        self.message = None;
        self.on_action(action, nb)
    }

    fn on_action(&mut self, action: Action, nb: &dyn Notebook) -> Option<Command> {
        match action {
            Action::Quit => {
                let alive = self.queue.queued.len() + self.queue.running.len();
                if alive > 0 {
                    self.popup = Some(Popup::Quit { alive });
                    return None;
                }
                return Some(Command::QuitStop);
            }
            Action::Suspend => return Some(Command::Suspend),
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                self.message = Some(format!("mouse {}", if self.mouse { "on (Shift+drag selects text)" } else { "off" }));
                return Some(Command::ToggleMouse);
            }
            Action::Help => {
                if self.view != View::Help {
                    self.help_return = self.view;
                    self.view = View::Help;
                } else {
                    self.view = self.help_return;
                }
            }
            Action::ViewRuns => self.view = View::Runs,
            Action::ViewRun => self.open_current(nb),
            Action::ViewCompare => self.open_compare(nb),
            Action::ViewMatrix => self.view = View::Matrix,
            Action::ViewNew => self.view = View::New,
            Action::ViewQueue => self.view = View::Queue,
            Action::Back => {
                self.view = match self.view {
                    View::Help => self.help_return,
                    View::Runs => View::Runs,
                    _ => View::Runs,
                }
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Top | Action::Bottom => {
                self.move_cursor(action)
            }
            Action::Left | Action::Right => {
                let d = if action == Action::Left { -1 } else { 1 };
                match self.view {
                    View::Matrix => {
                        let c = self.matrix_cursor.1 as isize + d;
                        self.matrix_cursor.1 = c.clamp(0, ARCHS.len() as isize - 1) as usize;
                    }
                    View::New => self.form.step_choice(d),
                    View::Run => self.pane = (self.pane as isize + d).rem_euclid(3) as usize,
                    _ => {}
                }
            }
            Action::NextPane => self.pane = (self.pane + 1) % 3,
            Action::PrevPane => self.pane = (self.pane + 2) % 3,
            Action::Open => match self.view {
                View::Runs => self.open_current(nb),
                View::Matrix => {
                    if let Some(id) = self.matrix_cell(self.matrix_cursor.0, self.matrix_cursor.1).and_then(MatrixCell::latest) {
                        self.open_id(id, nb);
                    }
                }
                View::Queue => match self.queue_ids().get(self.queue_cursor).copied() {
                    Some(id) => self.open_id(id, nb),
                    None => {
                        let a = self.array_at_cursor();
                        let hint = a.map(|a| format!("{}: `icl-lab slurm status {}` lists every task", a.name, a.dir.display()));
                        self.message = hint.or(self.message.take());
                    }
                },
                View::New => match self.form.field() {
                    FieldId::Archs => self.form.toggle_arch(),
                    FieldId::Task => self.form.step_choice(1),
                    _ => self.form.editing = true,
                },
                _ => {}
            },
            Action::Filter => self.filter_input = Some(self.filter.clone()),
            Action::ClearFilter => {
                self.filter.clear();
                self.filter_error = None;
                self.apply_filter();
            }
            Action::Select => {
                if let Some(id) = self.current_id() {
                    if !self.selected.remove(&id) {
                        self.selected.insert(id);
                    }
                    self.move_cursor(Action::Down);
                }
            }
            Action::SortNext => {
                let i = SortKey::ALL.iter().position(|k| *k == self.sort).unwrap_or(0);
                self.sort = SortKey::ALL[(i + 1) % SortKey::ALL.len()];
                self.apply_filter();
                self.message = Some(format!("sorted by {}", self.sort.name()));
            }
            Action::SortReverse => {
                self.sort_desc = !self.sort_desc;
                self.apply_filter();
            }
            Action::CompareSelected => self.open_compare(nb),
            Action::LogY => self.chart.log_y = !self.chart.log_y,
            Action::XAxis => self.chart.wall_x = !self.chart.wall_x,
            Action::SmoothMore => self.chart.smoothing = (self.chart.smoothing + 0.1).min(0.95),
            Action::SmoothLess => self.chart.smoothing = (self.chart.smoothing - 0.1).max(0.0),
            Action::EditNote | Action::EditTags => {
                if self.read_only {
                    self.message = Some("read-only store".into());
                } else if let Some(r) = self.open.as_ref().and_then(|s| self.record(s.run)) {
                    self.popup = Some(if action == Action::EditNote {
                        Popup::EditNote { run: r.id, text: r.note.clone() }
                    } else {
                        Popup::EditTags { run: r.id, text: r.tags.iter().cloned().collect::<Vec<_>>().join(" ") }
                    });
                }
            }
            Action::CancelRun => {
                let id = match self.view {
                    View::Run => self.open.as_ref().map(|s| s.run),
                    View::Queue => self.queue_ids().get(self.queue_cursor).copied(),
                    _ => self.current_id(),
                };
                match id {
                    Some(id) if self.is_alive_here(id) => self.popup = Some(Popup::ConfirmCancel(id)),
                    Some(id) => self.message = Some(format!("run {id} is not queued or running here")),
                    None => {}
                }
            }
            Action::Launch => self.launch(nb),
            Action::Collect => return self.collect(),
            Action::LoadFile => {
                let files = experiment_files(&self.experiments_dir);
                if files.is_empty() {
                    self.message = Some(format!("no experiment files under {}", self.experiments_dir.display()));
                } else {
                    self.popup = Some(Popup::Files { files, cursor: 0 });
                }
            }
            Action::SaveForm => {
                let name = format!("experiments/custom/{}.toml", self.form.name.trim());
                self.popup = Some(Popup::SaveAs { text: name });
            }
        }
        None
    }

    fn is_alive_here(&self, id: RunId) -> bool {
        self.queue.queued.contains(&id) || self.queue.running.iter().any(|(r, _)| *r == id)
    }

    /// The Slurm array under the Queue view's cursor (the arrays follow the runs).
    pub fn array_at_cursor(&self) -> Option<&ArrayView> {
        self.queue_cursor.checked_sub(self.queue_ids().len()).and_then(|i| self.slurm.get(i))
    }

    fn collect(&mut self) -> Option<Command> {
        let Some((name, dir)) = self.array_at_cursor().map(|a| (a.name.clone(), a.dir.clone())) else {
            self.message = Some(if self.slurm.is_empty() {
                "no Slurm arrays: `icl-lab sweep FILE --slurm DIR` writes one".into()
            } else {
                "move the cursor down to a Slurm array to collect it".into()
            });
            return None;
        };
        if self.read_only {
            self.message = Some("read-only store: collecting is off".into());
            return None;
        }
        self.message = Some(format!("collecting the bundles of {name} ..."));
        Some(Command::Collect(dir))
    }

    /// What the Slurm watcher reported.
    pub fn on_slurm(&mut self, update: SlurmUpdate) {
        match update {
            SlurmUpdate::Arrays(arrays) => {
                self.slurm = arrays;
                let n = self.queue_ids().len() + self.slurm.len();
                self.queue_cursor = self.queue_cursor.min(n.saturating_sub(1));
            }
            SlurmUpdate::Collected { dir, result } => {
                let name = dir.file_name().map_or(dir.display().to_string(), |n| n.to_string_lossy().into_owned());
                self.message = Some(match result {
                    Ok(c) => format!(
                        "{name}: imported {} bundles: {} added, {} updated, {} already here",
                        c.bundles, c.added, c.updated, c.unchanged
                    ),
                    Err(e) => format!("{name}: {e}"),
                });
            }
        }
    }

    /// Running first, then queued, as listed in the queue view.
    pub fn queue_ids(&self) -> Vec<RunId> {
        self.queue.running.iter().map(|(id, _)| *id).chain(self.queue.queued.iter().copied()).collect()
    }

    fn move_cursor(&mut self, action: Action) {
        let (pos, len): (&mut usize, usize) = match self.view {
            View::Runs => (&mut self.cursor, self.visible.len()),
            View::Matrix => (&mut self.matrix_cursor.0, TASKS.len()),
            View::New => (&mut self.form.cursor, FIELDS.len()),
            View::Queue => {
                let n = self.queue_ids().len() + self.slurm.len();
                (&mut self.queue_cursor, n)
            }
            _ => return,
        };
        if len == 0 {
            return;
        }
        let page = 10;
        *pos = match action {
            Action::Up => pos.saturating_sub(1),
            Action::Down => (*pos + 1).min(len - 1),
            Action::PageUp => pos.saturating_sub(page),
            Action::PageDown => (*pos + page).min(len - 1),
            Action::Top => 0,
            Action::Bottom => len - 1,
            _ => *pos,
        };
    }

    fn open_current(&mut self, nb: &dyn Notebook) {
        match self.current_id() {
            Some(id) => self.open_id(id, nb),
            None => self.message = Some("no run under the cursor".into()),
        }
    }

    pub fn open_id(&mut self, id: RunId, nb: &dyn Notebook) {
        let mut s = Series { run: id, ..Series::default() };
        update_series(&mut s, nb);
        self.open = Some(s);
        self.view = View::Run;
        self.pane = 0;
    }

    fn open_compare(&mut self, nb: &dyn Notebook) {
        let ids: Vec<RunId> = if self.selected.len() >= 2 {
            self.selected.iter().copied().collect()
        } else {
            self.message = Some("select two or more runs with space first".into());
            return;
        };
        self.compare = ids
            .into_iter()
            .map(|run| {
                let mut s = Series { run, ..Series::default() };
                update_series(&mut s, nb);
                s
            })
            .collect();
        self.view = View::Compare;
    }

    fn launch(&mut self, nb: &dyn Notebook) {
        if self.read_only {
            self.message = Some("read-only store: launching is off".into());
            return;
        }
        match self.form.specs() {
            Ok(specs) => {
                let n = specs.len();
                match nb.launch(specs) {
                    Ok(ids) => {
                        self.message = Some(format!(
                            "queued {n} run{}: {}",
                            if n == 1 { "" } else { "s" },
                            ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                        ));
                        self.refresh(nb);
                        self.view = View::Queue;
                    }
                    Err(e) => self.message = Some(format!("launch failed: {e}")),
                }
            }
            Err(errors) => {
                self.message = Some(format!("{} field{} to fix", errors.len(), if errors.len() == 1 { "" } else { "s" }));
                if let Some((&first, _)) = errors.iter().next() {
                    self.form.cursor = first;
                }
            }
        }
    }

    fn on_filter_key(&mut self, mut text: String, ev: KeyEvent) {
        match ev.code {
            KeyCode::Enter => {
                match Query::parse(&text) {
                    Ok(_) => {
                        self.filter = text;
                        self.filter_error = None;
                        self.cursor = 0;
                        self.apply_filter();
                    }
                    Err(e) => {
                        self.filter_error = Some(e.to_string());
                        self.filter_input = Some(text);
                    }
                }
                return;
            }
            KeyCode::Esc => return,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => text.push(c),
            _ => {}
        }
        self.filter_error = Query::parse(&text).err().map(|e| e.to_string());
        self.filter_input = Some(text);
    }

    fn on_form_text_key(&mut self, ev: KeyEvent) {
        let f = self.form.field();
        match ev.code {
            KeyCode::Enter | KeyCode::Esc | KeyCode::Tab => {
                self.form.editing = false;
                let _ = self.form.specs(); // re-check: errors show next to fields
                if ev.code == KeyCode::Tab {
                    self.form.cursor = (self.form.cursor + 1) % FIELDS.len();
                }
            }
            KeyCode::Backspace => {
                if let Some(t) = self.form.text_mut(f) {
                    t.pop();
                }
            }
            KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => {
                if let Some(t) = self.form.text_mut(f) {
                    t.push(c);
                }
            }
            _ => {}
        }
    }

    fn on_popup_key(&mut self, popup: Popup, ev: KeyEvent, nb: &dyn Notebook) -> Option<Command> {
        let ch = match ev.code {
            KeyCode::Char(c) => Some(c),
            _ => None,
        };
        match popup {
            Popup::ConfirmCancel(id) => {
                if ch == Some('y') || ev.code == KeyCode::Enter {
                    if nb.stop(id, StopReason::Cancel) {
                        self.message = Some(format!("cancelling run {id}"));
                    }
                    self.refresh(nb);
                }
            }
            Popup::Quit { .. } => match ch {
                Some('l') => return Some(Command::QuitDetach),
                Some('s') => return Some(Command::QuitStop),
                _ => {} // anything else: stay
            },
            Popup::EditNote { run, text } => {
                if let Some(text) = edit_text(text, &ev) {
                    match text {
                        Edited::Typing(text) => self.popup = Some(Popup::EditNote { run, text }),
                        Edited::Done(text) => match nb.set_note(run, text) {
                            Ok(()) => {
                                self.message = Some(format!("note of run {run} saved"));
                                self.refresh(nb);
                            }
                            Err(e) => self.message = Some(format!("note not saved: {e}")),
                        },
                    }
                }
            }
            Popup::EditTags { run, text } => {
                if let Some(text) = edit_text(text, &ev) {
                    match text {
                        Edited::Typing(text) => self.popup = Some(Popup::EditTags { run, text }),
                        Edited::Done(text) => {
                            let tags: BTreeSet<String> =
                                text.split([' ', ',']).filter(|t| !t.is_empty()).map(str::to_string).collect();
                            match nb.set_tags(run, tags) {
                                Ok(()) => {
                                    self.message = Some(format!("tags of run {run} saved"));
                                    self.refresh(nb);
                                }
                                Err(e) => self.message = Some(format!("tags not saved: {e}")),
                            }
                        }
                    }
                }
            }
            Popup::Files { files, mut cursor } => match ev.code {
                KeyCode::Up | KeyCode::Char('k') => {
                    cursor = cursor.saturating_sub(1);
                    self.popup = Some(Popup::Files { files, cursor });
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    cursor = (cursor + 1).min(files.len().saturating_sub(1));
                    self.popup = Some(Popup::Files { files, cursor });
                }
                // A sweep file fills the form with its first run, every arch and every seed.
                KeyCode::Enter => match crate::spec::sweep::SweepSpec::expand_file(&files[cursor]) {
                    Ok(specs) => {
                        self.form.load_all(&specs);
                        let sizes = specs.iter().map(|s| (s.model.n_embd(), s.model.n_layer())).collect::<BTreeSet<_>>();
                        let note = if sizes.len() > 1 { " (the form keeps one model size: the first run's)" } else { "" };
                        self.message = Some(format!("loaded {}{note}", files[cursor].display()));
                    }
                    Err(e) => self.message = Some(format!("{e}")),
                },
                _ => {}
            },
            Popup::SaveAs { mut text } => match ev.code {
                KeyCode::Enter => self.save_form(Path::new(&text)),
                KeyCode::Esc => {}
                KeyCode::Backspace => {
                    text.pop();
                    self.popup = Some(Popup::SaveAs { text });
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    self.popup = Some(Popup::SaveAs { text });
                }
                _ => self.popup = Some(Popup::SaveAs { text }),
            },
        }
        None
    }

    fn save_form(&mut self, path: &Path) {
        let specs = match self.form.specs() {
            Ok(s) => s,
            Err(e) => {
                self.message = Some(format!("fix {} field(s) before saving", e.len()));
                return;
            }
        };
        let result = (|| -> std::io::Result<Vec<PathBuf>> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // One file per architecture (seeds are a launch-time choice: the first is saved).
            let mut written = Vec::new();
            let mut seen = BTreeSet::new();
            let several = specs.iter().map(|s| s.model.arch()).collect::<BTreeSet<_>>().len() > 1;
            for spec in &specs {
                if !seen.insert(spec.model.arch()) {
                    continue;
                }
                let file = if several {
                    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    path.with_file_name(format!("{stem}-{}.toml", spec.model.arch()))
                } else {
                    path.to_path_buf()
                };
                std::fs::write(&file, spec.to_toml())?;
                written.push(file);
            }
            Ok(written)
        })();
        self.message = Some(match result {
            Ok(files) => format!("saved {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")),
            Err(e) => format!("not saved: {}: {e}", path.display()),
        });
    }

    /// A task x arch cell of the matrix: the task's latest experiment family, its seeds.
    pub fn matrix_cell(&self, task: usize, arch: usize) -> Option<&MatrixCell> {
        self.matrix.get(&(TASKS[task].to_string(), ARCHS[arch].to_string()))
    }
}

enum Edited {
    Typing(String),
    Done(String),
}

/// One key of a one-line text edit; `None` when it was abandoned (Esc).
fn edit_text(mut text: String, ev: &KeyEvent) -> Option<Edited> {
    match ev.code {
        KeyCode::Esc => return None,
        KeyCode::Enter => return Some(Edited::Done(text)),
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => text.push(c),
        _ => {}
    }
    Some(Edited::Typing(text))
}

/// Appends the store's new points for a series (only what is past the last one held).
fn update_series(s: &mut Series, nb: &dyn Notebook) {
    let after = s.metrics.last().map_or(0, |m| m.step);
    if let Ok(new) = nb.metrics_after(s.run, after) {
        s.metrics.extend(new);
    }
    if let Ok(evals) = nb.evals(s.run) {
        s.evals = evals;
    }
}

/// Experiment files under `dir`, sorted.
pub fn experiment_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

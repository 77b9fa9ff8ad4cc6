//! The new-experiment form: a task, one or several architectures, seeds and training settings.
//! Values are edited as text; `specs()` turns them into one `ExperimentSpec` per arch x seed
//! and maps every validation error back to the field it belongs to.

use std::collections::BTreeMap;

use crate::spec::{CurriculumSpec, DeviceSpec, ExperimentSpec, ModelSpec, Schedule, SpecError, TaskSpec, TrainSpec};

pub const TASKS: &[&str] = &TaskSpec::KINDS;
pub const ARCHS: &[&str] = &["gpt2", "mamba", "s4", "s4_mamba", "mambaformer", "hybrid"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldId {
    Name,
    Task,
    Dims,
    TaskParam,
    Archs,
    Embd,
    Layers,
    Heads,
    Points,
    Seeds,
    Steps,
    Batch,
    Lr,
    EvalEvery,
    Device,
}

pub const FIELDS: [FieldId; 15] = [
    FieldId::Name,
    FieldId::Task,
    FieldId::Dims,
    FieldId::TaskParam,
    FieldId::Archs,
    FieldId::Embd,
    FieldId::Layers,
    FieldId::Heads,
    FieldId::Points,
    FieldId::Seeds,
    FieldId::Steps,
    FieldId::Batch,
    FieldId::Lr,
    FieldId::EvalEvery,
    FieldId::Device,
];

#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub name: String,
    pub task: usize,
    pub dims: String,
    /// sparsity, hidden width or depth, by task; unused for linear regression.
    pub task_param: String,
    pub archs: [bool; 6],
    pub embd: String,
    pub layers: String,
    pub heads: String,
    pub points: String,
    pub seeds: String,
    pub steps: String,
    pub batch: String,
    pub lr: String,
    pub eval_every: String,
    pub device: String,
    /// The field under the cursor, and the arch under the cursor in the arch row.
    pub cursor: usize,
    pub arch_cursor: usize,
    /// Typing into the field under the cursor.
    pub editing: bool,
    /// Problems per field, from the last check.
    pub errors: BTreeMap<usize, String>,
}

impl Default for Form {
    /// The quick linear-regression experiment: trains on a CPU in about a minute.
    fn default() -> Self {
        Form {
            name: "my-experiment".into(),
            task: 0,
            dims: "5".into(),
            task_param: String::new(),
            archs: [true, false, false, false, false, false],
            embd: "64".into(),
            layers: "2".into(),
            heads: "4".into(),
            points: "11".into(),
            seeds: "0".into(),
            steps: "2000".into(),
            batch: "32".into(),
            lr: "1e-3".into(),
            eval_every: "500".into(),
            device: "auto".into(),
            cursor: 0,
            arch_cursor: 0,
            editing: false,
            errors: BTreeMap::new(),
        }
    }
}

impl FieldId {
    pub fn label(self, form: &Form) -> &'static str {
        match self {
            FieldId::Name => "name",
            FieldId::Task => "task",
            FieldId::Dims => "x dims",
            FieldId::TaskParam => task_param(TASKS[form.task]).map_or("(none)", |(label, _)| label),
            FieldId::Archs => "archs",
            FieldId::Embd => "width",
            FieldId::Layers => "layers",
            FieldId::Heads => "heads",
            FieldId::Points => "examples",
            FieldId::Seeds => "seeds",
            FieldId::Steps => "steps",
            FieldId::Batch => "batch",
            FieldId::Lr => "lr",
            FieldId::EvalEvery => "eval every",
            FieldId::Device => "device",
        }
    }

    /// Spec fields whose errors belong to this form field.
    fn owns(self, spec_field: &str) -> bool {
        let prefixes: &[&str] = match self {
            FieldId::Name => &["name"],
            FieldId::Task => &["task.kind"],
            FieldId::Dims => &["task.n_dims", "train.curriculum.dims"],
            FieldId::TaskParam => &["task.sparsity", "task.hidden", "task.depth", "task.p", "task.k", "task.queries", "task.vocab"],
            FieldId::Archs => &["model.arch"],
            FieldId::Embd => &["model.n_embd"],
            FieldId::Layers => &["model.n_layer"],
            FieldId::Heads => &["model.n_head"],
            FieldId::Points => &["train.curriculum.points", "model.n_positions"],
            FieldId::Seeds => &["seed"],
            FieldId::Steps => &["train.steps"],
            FieldId::Batch => &["train.batch_size"],
            FieldId::Lr => &["train.lr"],
            FieldId::EvalEvery => &["train.eval_every", "train.eval_prompts", "train.log_every"],
            FieldId::Device => &["device"],
        };
        // The model's size as a whole ("model") is the width's to fix, first of all.
        prefixes.iter().any(|p| spec_field.starts_with(p)) || (self == FieldId::Embd && spec_field == "model")
    }
}

fn num<T: std::str::FromStr + Default>(text: &str, field: usize, errors: &mut BTreeMap<usize, String>) -> T {
    match text.trim().parse() {
        Ok(v) => v,
        Err(_) => {
            errors.entry(field).or_insert_with(|| format!("not a number: {text:?}"));
            T::default()
        }
    }
}

impl Form {
    pub fn field(&self) -> FieldId {
        FIELDS[self.cursor]
    }

    /// The text of a text field (None for the task choice and the arch flags).
    pub fn text_mut(&mut self, f: FieldId) -> Option<&mut String> {
        Some(match f {
            FieldId::Name => &mut self.name,
            FieldId::Dims => &mut self.dims,
            FieldId::TaskParam => &mut self.task_param,
            FieldId::Embd => &mut self.embd,
            FieldId::Layers => &mut self.layers,
            FieldId::Heads => &mut self.heads,
            FieldId::Points => &mut self.points,
            FieldId::Seeds => &mut self.seeds,
            FieldId::Steps => &mut self.steps,
            FieldId::Batch => &mut self.batch,
            FieldId::Lr => &mut self.lr,
            FieldId::EvalEvery => &mut self.eval_every,
            FieldId::Device => &mut self.device,
            FieldId::Task | FieldId::Archs => return None,
        })
    }

    pub fn value(&self, f: FieldId) -> String {
        match f {
            FieldId::Task => TASKS[self.task].to_string(),
            FieldId::Archs => {
                let on: Vec<&str> = ARCHS.iter().zip(self.archs).filter(|(_, on)| *on).map(|(a, _)| *a).collect();
                on.join(", ")
            }
            other => self.clone().text_mut(other).map(|s| s.clone()).unwrap_or_default(),
        }
    }

    /// Moves a choice (task) or the arch cursor.
    pub fn step_choice(&mut self, delta: isize) {
        match self.field() {
            FieldId::Task => {
                self.task = (self.task as isize + delta).rem_euclid(TASKS.len() as isize) as usize;
                self.task_param = task_param(TASKS[self.task]).map_or("", |(_, default)| default).into();
            }
            FieldId::Archs => {
                self.arch_cursor = (self.arch_cursor as isize + delta).rem_euclid(ARCHS.len() as isize) as usize;
            }
            _ => {}
        }
    }

    pub fn toggle_arch(&mut self) {
        self.archs[self.arch_cursor] = !self.archs[self.arch_cursor];
    }

    fn seeds_list(&self, errors: &mut BTreeMap<usize, String>) -> Vec<u64> {
        let idx = FIELDS.iter().position(|f| *f == FieldId::Seeds).expect("seeds field");
        match crate::store::query::parse_ids(std::slice::from_ref(&self.seeds)) {
            Ok(ids) if ids.len() <= 100 => ids,
            Ok(_) => {
                errors.insert(idx, "at most 100 seeds".into());
                Vec::new()
            }
            Err(e) => {
                errors.insert(idx, format!("{e} (e.g. 0,1,2 or 0-2)"));
                Vec::new()
            }
        }
    }

    /// One spec per selected arch x seed, or the problems by field (also kept in `errors`).
    pub fn specs(&mut self) -> Result<Vec<ExperimentSpec>, BTreeMap<usize, String>> {
        let mut errors = BTreeMap::new();
        let pos = |f: FieldId| FIELDS.iter().position(|x| *x == f).expect("field");
        let dims: usize = num(&self.dims, pos(FieldId::Dims), &mut errors);
        let embd: usize = num(&self.embd, pos(FieldId::Embd), &mut errors);
        let layers: usize = num(&self.layers, pos(FieldId::Layers), &mut errors);
        let heads: usize = num(&self.heads, pos(FieldId::Heads), &mut errors);
        let points: usize = num(&self.points, pos(FieldId::Points), &mut errors);
        let steps: usize = num(&self.steps, pos(FieldId::Steps), &mut errors);
        let batch: usize = num(&self.batch, pos(FieldId::Batch), &mut errors);
        let lr: f64 = num(&self.lr, pos(FieldId::Lr), &mut errors);
        let eval_every: usize = num(&self.eval_every, pos(FieldId::EvalEvery), &mut errors);
        let device: DeviceSpec = match self.device.parse() {
            Ok(d) => d,
            Err(e) => {
                errors.insert(pos(FieldId::Device), e.to_string());
                DeviceSpec::Auto
            }
        };
        let seeds = self.seeds_list(&mut errors);
        if !self.archs.iter().any(|a| *a) {
            errors.insert(pos(FieldId::Archs), "select at least one architecture (Enter toggles)".into());
        }
        let task = task_spec(TASKS[self.task], dims, &self.task_param).unwrap_or_else(|e| {
            errors.insert(pos(FieldId::TaskParam), e);
            TaskSpec::LinearRegression { n_dims: dims }
        });
        let mut specs = Vec::new();
        for (arch, _) in ARCHS.iter().zip(self.archs).filter(|(_, on)| *on) {
            let model = model_spec(arch, embd, layers, heads, task.tokens(points));
            for &seed in &seeds {
                let spec = ExperimentSpec {
                    name: if self.archs.iter().filter(|a| **a).count() > 1 {
                        format!("{}-{arch}", self.name.trim())
                    } else {
                        self.name.trim().to_string()
                    },
                    seed,
                    device,
                    task: task.clone(),
                    model: model.clone(),
                    train: TrainSpec {
                        steps,
                        batch_size: batch,
                        lr,
                        grad_clip: 10.0,
                        eval_every,
                        eval_prompts: 256,
                        log_every: 10,
                        checkpoint_every: None,
                        curriculum: CurriculumSpec { dims: Schedule::fixed(dims), points: Schedule::fixed(points) },
                    },
                };
                if let Err(errs) = spec.validate() {
                    for e in errs.0 {
                        if let SpecError::Invalid { field, rule, got } = &e {
                            if let Some(i) = FIELDS.iter().position(|f| f.owns(field)) {
                                errors.entry(i).or_insert_with(|| format!("{rule}, got {got}"));
                                continue;
                            }
                        }
                        errors.entry(0).or_insert_with(|| e.to_string());
                    }
                }
                specs.push(spec);
            }
        }
        self.errors = errors.clone();
        if errors.is_empty() {
            Ok(specs)
        } else {
            Err(errors)
        }
    }

    /// Fills the form from the runs of a sweep: the first run's settings, every arch and seed.
    pub fn load_all(&mut self, specs: &[ExperimentSpec]) {
        let Some(first) = specs.first() else { return };
        self.load(first);
        for spec in specs {
            if let Some(i) = ARCHS.iter().position(|a| *a == spec.model.arch()) {
                self.archs[i] = true;
            }
        }
        let seeds: std::collections::BTreeSet<u64> = specs.iter().map(|s| s.seed).collect();
        self.seeds = seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    }

    /// Fills the form from a spec (an experiment file as a starting point).
    pub fn load(&mut self, spec: &ExperimentSpec) {
        self.name = spec.name.clone();
        self.seeds = spec.seed.to_string();
        self.device = spec.device.to_string();
        self.task = TASKS.iter().position(|k| *k == spec.task.kind()).unwrap_or(0);
        self.task_param = task_param_value(&spec.task);
        self.dims = spec.train.curriculum.dims.end.min(spec.task.n_dims()).to_string();
        self.archs = [false; 6];
        if let Some(i) = ARCHS.iter().position(|a| *a == spec.model.arch()) {
            self.archs[i] = true;
        }
        self.embd = spec.model.n_embd().to_string();
        self.layers = spec.model.n_layer().to_string();
        if let ModelSpec::Gpt2 { n_head, .. } | ModelSpec::Mambaformer { n_head, .. } | ModelSpec::Hybrid { n_head, .. } =
            &spec.model
        {
            self.heads = n_head.to_string();
        }
        self.points = spec.train.curriculum.points.end.to_string();
        self.steps = spec.train.steps.to_string();
        self.batch = spec.train.batch_size.to_string();
        self.lr = format!("{:e}", spec.train.lr);
        self.eval_every = spec.train.eval_every.to_string();
        self.errors.clear();
    }
}

/// The model of `arch` at the given sizes; prompt positions sized to `points` examples.
pub fn model_spec(arch: &str, n_embd: usize, n_layer: usize, n_head: usize, tokens: usize) -> ModelSpec {
    let (d_state, d_conv, expand) = (16, 4, 2);
    match arch {
        "mamba" => ModelSpec::Mamba { n_embd, n_layer, d_state, d_conv, expand, dt_rank: None },
        "s4" => ModelSpec::S4 { n_embd, n_layer, d_state },
        "s4_mamba" => ModelSpec::S4Mamba { n_embd, n_layer, d_state, d_conv, expand, dropout: 0.1 },
        "mambaformer" => ModelSpec::Mambaformer { n_embd, n_layer, n_head, d_state, d_conv, expand, dt_rank: None },
        "hybrid" => ModelSpec::Hybrid { n_embd, n_layer, n_head, n_positions: tokens, d_state, d_conv, expand, dt_rank: None },
        // GPT-2's n_positions counts pairs (its table holds twice as many tokens).
        _ => ModelSpec::Gpt2 { n_embd, n_layer, n_head, n_positions: tokens.div_ceil(2) },
    }
}

/// A task's one parameter in the form: its label and default, None for linear regression.
fn task_param(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "sparse_linear_regression" => ("sparsity", "3"),
        "relu_2nn_regression" => ("hidden", "100"),
        "decision_tree" => ("depth", "4"),
        "orthogonal_outlier_regression" => ("outlier p", "0.5"),
        "many_outlier_regression" => ("outlier p", "0.9"),
        "sparse_parity" => ("subset k", "2"),
        "chain_of_thought" => ("hidden k", "4"),
        "vector_mqar" => ("queries", "1"),
        "token_mqar" => ("queries", "4"),
        _ => return None,
    })
}

/// The task of kind `kind` with x width `dims` (the vocabulary for token MQAR) and the form's
/// parameter text; Err says why the parameter is not a number.
fn task_spec(kind: &str, dims: usize, param: &str) -> Result<TaskSpec, String> {
    let int = || param.trim().parse::<usize>().map_err(|_| format!("not a whole number: {param:?}"));
    let real = || param.trim().parse::<f64>().map_err(|_| format!("not a number: {param:?}"));
    Ok(match kind {
        "sparse_linear_regression" => TaskSpec::SparseLinearRegression { n_dims: dims, sparsity: int()? },
        "relu_2nn_regression" => TaskSpec::Relu2nnRegression { n_dims: dims, hidden: int()? },
        "decision_tree" => TaskSpec::DecisionTree { n_dims: dims, depth: int()? },
        "orthogonal_outlier_regression" => TaskSpec::OrthogonalOutlierRegression { n_dims: dims, p: real()? },
        "many_outlier_regression" => TaskSpec::ManyOutlierRegression { n_dims: dims, p: real()? },
        "sparse_parity" => TaskSpec::SparseParity { n_dims: dims, k: int()?, subset_per: Default::default() },
        "chain_of_thought" => TaskSpec::ChainOfThought { n_dims: dims, hidden: int()? },
        "vector_mqar" => TaskSpec::VectorMqar { n_dims: dims, queries: int()? },
        "token_mqar" => TaskSpec::TokenMqar { vocab: dims, queries: int()? },
        _ => TaskSpec::LinearRegression { n_dims: dims },
    })
}

/// The form's parameter text for a task (inverse of `task_spec`).
fn task_param_value(task: &TaskSpec) -> String {
    match *task {
        TaskSpec::LinearRegression { .. } => String::new(),
        TaskSpec::SparseLinearRegression { sparsity, .. } => sparsity.to_string(),
        TaskSpec::Relu2nnRegression { hidden, .. } | TaskSpec::ChainOfThought { hidden, .. } => hidden.to_string(),
        TaskSpec::DecisionTree { depth, .. } => depth.to_string(),
        TaskSpec::OrthogonalOutlierRegression { p, .. } | TaskSpec::ManyOutlierRegression { p, .. } => p.to_string(),
        TaskSpec::SparseParity { k, .. } => k.to_string(),
        TaskSpec::VectorMqar { queries, .. } | TaskSpec::TokenMqar { queries, .. } => queries.to_string(),
    }
}

use super::*;

const QUICK: &str = include_str!("../../experiments/quick/linear_regression.toml");
const PAPER: &str = include_str!("../../experiments/paper/linear_regression.toml");

/// The GPT-2 run of seed 0 of the paper's linear-regression sweep.
fn paper_gpt2() -> ExperimentSpec {
    let runs = sweep::SweepSpec::from_toml(PAPER).and_then(|s| s.expand()).unwrap();
    runs.into_iter().find(|r| r.model.arch() == "gpt2" && r.seed == 0).unwrap()
}

fn err(text: &str) -> String {
    ExperimentSpec::from_toml(text).expect_err("spec should be rejected").to_string()
}

#[test]
fn shipped_experiments_parse_and_validate() {
    let quick = ExperimentSpec::from_toml(QUICK).unwrap();
    assert_eq!(quick.task, TaskSpec::LinearRegression { n_dims: 5 });
    let paper = paper_gpt2();
    assert_eq!(paper.train.lr, 1e-4);
    assert_eq!(paper.train.curriculum.points.at(30_000), 41);
    assert_eq!(paper.model.arch(), "gpt2");
}

#[test]
fn round_trips_through_toml() {
    let spec = paper_gpt2();
    assert_eq!(ExperimentSpec::from_toml(&spec.to_toml()).unwrap(), spec);
}

#[test]
fn nan_lr_names_field_and_range() {
    let e = err(&QUICK.replace("lr = 1e-3", "lr = nan"));
    assert_eq!(e, "train.lr must be > 0 and finite, got NaN");
}

#[test]
fn unknown_keys_are_errors() {
    let e = err(&QUICK.replace("lr = 1e-3", "lr = 1e-3\nlearning_rate = 1"));
    assert!(e.contains("unknown field `learning_rate`"), "{e}");
    assert!(e.contains("line "), "{e}");
    let e = err(&QUICK.replace("n_dims = 5", "n_dims = 5\nsparsity = 3"));
    assert!(e.contains("unknown field `sparsity`"), "{e}");
}

#[test]
fn unknown_task_and_arch_are_errors() {
    let e = err(&QUICK.replace("\"linear_regression\"", "\"quadratic\""));
    assert!(e.contains("unknown variant `quadratic`"), "{e}");
    let e = err(&QUICK.replace("\"gpt2\"", "\"lstm\""));
    assert!(e.contains("unknown variant `lstm`"), "{e}");
}

#[test]
fn negative_dims_are_errors() {
    let e = err(&QUICK.replace("n_dims = 5", "n_dims = -5"));
    assert!(e.contains("invalid value: integer `-5`"), "{e}");
}

#[test]
fn points_beyond_model_positions_are_errors() {
    let e = err(&QUICK.replace("points = { start = 11, end = 11 }", "points = { start = 11, end = 40 }"));
    assert_eq!(e, "train.curriculum.points.end makes prompts of 80 tokens for this task: must fit 2 x model.n_positions (22 tokens), got 40");
}

#[test]
fn heads_must_divide_width() {
    let e = err(&QUICK.replace("n_head = 4", "n_head = 5"));
    assert_eq!(e, "model.n_head must divide model.n_embd (64), got 5");
}

#[test]
fn curriculum_dims_cannot_exceed_task_dims() {
    let e = err(&QUICK.replace("dims = { start = 5, end = 5 }", "dims = { start = 5, end = 6 }"));
    assert_eq!(e, "train.curriculum.dims.end must be <= task.n_dims (5), got 6");
}

#[test]
fn every_problem_is_reported() {
    let text = QUICK.replace("lr = 1e-3", "lr = -1").replace("steps = 2000", "steps = 0");
    let errs = ExperimentSpec::from_toml(&text).unwrap_err();
    assert_eq!(errs.0.len(), 2, "{errs}");
}

#[test]
fn syntax_errors_give_a_location() {
    let e = err("name = \"x\"\n[task\nkind = 1");
    assert!(e.starts_with("line 2"), "{e}");
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn device_strings() {
    assert_eq!("cuda:3".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(3)));
    assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
    assert_eq!("cpu".parse::<DeviceSpec>(), Ok(DeviceSpec::Cpu));
    assert!("tpu".parse::<DeviceSpec>().is_err());
    let e = err(&QUICK.replace("device = \"auto\"", "device = \"cuda:x\""));
    assert!(e.contains("device must be auto, cpu, cuda or cuda:N"), "{e}");
}

#[test]
fn every_shipped_experiment_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut seen = 0;
    for dir in ["quick", "extra"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                ExperimentSpec::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
    }
    assert!(seen >= 10, "only {seen} experiment files found");
}

/// Issue 8's grid: per paper task, all six architectures (Mamba-family models of 2L blocks
/// against a GPT-2 of L, same width) x 3 seeds, at full and at reduced scale; the reduced
/// curriculum reaches full size by half-way, so the evaluated size is the trained one.
#[test]
fn paper_sweeps_hold_six_architectures_and_three_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper");
    let mut files = 0;
    for dir in [root.clone(), root.join("reduced")] {
        for &task in crate::report::matrix::PAPER_TASKS {
            let stem = task.strip_suffix("_regression").filter(|s| s.ends_with("outlier")).unwrap_or(task);
            let path = dir.join(format!("{stem}.toml"));
            let runs = sweep::SweepSpec::expand_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(runs.len(), 18, "{}", path.display());
            assert!(runs.iter().all(|r| r.task.kind() == task), "{}", path.display());
            let gpt = runs.iter().find(|r| r.model.arch() == "gpt2").unwrap();
            let (width, depth) = (gpt.model.n_embd(), gpt.model.n_layer());
            for arch in crate::report::matrix::ARCHS {
                let of_arch: Vec<_> = runs.iter().filter(|r| r.model.arch() == arch).collect();
                assert_eq!(of_arch.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![0, 1, 2], "{arch}");
                if arch != "gpt2" {
                    let size = (of_arch[0].model.n_embd(), of_arch[0].model.n_layer());
                    assert_eq!(size, (width, 2 * depth), "{arch} in {}", path.display());
                }
            }
            let c = &gpt.train.curriculum;
            let full = |at: usize| c.points.at(at) == c.points.end && c.dims.at(at) == c.dims.end;
            assert!(full(gpt.train.steps / 2), "{}: curriculum not full by half-way", path.display());
            files += 1;
        }
    }
    assert_eq!(files, 18);

    // The longer sparse-parity pair is the reduced grid's GPT-2 and Mamba, only trained longer.
    let long = sweep::SweepSpec::expand_file(&root.join("long/sparse_parity.toml")).unwrap();
    let reduced = sweep::SweepSpec::expand_file(&root.join("reduced/sparse_parity.toml")).unwrap();
    assert_eq!(long.iter().map(|r| r.model.arch()).collect::<Vec<_>>(), ["gpt2", "mamba"]);
    for run in &long {
        let twin = reduced.iter().find(|r| r.model.arch() == run.model.arch() && r.seed == run.seed).unwrap();
        assert_eq!((&run.task, &run.model), (&twin.task, &twin.model));
        assert_eq!(run.train.steps, 5 * twin.train.steps);
    }
}

#[test]
fn task_parameters_are_validated() {
    let with_task = |task: &str| QUICK.replace("kind = \"linear_regression\"\nn_dims = 5", task);
    let e = err(&with_task("kind = \"sparse_linear_regression\"\nn_dims = 5\nsparsity = 6"));
    assert_eq!(e, "task.sparsity must be in 1..=task.n_dims (5), got 6");
    let e = err(&with_task("kind = \"decision_tree\"\nn_dims = 5\ndepth = 0"));
    assert_eq!(e, "task.depth must be in 1..=20, got 0");
    let e = err(&with_task("kind = \"relu_2nn_regression\"\nn_dims = 5\nhidden = 0"));
    assert_eq!(e, "task.hidden must be in 1..=100000, got 0");
    let spec = ExperimentSpec::from_toml(&with_task("kind = \"decision_tree\"\nn_dims = 5")).unwrap();
    assert_eq!(spec.task, TaskSpec::DecisionTree { n_dims: 5, depth: 4 });
}

#[test]
fn new_task_parameters_are_validated() {
    let with_task = |task: &str| QUICK.replace("kind = \"linear_regression\"\nn_dims = 5", task);
    let e = err(&with_task("kind = \"sparse_parity\"\nn_dims = 5\nk = 6"));
    assert_eq!(e, "task.k must be in 1..=task.n_dims (5), got 6");
    let e = err(&with_task("kind = \"orthogonal_outlier_regression\"\nn_dims = 5\np = 1.5"));
    assert_eq!(e, "task.p must be in [0, 1), got 1.5");
    let e = err(&with_task("kind = \"many_outlier_regression\"\nn_dims = 5\np = -0.1"));
    assert_eq!(e, "task.p must be in [0, 1), got -0.1");
    let e = err(&with_task("kind = \"vector_mqar\"\nn_dims = 5\nqueries = 12"));
    assert!(e.starts_with("task.queries must be in 1..=train.curriculum.points.start (11, the key/value pairs), got 12"), "{e}");
    let e = err(&with_task("kind = \"token_mqar\"\nvocab = 16\nqueries = 2"));
    assert!(e.starts_with("task.vocab must be >= 4 and hold distinct keys"), "{e}");
    let e = err(&with_task("kind = \"sparse_parity\"\nn_dims = 5\nsubset_per = \"epoch\""));
    assert!(e.contains("unknown variant `epoch`"), "{e}");
    let spec = ExperimentSpec::from_toml(&with_task("kind = \"sparse_parity\"\nn_dims = 5")).unwrap();
    assert_eq!(spec.task, TaskSpec::SparseParity { n_dims: 5, k: 2, subset_per: SubsetPer::Prompt });
    // Chain-of-thought prompts are 3 tokens an example: 11 examples need 33 positions.
    let e = err(&with_task("kind = \"chain_of_thought\"\nn_dims = 5"));
    assert!(e.contains("makes prompts of 33 tokens"), "{e}");
}

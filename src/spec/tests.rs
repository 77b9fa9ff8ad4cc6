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

/// A prompt length whose token count passes 2⁶⁴ is refused, not wrapped around to a short one.
#[test]
fn prompt_lengths_past_the_word_size_are_refused() {
    let cot = include_str!("../../experiments/quick/chain_of_thought.toml");
    let end = cot.lines().find(|l| l.starts_with("points = ")).expect("a points schedule");
    let huge = format!("points = {{ start = 1, end = {} }}", u64::MAX / 3 + 1);
    let e = err(&cot.replace(end, &huge));
    assert!(e.contains("train.curriculum.points.end makes prompts of 18446744073709551615 tokens"), "{e}");
}

/// A model too large to train (a typo's extra digits) is refused with its size and the keys
/// that make it, rather than ending the process when memory runs out.
#[test]
fn models_past_2_to_the_32_parameters_are_refused() {
    let e = err(&QUICK.replace("n_embd = 64", "n_embd = 10000000").replace("n_head = 4", "n_head = 1"));
    assert_eq!(e, "model must have at most 2^32 parameters (16 GiB of f32 weights, four times that to train), got 2.400e15 (n_embd 10000000, n_layer 2, n_positions 11)");
    // 18,900 wide is 2 x 12 x 18,900² = 8.6e9; 13,300 (4.2e9) passes.
    assert!(err(&QUICK.replace("n_embd = 64", "n_embd = 18900").replace("n_head = 4", "n_head = 1")).starts_with("model must have"));
    assert!(ExperimentSpec::from_toml(&QUICK.replace("n_embd = 64", "n_embd = 13300").replace("n_head = 4", "n_head = 1")).is_ok());
}

/// A batch or an evaluation set too large to hold is refused with the keys that size it.
#[test]
fn batches_and_evaluation_sets_past_2_to_the_31_values_are_refused() {
    // 2·11 tokens x 64 wide: 1.5e6 values a prompt.
    let e = err(&QUICK.replace("batch_size = 32", "batch_size = 2000000"));
    assert_eq!(e, "train.batch_size with prompts of 22 tokens (train.curriculum.points.end) and model.n_embd 64 makes activations of 2.816e9 values: at most 2^31 (8 GiB) fit, got 2000000");
    assert!(ExperimentSpec::from_toml(&QUICK.replace("batch_size = 32", "batch_size = 1000000")).is_ok());
    // 22 tokens of 5 + 1 values: 132 a prompt.
    let e = err(&QUICK.replace("eval_prompts = 256", "eval_prompts = 20000000"));
    assert!(e.starts_with("train.eval_prompts with prompts of 22 tokens (train.curriculum.points.end) of task.n_dims + 1 values make an evaluation set of 2.640e9 values"), "{e}");
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
    // At the key, though serde reports a tagged enum's (the task's) bad field at its table.
    assert_eq!(e, "line 10, column 1: n_dims: invalid value: integer `-5`, expected usize");
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

/// Any number in any shipped experiment or sweep file, replaced by any other: the file is
/// either refused with an error at that key (its name, or its line) or gives runs that are
/// sound (their prompts fit the model, counted without overflow) and survive a round trip
/// through TOML. Never a panic.
mod any_number_anywhere {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Path, PathBuf};

    /// A number in a file: its 1-based line, its key and its byte range.
    #[derive(Debug, Clone)]
    struct Number {
        file: PathBuf,
        line: usize,
        key: String,
        at: std::ops::Range<usize>,
    }

    fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                toml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }

    /// Every `key = <number>` of every shipped file (inline tables too; arrays and comments
    /// not).
    fn numbers() -> &'static [Number] {
        static FOUND: std::sync::OnceLock<Vec<Number>> = std::sync::OnceLock::new();
        FOUND.get_or_init(find_numbers)
    }

    fn find_numbers() -> Vec<Number> {
        let mut files = Vec::new();
        toml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments"), &mut files);
        files.sort();
        let mut found = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut offset = 0;
            for (i, line) in text.split_inclusive('\n').enumerate() {
                let code = &line[..line.find('#').unwrap_or(line.len())];
                let mut from = 0;
                while let Some(eq) = code[from..].find(" = ").map(|p| p + from) {
                    let key_start = code[..eq].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |p| p + 1);
                    let value_start = eq + 3;
                    let value_end = code[value_start..].find([',', '}', ' ', '\n', '\r']).map_or(code.len(), |p| p + value_start);
                    let value = &code[value_start..value_end];
                    if value.starts_with(|c: char| c.is_ascii_digit() || c == '-') && value.replace('_', "").parse::<f64>().is_ok() {
                        let key = code[key_start..eq].to_string();
                        found.push(Number { file: file.clone(), line: i + 1, key, at: offset + value_start..offset + value_end });
                    }
                    from = value_end.max(value_start);
                }
                offset += line.len();
            }
        }
        found
    }

    /// What a user might type: any integer, the edges of the integer types (and values whose
    /// double or triple wraps a 64-bit count), any float, and TOML's non-finite floats.
    fn value() -> impl Strategy<Value = String> {
        let edges = [0, 1, -1, 2, 255, 256, 1023, 1024, 1025, u32::MAX as i64, u32::MAX as i64 + 1, i64::MAX / 3 + 1, i64::MAX / 2 + 1, (u64::MAX / 3 + 1) as i64, i64::MAX, i64::MIN];
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            prop::sample::select(edges.to_vec()).prop_map(|v| v.to_string()),
            (0i64..100_000).prop_map(|v| v.to_string()),
            prop::num::f64::NORMAL.prop_map(|v| format!("{v:?}")),
            (0.0f64..2.0).prop_map(|v| format!("{v:?}")),
            prop::sample::select(vec!["nan", "inf", "-inf", "-0.0", "1e-300"]).prop_map(str::to_string),
        ]
    }

    /// Tokens a prompt of `points` takes (TaskSpec::tokens), in exact arithmetic.
    fn exact_tokens(task: &TaskSpec, points: usize) -> u128 {
        let p = points as u128;
        match *task {
            TaskSpec::ChainOfThought { .. } => 3 * p,
            TaskSpec::VectorMqar { queries, .. } => 2 * p + queries as u128,
            TaskSpec::TokenMqar { queries, .. } => 2 * p + 2 * queries as u128 - 1,
            _ => 2 * p,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn is_refused_at_its_key_or_gives_sound_runs(which in any::<prop::sample::Index>(), value in value()) {
            let all = numbers();
            prop_assume!(!all.is_empty());
            let number = &all[which.index(all.len())];
            let mut text = std::fs::read_to_string(&number.file).unwrap();
            text.replace_range(number.at.clone(), &value);
            match sweep::SweepSpec::from_toml(&text).and_then(|s| s.expand()) {
                Ok(specs) => {
                    for spec in specs {
                        if let Some(max) = spec.model.max_tokens() {
                            let exact_max = match spec.model {
                                ModelSpec::Gpt2 { n_positions, .. } => 2 * n_positions as u128,
                                _ => max as u128,
                            };
                            let tokens = exact_tokens(&spec.task, spec.train.curriculum.points.end);
                            prop_assert!(tokens <= exact_max, "{}:{} {} = {value}: prompts of {tokens} tokens passed for a model of {exact_max}", number.file.display(), number.line, number.key);
                        }
                        prop_assert_eq!(ExperimentSpec::from_toml(&spec.to_toml()), Ok(spec));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    prop_assert!(
                        message.contains(&number.key) || message.contains(&format!("line {}, ", number.line)),
                        "{}:{} {} = {value}: the error names neither the key nor its line: {message}",
                        number.file.display(), number.line, number.key
                    );
                }
            }
        }
    }

    #[test]
    fn the_shipped_files_have_numbers_to_change() {
        let all = numbers();
        assert!(all.len() > 100, "{} numbers found", all.len());
        for key in ["n_dims", "lr", "n_positions", "start", "end", "n_head", "queries"] {
            assert!(all.iter().any(|n| n.key == key), "no {key} found");
        }
    }
}

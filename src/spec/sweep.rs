//! Sweep files: one task and training setup, several models and seeds, expanded into one
//! `ExperimentSpec` per model x seed.
//!
//! ```toml
//! name = "linear"
//! seeds = [0, 1, 2]          # default: [seed], else [0]
//! [task]                     # as in an experiment file
//! [train]                    # as in an experiment file
//! [[models]]                 # one table per model, as an experiment's [model]
//! arch = "gpt2"
//! ...
//! ```
//!
//! A plain experiment file (one `[model]`) is a sweep of one spec, times its `seeds` if given.
//! Runs are named `{name}-{arch}-s{seed}` (`{name}-{arch}-2-s{seed}` for a second model of
//! the same arch); a plain file keeps its name (`{name}-s{seed}` with several seeds).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{DeviceSpec, ExperimentSpec, ModelSpec, SpecError, SpecErrors, TaskSpec, TrainSpec};

/// A sweep file as written: every key of an experiment file, plus `seeds` and `[[models]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    #[serde(default)]
    pub device: DeviceSpec,
    pub task: TaskSpec,
    /// A plain experiment file's single model.
    #[serde(default)]
    pub model: Option<ModelSpec>,
    #[serde(default)]
    pub models: Option<Vec<ModelSpec>>,
    pub train: TrainSpec,
}

impl SweepSpec {
    /// Reads a sweep (or plain experiment) file; `expand` validates it.
    pub fn load(path: &Path) -> Result<Self, SpecErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecErrors::one(SpecError::Io { path: path.display().to_string(), reason: e.to_string() })
        })?;
        Self::from_toml(&text).map_err(|e| e.with_path(path))
    }

    pub fn from_toml(text: &str) -> Result<Self, SpecErrors> {
        toml::from_str(text).map_err(|e| SpecErrors::one(SpecError::from_toml(&e, text)))
    }

    /// Reads and expands a file: every spec it stands for, each validated.
    pub fn expand_file(path: &Path) -> Result<Vec<ExperimentSpec>, SpecErrors> {
        Self::load(path)?.expand().map_err(|e| e.with_path(path))
    }

    /// One validated spec per model x seed; all problems at once, each naming the model
    /// (`models[2].n_head must divide model.n_embd (128), got 7`).
    pub fn expand(&self) -> Result<Vec<ExperimentSpec>, SpecErrors> {
        let mut errs = Vec::new();
        let mut invalid = |field: &str, rule: &str, got: String| {
            errs.push(SpecError::Invalid { field: field.into(), rule: rule.into(), got })
        };
        let seeds = match (&self.seeds, self.seed) {
            (Some(_), Some(seed)) => {
                invalid("seed", "cannot be given together with seeds (list it in seeds)", seed.to_string());
                Vec::new()
            }
            (Some(s), None) if s.is_empty() => {
                invalid("seeds", "must list at least one seed", "[]".into());
                Vec::new()
            }
            (Some(s), None) => s.clone(),
            (None, seed) => vec![seed.unwrap_or(0)],
        };
        if let Some(dup) = seeds.iter().enumerate().find(|(i, s)| seeds[..*i].contains(s)).map(|(_, s)| *s) {
            invalid("seeds", "must not repeat a seed", dup.to_string());
        }
        let (models, plain) = match (&self.model, &self.models) {
            (Some(m), None) => (vec![m.clone()], true),
            (None, Some(ms)) if !ms.is_empty() => (ms.clone(), false),
            (None, Some(_)) => {
                invalid("models", "must list at least one model", "[]".into());
                (Vec::new(), false)
            }
            (Some(_), Some(_)) => {
                invalid("model", "cannot be given together with [[models]] (move it into the list)", "both".into());
                (Vec::new(), false)
            }
            (None, None) => {
                invalid("models", "is missing: give [model] or one [[models]] table per model", "nothing".into());
                (Vec::new(), false)
            }
        };

        let mut specs = Vec::new();
        let mut seen_arch: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, model) in models.iter().enumerate() {
            let n = seen_arch.entry(model.arch()).or_insert(0);
            *n += 1;
            let variant = if *n > 1 { format!("-{n}") } else { String::new() };
            let base = ExperimentSpec {
                name: self.name.clone(),
                seed: seeds.first().copied().unwrap_or(0),
                device: self.device,
                task: self.task.clone(),
                model: model.clone(),
                train: self.train.clone(),
            };
            if let Err(SpecErrors(found)) = base.validate() {
                for e in found {
                    let e = if plain { e } else { for_model(e, i) };
                    if !errs.contains(&e) {
                        errs.push(e);
                    }
                }
            }
            for &seed in &seeds {
                let name = match (plain, seeds.len()) {
                    (true, 1) => self.name.clone(),
                    (true, _) => format!("{}-s{seed}", self.name),
                    (false, _) => format!("{}-{}{variant}-s{seed}", self.name, model.arch()),
                };
                specs.push(ExperimentSpec { name, seed, ..base.clone() });
            }
        }
        if errs.is_empty() {
            Ok(specs)
        } else {
            Err(SpecErrors(errs))
        }
    }
}

/// Names the model of a sweep in a validation error: `model.n_head` becomes `models[2].n_head`;
/// a rule about the model (`must be <= model.n_positions (11)`) names it there instead.
fn for_model(e: SpecError, index: usize) -> SpecError {
    let at = format!("models[{index}].");
    match e {
        SpecError::Invalid { field, rule, got } => match field.strip_prefix("model.") {
            Some(rest) => SpecError::Invalid { field: format!("{at}{rest}"), rule, got },
            None if field == "model" => SpecError::Invalid { field: format!("models[{index}]"), rule, got },
            None if rule.contains("model.") => SpecError::Invalid { field, rule: rule.replace("model.", &at), got },
            None => SpecError::Invalid { field, rule, got },
        },
        other => other,
    }
}

/// Compresses a run for a reduced budget: `train.steps`, `eval_every`, `checkpoint_every` and
/// both curriculum intervals times `factor` (rounded, at least 1), so the curriculum reaches
/// its full size at the same fraction of training. `factor` must be in (0, 1].
pub fn scaled(spec: &ExperimentSpec, factor: f64) -> Result<ExperimentSpec, SpecError> {
    if !(factor > 0.0 && factor <= 1.0) {
        return Err(SpecError::Invalid {
            field: "--scale".into(),
            rule: "must be in (0, 1]".into(),
            got: factor.to_string(),
        });
    }
    let scale = |n: usize| ((n as f64 * factor).round() as usize).max(1);
    let mut s = spec.clone();
    let t = &mut s.train;
    t.steps = scale(t.steps);
    t.eval_every = scale(t.eval_every);
    t.checkpoint_every = t.checkpoint_every.map(scale);
    t.curriculum.dims.interval = scale(t.curriculum.dims.interval);
    t.curriculum.points.interval = scale(t.curriculum.points.interval);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: &str = include_str!("../../experiments/quick/linear_regression.toml");

    /// The quick experiment with its [model] table replaced by `models`.
    fn sweep_text(head: &str, models: &str) -> String {
        let start = QUICK.find("[model]").unwrap();
        let end = QUICK.find("[train]").unwrap();
        format!("{head}\n{}{models}\n{}", &QUICK[..start], &QUICK[end..])
    }

    const TWO_MODELS: &str = "[[models]]\narch = \"gpt2\"\nn_embd = 32\nn_layer = 1\nn_head = 2\nn_positions = 11\n\n\
        [[models]]\narch = \"mamba\"\nn_embd = 32\nn_layer = 2\n";

    fn expand_err(text: &str) -> String {
        SweepSpec::from_toml(text).and_then(|s| s.expand()).expect_err("should be rejected").to_string()
    }

    fn names(specs: &[ExperimentSpec]) -> Vec<&str> {
        specs.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn models_times_seeds_named_by_arch_and_seed() {
        let text = sweep_text("", TWO_MODELS).replace("seed = 0", "seeds = [0, 1, 2]");
        let specs = SweepSpec::from_toml(&text).unwrap().expand().unwrap();
        assert_eq!(
            names(&specs),
            [
                "quick-linear-regression-gpt2-s0",
                "quick-linear-regression-gpt2-s1",
                "quick-linear-regression-gpt2-s2",
                "quick-linear-regression-mamba-s0",
                "quick-linear-regression-mamba-s1",
                "quick-linear-regression-mamba-s2",
            ]
        );
        assert_eq!(specs.iter().map(|s| s.seed).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
        assert_eq!(specs[3].model.arch(), "mamba");
        assert_eq!(specs[3].model.n_embd(), 32);
        // Everything else comes from the shared tables.
        assert!(specs.iter().all(|s| s.train.steps == 2000 && s.task.n_dims() == 5));
    }

    #[test]
    fn seed_defaults_to_the_seed_key_then_zero() {
        let specs = SweepSpec::from_toml(&sweep_text("", TWO_MODELS).replace("seed = 0", "seed = 7"))
            .unwrap()
            .expand()
            .unwrap();
        assert_eq!(names(&specs), ["quick-linear-regression-gpt2-s7", "quick-linear-regression-mamba-s7"]);
        let specs =
            SweepSpec::from_toml(&sweep_text("", TWO_MODELS).replace("seed = 0\n", "")).unwrap().expand().unwrap();
        assert!(specs.iter().all(|s| s.seed == 0));
    }

    #[test]
    fn two_models_of_one_arch_get_a_suffix() {
        let wide = "[[models]]\narch = \"gpt2\"\nn_embd = 64\nn_layer = 2\nn_head = 4\nn_positions = 11\n";
        let specs = SweepSpec::from_toml(&sweep_text("", &format!("{TWO_MODELS}\n{wide}"))).unwrap().expand().unwrap();
        assert_eq!(
            names(&specs),
            ["quick-linear-regression-gpt2-s0", "quick-linear-regression-mamba-s0", "quick-linear-regression-gpt2-2-s0"]
        );
        assert_eq!(specs[2].model.n_embd(), 64);
    }

    #[test]
    fn a_plain_experiment_is_a_sweep_of_one() {
        let specs = SweepSpec::from_toml(QUICK).unwrap().expand().unwrap();
        assert_eq!(specs, vec![ExperimentSpec::from_toml(QUICK).unwrap()]);
        let specs = SweepSpec::from_toml(&QUICK.replace("seed = 0", "seeds = [3, 4]")).unwrap().expand().unwrap();
        assert_eq!(names(&specs), ["quick-linear-regression-s3", "quick-linear-regression-s4"]);
        assert_eq!(specs[1].seed, 4);
    }

    #[test]
    fn errors_name_the_model_index_and_field() {
        let bad = "[[models]]\narch = \"gpt2\"\nn_embd = 128\nn_layer = 1\nn_head = 7\nn_positions = 11\n";
        let e = expand_err(&sweep_text("", &format!("{TWO_MODELS}\n{bad}")));
        assert_eq!(e, "models[2].n_head must divide model.n_embd (128), got 7");
        // A rule about the whole model names it by its index.
        let wide = bad.replace("n_embd = 128", "n_embd = 70000").replace("n_head = 7", "n_head = 1");
        let e = expand_err(&sweep_text("", &format!("{TWO_MODELS}\n{wide}")));
        assert!(e.starts_with("models[2] must have at most 2^32 parameters"), "{e}");
        // A rule that depends on the model names it; a shared field is reported once.
        let short = "[[models]]\narch = \"gpt2\"\nn_embd = 32\nn_layer = 1\nn_head = 2\nn_positions = 5\n";
        let e = expand_err(&sweep_text("", &format!("{TWO_MODELS}\n{short}")).replace("lr = 1e-3", "lr = -1"));
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert_eq!(lines[0], "train.lr must be > 0 and finite, got -1");
        assert!(lines[1].starts_with("train.curriculum.points.end ") && lines[1].contains("models[2].n_positions"), "{e}");
    }

    /// serde reports a bad value in any `[[models]]` table at the first one's header, without
    /// its key: the error names the key and its line.
    #[test]
    fn a_badly_typed_value_is_reported_at_its_key() {
        let text = sweep_text("", &TWO_MODELS.replace("n_layer = 2", "n_layer = 2.5"));
        let line = text.lines().position(|l| l == "n_layer = 2.5").unwrap() + 1;
        assert_eq!(expand_err(&text), format!("line {line}, column 1: n_layer: invalid type: floating point `2.5`, expected usize"));
        let text = sweep_text("", &TWO_MODELS.replace("n_embd = 32\nn_layer = 2", "n_embd = \"wide\"\nn_layer = 2"));
        let line = text.lines().position(|l| l == "n_embd = \"wide\"").unwrap() + 1;
        assert_eq!(expand_err(&text), format!("line {line}, column 1: n_embd: invalid type: string \"wide\", expected usize"));
    }

    #[test]
    fn unknown_keys_are_errors_in_every_table() {
        let e = expand_err(&sweep_text("", &TWO_MODELS.replace("n_layer = 2", "n_layer = 2\nn_layers = 3")));
        assert!(e.contains("unknown field `n_layers`") && e.contains("line "), "{e}");
        let e = expand_err(&sweep_text("sedes = [1]", TWO_MODELS));
        assert!(e.contains("unknown field `sedes`"), "{e}");
        let e = expand_err(&sweep_text("", &TWO_MODELS.replace("\"mamba\"", "\"lstm\"")));
        assert!(e.contains("unknown variant `lstm`"), "{e}");
    }

    #[test]
    fn contradictions_and_empty_lists_are_errors() {
        let e = expand_err(&QUICK.replace("seed = 0", "seed = 0\nseeds = [1]"));
        assert!(e.starts_with("seed cannot be given together with seeds"), "{e}");
        assert_eq!(expand_err(&QUICK.replace("seed = 0", "seeds = []")), "seeds must list at least one seed, got []");
        assert_eq!(expand_err(&QUICK.replace("seed = 0", "seeds = [1, 1]")), "seeds must not repeat a seed, got 1");
        let e = expand_err(&format!("{}\n{TWO_MODELS}", QUICK));
        assert!(e.starts_with("model cannot be given together with [[models]]"), "{e}");
        let e = expand_err(&sweep_text("", ""));
        assert!(e.starts_with("models is missing"), "{e}");
    }

    #[test]
    fn the_example_sweep_expands() {
        let text = include_str!("../../experiments/sweeps/quick_linear.toml");
        let specs = SweepSpec::from_toml(text).unwrap().expand().unwrap();
        assert_eq!(specs.len(), 6);
    }

    #[test]
    fn every_shipped_experiment_and_sweep_expands() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let mut dirs = vec![root];
        let mut seen = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "toml") {
                    let specs = SweepSpec::expand_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(!specs.is_empty());
                    seen += 1;
                }
            }
        }
        assert!(seen >= 8, "only {seen} files found");
    }

    #[test]
    fn scaling_compresses_steps_evals_and_curriculum_alike() {
        let text = include_str!("../../experiments/paper/linear_regression.toml");
        let paper = SweepSpec::from_toml(text).unwrap().expand().unwrap().remove(0);
        let s = scaled(&paper, 0.1).unwrap();
        assert_eq!(s.train.steps, (paper.train.steps as f64 * 0.1).round() as usize);
        assert_eq!(s.train.eval_every, (paper.train.eval_every as f64 * 0.1).round() as usize);
        let (c, pc) = (&s.train.curriculum, &paper.train.curriculum);
        assert_eq!(c.points.interval, pc.points.interval / 10);
        assert_eq!(c.dims.interval, pc.dims.interval / 10);
        // The curriculum reaches full size at the same fraction of training.
        let full_at = |sp: &ExperimentSpec| {
            let p = sp.train.curriculum.points;
            (0..=sp.train.steps).find(|&k| p.at(k) == p.end).unwrap() as f64 / sp.train.steps as f64
        };
        assert!((full_at(&s) - full_at(&paper)).abs() < 0.01, "{} vs {}", full_at(&s), full_at(&paper));
        assert!(s.validate().is_ok());
        // Nothing else changes; 1 is the identity.
        assert_eq!((s.train.lr, s.train.batch_size, &s.task), (paper.train.lr, paper.train.batch_size, &paper.task));
        assert_eq!(scaled(&paper, 1.0).unwrap(), paper);
    }

    #[test]
    fn scaling_keeps_every_count_at_least_one() {
        let mut spec = ExperimentSpec::from_toml(QUICK).unwrap();
        spec.train.checkpoint_every = Some(3);
        let s = scaled(&spec, 0.0001).unwrap();
        assert_eq!(s.train.steps, 1);
        assert_eq!(s.train.eval_every, 1);
        assert_eq!(s.train.checkpoint_every, Some(1));
        assert_eq!(s.train.curriculum.points.interval, 1);
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let e = scaled(&spec, bad).unwrap_err().to_string();
            assert!(e.starts_with("--scale must be in (0, 1], got"), "{e}");
        }
    }
}

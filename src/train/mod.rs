//! The training loop: sample a batch, forward, loss, backward, clip, Adam (paper-spec §1.1, §4).
//!
//! Our own loop rather than burn-train's `Learner`: its dashboard owns the terminal and it
//! checkpoints per epoch, while ICL training has no epochs and reports into our own views.

mod clip;
pub mod curriculum;
pub mod eval;
pub mod optim;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use clip::clip_global_norm;
pub use curriculum::Curriculum;
pub use eval::{Curve, EvalCurve, EvalSet};
pub use optim::TrainOptim;

use crate::models::{flops_per_token, IclModel, ModelStats};
use crate::spec::ExperimentSpec;
use crate::tasks::{self, Layout, Loss, Target};

/// Metrics read back at a logging step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimiser steps completed.
    pub step: usize,
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub lr: f64,
    pub n_points: usize,
    pub n_dims: usize,
    /// Seconds since the first step started.
    pub wall_s: f64,
    /// Steps per second over the last logging window.
    pub steps_per_s: f64,
}

/// What the trainer reports while it runs (serialisable: a slot's child process streams
/// them to the pool, `runtime::child`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainEvent {
    /// The model is built and the first step is about to run.
    Started { stats: ModelStats, total_steps: usize, setup_s: f64 },
    /// Called after every step (cheap: no device sync).
    Progress { step: usize },
    Step(StepMetrics),
    Eval(EvalCurve),
    /// Weights and optimiser state were saved (complete: written, then renamed into place).
    Checkpoint(SavedCheckpoint),
}

/// A checkpoint on disk: `dir` holds `model.bin` and `optim.bin` (burn records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedCheckpoint {
    pub step: usize,
    pub dir: PathBuf,
    /// Where the data sampler's stream stood after `step` batches.
    pub data_word_pos: u128,
}

/// How the caller steers a run besides the spec.
pub struct TrainControl<'a> {
    /// Set to stop after the current step.
    pub cancel: &'a AtomicBool,
    /// Save checkpoints into fresh `step-N` subdirectories of this directory.
    pub checkpoints: Option<PathBuf>,
    /// Continue from this checkpoint instead of starting fresh.
    pub resume: Option<SavedCheckpoint>,
    /// Seconds already trained before this call (keeps the wall-time axis continuous).
    pub wall_offset_s: f64,
}

impl<'a> TrainControl<'a> {
    /// A plain run: no checkpoints, no resume.
    pub fn new(cancel: &'a AtomicBool) -> Self {
        TrainControl { cancel, checkpoints: None, resume: None, wall_offset_s: 0.0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {dir}: {reason}")]
    Io { dir: PathBuf, reason: String },
}

fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::<FullPrecisionSettings>::new()
}

/// Writes model and optimiser into `root/step-N` (via a temporary name, so a crash never
/// leaves a half-written checkpoint under the final name).
fn save_checkpoint<B: AutodiffBackend>(
    root: &Path,
    step: usize,
    model: &IclModel<B>,
    optim: &TrainOptim<B>,
    data_word_pos: u128,
) -> Result<SavedCheckpoint, CheckpointError> {
    let dir = root.join(format!("step-{step}"));
    let tmp = root.join(format!("step-{step}.tmp"));
    let err = |e: &dyn std::fmt::Display| CheckpointError::Io { dir: dir.clone(), reason: e.to_string() };
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| err(&e))?;
    model.clone().save_file(tmp.join("model"), &recorder()).map_err(|e| err(&e))?;
    Recorder::<B>::record(&recorder(), optim.to_record(), tmp.join("optim")).map_err(|e| err(&e))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| err(&e))?;
    Ok(SavedCheckpoint { step, dir, data_word_pos })
}

fn load_checkpoint<B: AutodiffBackend>(
    ckpt: &SavedCheckpoint,
    model: IclModel<B>,
    optim: TrainOptim<B>,
    device: &B::Device,
) -> Result<(IclModel<B>, TrainOptim<B>), CheckpointError> {
    let err = |e: &dyn std::fmt::Display| CheckpointError::Io { dir: ckpt.dir.clone(), reason: e.to_string() };
    let model = model.load_file(ckpt.dir.join("model"), &recorder(), device).map_err(|e| err(&e))?;
    let record = Recorder::<B>::load(&recorder(), ckpt.dir.join("optim"), device).map_err(|e| err(&e))?;
    Ok((model, optim.load_record(record)))
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    /// Stopped on request after finishing the current step.
    Interrupted,
    /// The loss became NaN or infinite.
    Diverged { loss: f32 },
}

/// The summary of a finished (or stopped) run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub outcome: Outcome,
    pub steps: usize,
    pub stats: ModelStats,
    pub last: Option<StepMetrics>,
    /// The evaluation at the end, at the curriculum's final prompt length.
    pub final_eval: Option<EvalCurve>,
    /// Seconds from the start of the call to the first training step (build, upload, compile).
    pub setup_s: f64,
    /// Seconds from the start of the call until the first step had finished on the device
    /// (includes JIT compilation of every kernel the step needs: the cold-start cost).
    pub first_step_s: Option<f64>,
    pub wall_s: f64,
    /// A checkpoint could not be written or read (the run stops: it could not be resumed).
    #[serde(default)]
    pub checkpoint_error: Option<String>,
}

/// `Σ weights · ℓ(outputs, target)` for the task's loss ℓ (the weights hold the mean).
///
/// # Shapes
/// - out: `[b, t, d_out]`; dense targets `[b, t, d_out]`, classes `[b, t]`
pub fn task_loss<B: Backend>(out: Tensor<B, 3>, target: Target, layout: Layout, device: &B::Device) -> Tensor<B, 1> {
    let dims = out.dims();
    match (target, layout.loss) {
        (Target::Dense { values, weights }, loss) => {
            let v = Tensor::<B, 3>::from_data(TensorData::new(values, dims), device);
            let w = Tensor::<B, 3>::from_data(TensorData::new(weights, dims), device);
            let per_entry = match loss {
                // BCE(sigmoid(o), v) = max(o, 0) − o·v + log(1 + exp(−|o|)), stable for any o.
                Loss::BinaryCrossEntropy => {
                    out.clone().clamp_min(0.0) - out.clone() * v + out.abs().neg().exp().log1p()
                }
                _ => {
                    let diff = out - v;
                    diff.clone() * diff
                }
            };
            (per_entry * w).sum()
        }
        (Target::Classes { classes, weights }, _) => {
            let [b, t, _] = dims;
            let idx = Tensor::<B, 3, Int>::from_data(TensorData::new(classes, [b, t, 1]), device);
            let w = Tensor::<B, 3>::from_data(TensorData::new(weights, [b, t, 1]), device);
            let log_p = burn::tensor::activation::log_softmax(out, 2).gather(2, idx);
            (log_p * w).sum().neg()
        }
    }
}

/// Trains the model of `spec` on `device` until done, diverged or `ctl.cancel` is set.
pub fn train<B: AutodiffBackend>(
    spec: &ExperimentSpec,
    device: &B::Device,
    ctl: &TrainControl,
    on_event: &mut dyn FnMut(TrainEvent),
) -> RunSummary {
    let cancel = ctl.cancel;
    let started = Instant::now();
    let task = tasks::build(&spec.task);
    let t = &spec.train;
    let layout = task.layout();
    let mut model = IclModel::<B>::new(&spec.model, layout.d_in, layout.d_out, spec.seed, device);
    let mut optim = TrainOptim::<B>::new();
    let mut curriculum = Curriculum::new(&t.curriculum);
    let mut data_rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut eval_set = EvalSet::new(spec.seed, t.eval_prompts);

    let mut step = 0;
    let mut checkpoint_error = None;
    if let Some(ckpt) = &ctl.resume {
        match load_checkpoint(ckpt, model.clone(), optim, device) {
            Ok((m, o)) => (model, optim) = (m, o),
            Err(e) => {
                let stats = ModelStats { params: model.num_params(), flops_per_token: 0.0 };
                let wall_s = started.elapsed().as_secs_f64();
                return RunSummary {
                    outcome: Outcome::Interrupted,
                    steps: 0,
                    stats,
                    last: None,
                    final_eval: None,
                    setup_s: wall_s,
                    first_step_s: None,
                    wall_s,
                    checkpoint_error: Some(e.to_string()),
                };
            }
        }
        step = ckpt.step;
        for _ in 0..step {
            curriculum.advance();
        }
        data_rng.set_word_pos(ckpt.data_word_pos);
    }
    let save = |step: usize, model: &IclModel<B>, optim: &_, rng: &ChaCha8Rng, on_event: &mut dyn FnMut(TrainEvent)| {
        let Some(root) = &ctl.checkpoints else { return Ok(()) };
        let ckpt = save_checkpoint::<B>(root, step, model, optim, rng.get_word_pos())?;
        on_event(TrainEvent::Checkpoint(ckpt));
        Ok::<(), CheckpointError>(())
    };
    let params = model.num_params();
    let final_points = t.curriculum.points.end;
    let stats = ModelStats { params, flops_per_token: flops_per_token(&spec.model, params, spec.task.tokens(final_points)) };
    let setup_s = started.elapsed().as_secs_f64();
    on_event(TrainEvent::Started { stats, total_steps: t.steps, setup_s });

    let loop_start = Instant::now();
    let (mut window_start, mut window_step) = (Instant::now(), step);
    let mut last: Option<StepMetrics> = None;
    let mut outcome = Outcome::Done;
    let first_done = step + 1;
    let mut first_step_s = None;
    let checkpoint_every = t.checkpoint_every();
    while step < t.steps {
        if cancel.load(Ordering::Relaxed) {
            outcome = Outcome::Interrupted;
            break;
        }
        let (n, active) = (curriculum.n_points(), curriculum.n_dims());
        let sample = task.sample(&mut data_rng, t.batch_size, n, active);
        let shape = [sample.b(), sample.t, layout.d_in];
        let tokens = Tensor::<B, 3>::from_data(TensorData::new(sample.tokens, shape), device);
        let loss = task_loss(model.forward(tokens), sample.target, layout, device);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let grad_norm;
        (model, grad_norm) = optim.step(t.lr, model, grads, t.grad_clip);
        step += 1;
        curriculum.advance();
        if step == first_done {
            let _: f32 = loss.clone().into_scalar().elem(); // one sync, to time the cold start
            first_step_s = Some(started.elapsed().as_secs_f64());
        }
        on_event(TrainEvent::Progress { step });

        if step % t.log_every == 0 || step == t.steps {
            let loss: f32 = loss.into_scalar().elem();
            let grad_norm: f32 = grad_norm.map_or(0.0, |g| g.into_scalar().elem());
            let now = Instant::now();
            let window = now.duration_since(window_start).as_secs_f64();
            let metrics = StepMetrics {
                step,
                loss,
                grad_norm,
                lr: t.lr,
                n_points: n,
                n_dims: active,
                wall_s: ctl.wall_offset_s + now.duration_since(loop_start).as_secs_f64(),
                steps_per_s: if window > 0.0 { (step - window_step) as f64 / window } else { 0.0 },
            };
            (window_start, window_step) = (now, step);
            on_event(TrainEvent::Step(metrics.clone()));
            last = Some(metrics);
            if !loss.is_finite() {
                outcome = Outcome::Diverged { loss };
                break;
            }
        }
        if step % t.eval_every == 0 && step < t.steps {
            let curve = eval_set.evaluate(&model.valid(), task.as_ref(), curriculum.n_points(), step, device);
            on_event(TrainEvent::Eval(curve));
        }
        if step % checkpoint_every == 0 && step < t.steps {
            if let Err(e) = save(step, &model, &optim, &data_rng, on_event) {
                checkpoint_error = Some(e.to_string());
                outcome = Outcome::Interrupted;
                break;
            }
        }
    }
    // The end (or a stop) always leaves a checkpoint, so the run can be resumed or extended.
    if checkpoint_error.is_none() && !matches!(outcome, Outcome::Diverged { .. }) && step > 0 {
        if let Err(e) = save(step, &model, &optim, &data_rng, on_event) {
            checkpoint_error = Some(e.to_string());
        }
    }

    let final_eval = match outcome {
        Outcome::Diverged { .. } => None,
        _ if step == 0 || checkpoint_error.is_some() => None,
        _ => {
            let curve = eval_set.evaluate(&model.valid(), task.as_ref(), final_points, step, device);
            on_event(TrainEvent::Eval(curve.clone()));
            Some(curve)
        }
    };
    RunSummary {
        outcome,
        steps: step,
        stats,
        last,
        final_eval,
        setup_s,
        first_step_s,
        wall_s: started.elapsed().as_secs_f64(),
        checkpoint_error,
    }
}

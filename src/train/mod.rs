//! The training loop: sample a batch, forward, loss, backward, clip, Adam (paper-spec §1.1, §4).
//!
//! Our own loop rather than burn-train's `Learner`: its dashboard owns the terminal and it
//! checkpoints per epoch, while ICL training has no epochs and reports into our own views.

mod clip;
pub mod curriculum;
pub mod eval;
pub mod optim;
pub mod phases;

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
use rayon::prelude::*;
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
    /// The run's training is over, with its summary (the last event of a run; a member of a
    /// stacked model may end while the others go on).
    Ended(Box<RunSummary>),
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
    optim: optim::OptimRecord<B>,
    data_word_pos: u128,
) -> Result<SavedCheckpoint, CheckpointError> {
    let dir = root.join(format!("step-{step}"));
    let tmp = root.join(format!("step-{step}.tmp"));
    let err = |e: &dyn std::fmt::Display| CheckpointError::Io { dir: dir.clone(), reason: e.to_string() };
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| err(&e))?;
    model.clone().save_file(tmp.join("model"), &recorder()).map_err(|e| err(&e))?;
    Recorder::<B>::record(&recorder(), optim, tmp.join("optim")).map_err(|e| err(&e))?;
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

/// `Σ weights · ℓ(outputs, target)` for the task's loss ℓ (the weights hold the mean), per
/// member of a stacked model (`models::members`: the members' batches one after another,
/// each with its own weights): `[members]`.
///
/// # Shapes
/// - out: `[b, t, d_out]`; dense targets `[b, t, d_out]`, classes `[b, t]`
pub fn task_loss<B: Backend>(out: Tensor<B, 3>, target: Target, layout: Layout, device: &B::Device, members: usize) -> Tensor<B, 1> {
    let dims = out.dims();
    let per_member = |weighted: Tensor<B, 3>| match members {
        1 => weighted.sum(),
        k => crate::models::members::sum_per_member(weighted, k),
    };
    match (target, layout.loss) {
        (Target::Dense { values, weights }, loss) => {
            let (v, w) = (upload::<B, 3>(values, dims, device), upload::<B, 3>(weights, dims, device));
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
            per_member(per_entry * w)
        }
        (Target::Classes { classes, weights }, _) => {
            let [b, t, _] = dims;
            let idx = Tensor::<B, 3, Int>::from_data(TensorData::new(classes, [b, t, 1]), device);
            let w = upload::<B, 3>(weights, [b, t, 1], device);
            let log_p = burn::tensor::activation::log_softmax(out, 2).gather(2, idx);
            per_member(log_p * w).neg()
        }
    }
}

/// `values` as a float tensor on `device`. From a plain `Vec`, not through `B::staging`:
/// CubeCL 0.10's `create_tensor` copies what it is given into a new `Vec` anyway, so pinned
/// staging memory bought nothing but staging's blocking round trip through the device thread's
/// queue; without it the step was shorter in all eight A/B pairs of session 15 (16 GPT-2
/// members: upload phase 8.8 → 5.2 ms, docs/performance.md).
pub(crate) fn upload<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A batch's model input on the host: the tokens, or for interleaved samples
/// (`Sample::interleaved`) their examples alone, about half the bytes to upload (a y token is
/// one value padded with zeros to x's width; at 16 GPT-2 members the upload took ~5 ms a step
/// for 7 MB, session 15).
enum HostTokens {
    Dense(Vec<f32>),
    /// xs `[b, n, d]` and ys `[b, n]`: the tokens `[b, 2n, d]` are x, then (y, 0, .., 0).
    Interleaved { xs: Vec<f32>, ys: Vec<f32>, n: usize, d: usize },
}

impl HostTokens {
    /// The tokens on `device`, `[b, t, d_in]`: the same values, bit for bit, either way.
    fn upload<B: Backend>(self, [b, t, d_in]: [usize; 3], device: &B::Device) -> Tensor<B, 3> {
        match self {
            Self::Dense(tokens) => upload(tokens, [b, t, d_in], device),
            Self::Interleaved { xs, ys, n, d } => {
                debug_assert!(t == 2 * n && d == d_in, "interleaved tokens are [b, 2n, d]");
                let xs = upload::<B, 3>(xs, [b, n, d], device);
                let ys = upload::<B, 3>(ys, [b, n, 1], device);
                // (y, 0, .., 0) as y · e₀ (+ 0, so that a negative y's zeros are +0 as on the host).
                let mut e0 = vec![0.0; d];
                e0[0] = 1.0;
                let y_tokens = ys * upload::<B, 3>(e0, [1, 1, d], device) + 0.0;
                Tensor::stack::<4>(vec![xs, y_tokens], 2).reshape([b, 2 * n, d])
            }
        }
    }
}

/// One step's batch for all members: their samples one after another
/// (`models::members`), and where each member's data stream stood after drawing its part.
struct Batch {
    tokens: HostTokens,
    target: Target,
    /// Prompts in all, and tokens a prompt.
    b: usize,
    tokens_per_prompt: usize,
    data_pos: Vec<u128>,
}

impl Batch {
    /// Each member's `batch_size` prompts of `n` points in `dims` dimensions from its own
    /// stream; on rayon's threads for several members (the same batches as in turn).
    fn draw(task: &dyn tasks::Task, streams: &mut [ChaCha8Rng], batch_size: usize, n: usize, dims: usize) -> Batch {
        let draw = |rng: &mut ChaCha8Rng| task.sample(rng, batch_size, n, dims);
        let samples: Vec<tasks::Sample> = if streams.len() == 1 { streams.iter_mut().map(draw).collect() } else { streams.par_iter_mut().map(draw).collect() };
        let data_pos = streams.iter().map(|rng| rng.get_word_pos()).collect();
        let (tokens, target, b, tokens_per_prompt) = concat_samples(samples);
        Batch { tokens, target, b, tokens_per_prompt, data_pos }
    }
}

/// The members' samples as one batch, one after another (`models::members`).
fn concat_samples(samples: Vec<tasks::Sample>) -> (HostTokens, Target, usize, usize) {
    let (b, t) = (samples.iter().map(|s| s.b()).sum(), samples[0].t);
    let (n, d) = (samples[0].batch.n, samples[0].batch.d);
    let interleaved = samples.iter().all(|s| s.interleaved);
    let mut tokens = if interleaved {
        HostTokens::Interleaved { xs: Vec::with_capacity(b * n * d), ys: Vec::with_capacity(b * n), n, d }
    } else {
        HostTokens::Dense(Vec::with_capacity(samples.iter().map(|s| s.tokens.len()).sum()))
    };
    let mut target = None::<Target>;
    for s in samples {
        match &mut tokens {
            HostTokens::Interleaved { xs, ys, .. } => {
                xs.extend(s.batch.xs);
                ys.extend(s.batch.ys);
            }
            HostTokens::Dense(tokens) => tokens.extend(s.tokens),
        }
        target = Some(match (target, s.target) {
            (None, first) => first,
            (Some(Target::Dense { mut values, mut weights }), Target::Dense { values: v, weights: w }) => {
                values.extend(v);
                weights.extend(w);
                Target::Dense { values, weights }
            }
            (Some(Target::Classes { mut classes, mut weights }), Target::Classes { classes: c, weights: w }) => {
                classes.extend(c);
                weights.extend(w);
                Target::Classes { classes, weights }
            }
            _ => unreachable!("members share one task"),
        });
    }
    (tokens, target.expect("at least one member"), b, t)
}

/// Trains the model of `spec` on `device` until done, diverged or `ctl.cancel` is set.
pub fn train<B: AutodiffBackend>(
    spec: &ExperimentSpec,
    device: &B::Device,
    ctl: &TrainControl,
    on_event: &mut dyn FnMut(TrainEvent),
) -> RunSummary {
    let mut summaries = train_members::<B>(std::slice::from_ref(spec), device, std::slice::from_ref(ctl), &mut |_, event| on_event(event));
    summaries.remove(0)
}

/// Whether two runs can train as members of one stacked model: the same spec but for name
/// and seed.
pub fn same_but_seed(a: &ExperimentSpec, b: &ExperimentSpec) -> bool {
    let plain = |s: &ExperimentSpec| ExperimentSpec { name: String::new(), seed: 0, ..s.clone() };
    plain(a) == plain(b)
}

/// One member's own state in [`train_members`].
struct Member {
    /// Where the member's data stream stands after the batches trained on so far (what a
    /// checkpoint records; the stream itself may be a batch ahead: [`Batch`]).
    data_pos: u128,
    eval_set: EvalSet,
    last: Option<StepMetrics>,
    /// Set once the member has stopped; its summary is then final.
    summary: Option<RunSummary>,
}

/// Trains the runs of `specs` (the same but for seed and name: [`same_but_seed`]) as the
/// members of one stacked model (`models::members`): one forward, backward and optimiser step
/// a step for all, each member with its own weights, data, clipping, metrics, evaluations and
/// checkpoints, exactly as if it ran alone (up to float rounding). Events come as
/// `on_event(member, event)`; `ctls[k]` steers member k. A member that is stopped or diverges
/// gets its summary at once and reports no more (its rows are computed until every member has
/// stopped). Only a lone run resumes from a checkpoint.
pub fn train_members<B: AutodiffBackend>(
    specs: &[ExperimentSpec],
    device: &B::Device,
    ctls: &[TrainControl],
    on_event: &mut dyn FnMut(usize, TrainEvent),
) -> Vec<RunSummary> {
    let started = Instant::now();
    let spec = &specs[0];
    let count = specs.len();
    assert!(count == ctls.len() && specs.iter().all(|s| same_but_seed(spec, s)), "members share one spec and have a control each");
    assert!(count == 1 || ctls.iter().all(|c| c.resume.is_none()), "only a lone run resumes");
    let task = tasks::build(&spec.task);
    let t = &spec.train;
    let layout = task.layout();
    let seeds: Vec<u64> = specs.iter().map(|s| s.seed).collect();
    let mut model = IclModel::<B>::stacked(&spec.model, layout.d_in, layout.d_out, &seeds, device);
    let mut optim = TrainOptim::<B>::new();
    let mut curriculum = Curriculum::new(&t.curriculum);
    let mut rngs: Vec<ChaCha8Rng> = seeds.iter().map(|&seed| ChaCha8Rng::seed_from_u64(seed)).collect();
    let mut members: Vec<Member> = seeds
        .iter()
        .map(|&seed| Member { data_pos: 0, eval_set: EvalSet::new(seed, t.eval_prompts), last: None, summary: None })
        .collect();
    let params = model.num_params() / count;
    let final_points = t.curriculum.points.end;
    let stats = ModelStats { params, flops_per_token: flops_per_token(&spec.model, params, spec.task.tokens(final_points)) };

    let mut step = 0;
    if let Some(ckpt) = &ctls[0].resume {
        match load_checkpoint(ckpt, model.clone(), optim, device) {
            Ok((m, o)) => (model, optim) = (m, o),
            Err(e) => {
                let wall_s = started.elapsed().as_secs_f64();
                let stats = ModelStats { params, flops_per_token: 0.0 };
                let summary = RunSummary {
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
                on_event(0, TrainEvent::Ended(Box::new(summary.clone())));
                return vec![summary];
            }
        }
        step = ckpt.step;
        for _ in 0..step {
            curriculum.advance();
        }
        rngs[0].set_word_pos(ckpt.data_word_pos);
        members[0].data_pos = ckpt.data_word_pos;
    }
    // Member k's weights and optimiser state as a lone run's checkpoint.
    let save = |k: usize, step: usize, model: &IclModel<B>, optim: &TrainOptim<B>, data_pos: u128, on_event: &mut dyn FnMut(usize, TrainEvent)| {
        let Some(root) = &ctls[k].checkpoints else { return Ok(()) };
        let ckpt = if count == 1 {
            save_checkpoint::<B>(root, step, model, optim.to_record(), data_pos)?
        } else {
            let record = optim::member_record(&optim.to_record(), model, k);
            save_checkpoint::<B>(root, step, &model.member(k), record, data_pos)?
        };
        on_event(k, TrainEvent::Checkpoint(ckpt));
        Ok::<(), CheckpointError>(())
    };
    // A member's end: the checkpoint a stop always leaves (so it can be resumed or extended),
    // then the evaluation at the final prompt length; neither after a checkpoint has failed
    // (`checkpoint_error`: the run stops, since it could not be resumed).
    let finish = |k: usize, member: &mut Member, outcome: Outcome, step: usize, model: &IclModel<B>, optim: &TrainOptim<B>, timing: (f64, Option<f64>), mut checkpoint_error: Option<String>, on_event: &mut dyn FnMut(usize, TrainEvent)| {
        let diverged = matches!(outcome, Outcome::Diverged { .. });
        if !diverged && step > 0 && checkpoint_error.is_none() {
            if let Err(e) = save(k, step, model, optim, member.data_pos, on_event) {
                checkpoint_error = Some(e.to_string());
            }
        }
        let final_eval = (!diverged && step > 0 && checkpoint_error.is_none()).then(|| {
            let curve = member.eval_set.evaluate(&model.valid().member(k), task.as_ref(), final_points, step, device);
            on_event(k, TrainEvent::Eval(curve.clone()));
            curve
        });
        let summary = RunSummary {
            outcome,
            steps: step,
            stats,
            last: member.last.clone(),
            final_eval,
            setup_s: timing.0,
            first_step_s: timing.1,
            wall_s: started.elapsed().as_secs_f64(),
            checkpoint_error,
        };
        on_event(k, TrainEvent::Ended(Box::new(summary.clone())));
        member.summary = Some(summary);
    };
    let setup_s = started.elapsed().as_secs_f64();
    for k in 0..count {
        on_event(k, TrainEvent::Started { stats, total_steps: t.steps, setup_s });
    }

    let loop_start = Instant::now();
    let (mut window_start, mut window_step) = (Instant::now(), step);
    let mut phase_times = phases::PhaseTimes::new(phases::enabled());
    let first_done = step + 1;
    let mut first_step_s = None;
    let checkpoint_every = t.checkpoint_every();
    let active = |members: &[Member]| (0..count).filter(|&k| members[k].summary.is_none()).collect::<Vec<_>>();
    let model = std::thread::scope(|scope| {
        let mut model = model;
        let mut ahead: Option<std::thread::ScopedJoinHandle<(Batch, Vec<ChaCha8Rng>)>> = None;
        while step < t.steps {
            for k in active(&members) {
                if ctls[k].cancel.load(Ordering::Relaxed) {
                    finish(k, &mut members[k], Outcome::Interrupted, step, &model, &optim, (setup_s, first_step_s), None, on_event);
                }
            }
            if active(&members).is_empty() {
                break;
            }
            let (n, dims) = (curriculum.n_points(), curriculum.n_dims());
            phase_times.start();
            let batch = match ahead.take() {
                Some(drawing) => {
                    let (batch, streams) = drawing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    rngs = streams;
                    batch
                }
                None => Batch::draw(task.as_ref(), &mut rngs, t.batch_size, n, dims),
            };
            // The next step's batch is drawn on another thread while this step runs: the same
            // batches in the same order, off the step's path (16 members' linear regression
            // batches take ~6 ms of host time a step).
            if step + 1 < t.steps {
                let mut next = curriculum.clone();
                next.advance();
                let (task, batch_size, mut streams) = (task.as_ref(), t.batch_size, std::mem::take(&mut rngs));
                ahead = Some(scope.spawn(move || (Batch::draw(task, &mut streams, batch_size, next.n_points(), next.n_dims()), streams)));
            }
            for (member, &pos) in members.iter_mut().zip(&batch.data_pos) {
                member.data_pos = pos;
            }
            let Batch { tokens, target, b, tokens_per_prompt, .. } = batch;
            phase_times.lap(0);
            let tokens = tokens.upload::<B>([b, tokens_per_prompt, layout.d_in], device);
            phase_times.lap(1);
            let losses = task_loss(model.forward(tokens), target, layout, device, count);
            let loss = if count == 1 { losses.clone() } else { losses.clone().sum() };
            phase_times.lap(2);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            phase_times.lap(3);
            let grad_norm;
            (model, grad_norm) = optim.step(t.lr, model, grads, t.grad_clip);
            phase_times.lap(4);
            step += 1;
            curriculum.advance();
            if step == first_done {
                let _: f32 = loss.into_scalar().elem(); // one sync, to time the cold start
                first_step_s = Some(started.elapsed().as_secs_f64());
            }
            for k in active(&members) {
                on_event(k, TrainEvent::Progress { step });
            }

            if step % t.log_every == 0 || step == t.steps {
                let host = |v: Tensor<B::InnerBackend, 1>| v.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
                let losses = host(losses.inner());
                let norms = grad_norm.map_or_else(|| vec![0.0; count], host);
                let now = Instant::now();
                let window = now.duration_since(window_start).as_secs_f64();
                let steps_per_s = if window > 0.0 { (step - window_step) as f64 / window } else { 0.0 };
                (window_start, window_step) = (now, step);
                for k in active(&members) {
                    let metrics = StepMetrics {
                        step,
                        loss: losses[k],
                        grad_norm: norms[k],
                        lr: t.lr,
                        n_points: n,
                        n_dims: dims,
                        wall_s: ctls[k].wall_offset_s + now.duration_since(loop_start).as_secs_f64(),
                        steps_per_s,
                    };
                    on_event(k, TrainEvent::Step(metrics.clone()));
                    members[k].last = Some(metrics);
                    if !losses[k].is_finite() {
                        let outcome = Outcome::Diverged { loss: losses[k] };
                        finish(k, &mut members[k], outcome, step, &model, &optim, (setup_s, first_step_s), None, on_event);
                    }
                }
            }
            if step % t.eval_every == 0 && step < t.steps {
                let valid = model.valid();
                for k in active(&members) {
                    let curve = members[k].eval_set.evaluate(&valid.member(k), task.as_ref(), curriculum.n_points(), step, device);
                    on_event(k, TrainEvent::Eval(curve));
                }
            }
            if step % checkpoint_every == 0 && step < t.steps {
                for k in active(&members) {
                    if let Err(e) = save(k, step, &model, &optim, members[k].data_pos, on_event) {
                        finish(k, &mut members[k], Outcome::Interrupted, step, &model, &optim, (setup_s, first_step_s), Some(e.to_string()), on_event);
                    }
                }
            }
        }
        model
    });
    for k in active(&members) {
        finish(k, &mut members[k], Outcome::Done, step, &model, &optim, (setup_s, first_step_s), None, on_event);
    }
    if let Some(line) = phase_times.report(&format!("{} ({count} members)", spec.name)) {
        eprintln!("{line}");
    }
    members.into_iter().map(|m| m.summary.expect("every member finished")).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use burn::backend::ndarray::NdArrayDevice;

    use super::*;
    use crate::runtime::CpuBackend;

    #[test]
    fn interleaved_tokens_built_on_the_device_are_the_hosts_bit_for_bit() {
        type B = burn::backend::NdArray<f32>;
        let device = NdArrayDevice::Cpu;
        let task = tasks::build(&crate::spec::TaskSpec::LinearRegression { n_dims: 6 });
        // Two members' samples, at a curriculum width (zero columns) and at full width.
        for dims in [3, 6] {
            let samples: Vec<tasks::Sample> = [1, 2].map(|seed| task.sample(&mut ChaCha8Rng::seed_from_u64(seed), 4, 5, dims)).to_vec();
            assert!(samples.iter().all(|s| s.interleaved) && samples[0].batch.ys.iter().any(|&y| y < 0.0));
            let want: Vec<f32> = samples.iter().flat_map(|s| s.tokens.clone()).collect();
            let (tokens, _, b, t) = concat_samples(samples);
            assert!(matches!(tokens, HostTokens::Interleaved { .. }));
            // (`convert`: burn makes tensors from data in the device's default float type, f64
            // when an f64 test touched the device first.)
            let got = tokens.upload::<B>([b, t, 6], &device).into_data().convert::<f32>().to_vec::<f32>().unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "dims {dims}");
        }
    }

    fn spec(seed: u64, steps: usize, grad_clip: f64, arch: &str) -> ExperimentSpec {
        let text = format!(
            "name = 'm'\nseed = {seed}\n[task]\nkind = 'linear_regression'\nn_dims = 3\n[model]\n{arch}\n\
             [train]\nsteps = {steps}\nbatch_size = 8\nlr = 1e-2\ngrad_clip = {grad_clip:?}\neval_every = 3\neval_prompts = 16\nlog_every = 1\n\
             [train.curriculum]\ndims = {{ start = 2, end = 3, inc = 1, interval = 3 }}\npoints = {{ start = 4, end = 6, inc = 2, interval = 3 }}\n"
        );
        toml::from_str(&text).unwrap()
    }

    /// Everything a run reports, in order.
    fn lone(spec: &ExperimentSpec, ctl: &TrainControl) -> (Vec<TrainEvent>, RunSummary) {
        let mut events = Vec::new();
        let summary = train::<CpuBackend>(spec, &NdArrayDevice::Cpu, ctl, &mut |e| events.push(e));
        (events, summary)
    }

    fn steps_of(events: &[TrainEvent]) -> Vec<(usize, f32, f32, usize, usize)> {
        events.iter().filter_map(|e| if let TrainEvent::Step(m) = e { Some((m.step, m.loss, m.grad_norm, m.n_points, m.n_dims)) } else { None }).collect()
    }

    fn evals_of(events: &[TrainEvent]) -> Vec<EvalCurve> {
        events.iter().filter_map(|e| if let TrainEvent::Eval(c) = e { Some(c.clone()) } else { None }).collect()
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-4 * (1.0 + b.abs())
    }

    #[test]
    fn members_train_as_their_lone_runs_would() {
        let no = AtomicBool::new(false);
        let dir = tempfile::tempdir().unwrap();
        for (arch, clip) in [("arch = 'gpt2'\nn_embd = 16\nn_layer = 1\nn_head = 2\nn_positions = 6", 0.05), ("arch = 'mamba'\nn_embd = 8\nn_layer = 1", 10.0)] {
            let specs = [spec(5, 7, clip, arch), spec(11, 7, clip, arch)];
            let roots: Vec<PathBuf> = (0..2).map(|k| dir.path().join(format!("{k}"))).collect();
            let ctls: Vec<TrainControl> = roots.iter().map(|r| TrainControl { checkpoints: Some(r.clone()), ..TrainControl::new(&no) }).collect();
            let mut events: Vec<Vec<TrainEvent>> = vec![Vec::new(), Vec::new()];
            let summaries = train_members::<CpuBackend>(&specs, &NdArrayDevice::Cpu, &ctls, &mut |k, e| events[k].push(e));
            for k in 0..2 {
                let (want, want_summary) = lone(&specs[k], &TrainControl::new(&no));
                let (got, want) = (steps_of(&events[k]), steps_of(&want));
                assert_eq!(got.len(), 7, "{arch}: member {k} logs every step");
                for (g, w) in got.iter().zip(&want) {
                    assert!(g.0 == w.0 && g.3 == w.3 && g.4 == w.4 && close(g.1, w.1) && close(g.2, w.2), "{arch}: member {k}: {g:?} against alone {w:?}");
                }
                let (got_evals, want_evals) = (evals_of(&events[k]), evals_of(&lone(&specs[k], &TrainControl::new(&no)).0));
                assert_eq!(got_evals.len(), want_evals.len());
                for (g, w) in got_evals.iter().zip(&want_evals) {
                    assert_eq!(g.step, w.step);
                    let (a, b) = (&g.model.mean, &w.model.mean);
                    assert!(a.len() == b.len() && a.iter().zip(b).all(|(a, b)| (a.is_nan() && b.is_nan()) || close(*a, *b)), "{arch}: member {k} eval at {}", g.step);
                }
                let summary = &summaries[k];
                assert_eq!((summary.outcome.clone(), summary.steps), (Outcome::Done, 7));
                assert!(close(summary.last.as_ref().unwrap().loss, want_summary.last.as_ref().unwrap().loss));
                assert!(summary.final_eval.is_some() && summary.checkpoint_error.is_none());
            }
            // Each member's checkpoint is a lone run's: resuming member 1 alone for two more
            // steps continues exactly as its lone run of 9 steps does.
            let ckpt = events[1].iter().rev().find_map(|e| if let TrainEvent::Checkpoint(c) = e { Some(c.clone()) } else { None }).unwrap();
            assert_eq!(ckpt.step, 7);
            let longer = spec(11, 9, clip, arch);
            let resumed = TrainControl { resume: Some(ckpt), ..TrainControl::new(&no) };
            let (resumed, _) = lone(&longer, &resumed);
            let (straight, _) = lone(&longer, &TrainControl::new(&no));
            let (r, s) = (steps_of(&resumed), steps_of(&straight));
            assert_eq!(r.len(), 2);
            for (g, w) in r.iter().zip(&s[7..]) {
                assert!(g.0 == w.0 && close(g.1, w.1), "{arch}: resumed member {g:?} against straight {w:?}");
            }
        }
    }

    #[test]
    fn a_stopped_member_ends_alone_and_the_others_go_on() {
        let (go, stop) = (AtomicBool::new(false), AtomicBool::new(true));
        let arch = "arch = 'gpt2'\nn_embd = 16\nn_layer = 1\nn_head = 2\nn_positions = 6";
        let specs = [spec(1, 4, 10.0, arch), spec(2, 4, 10.0, arch)];
        let ctls = [TrainControl::new(&stop), TrainControl::new(&go)];
        let mut events: Vec<Vec<TrainEvent>> = vec![Vec::new(), Vec::new()];
        let summaries = train_members::<CpuBackend>(&specs, &NdArrayDevice::Cpu, &ctls, &mut |k, e| events[k].push(e));
        assert_eq!((summaries[0].outcome.clone(), summaries[0].steps), (Outcome::Interrupted, 0));
        assert!(steps_of(&events[0]).is_empty());
        assert_eq!((summaries[1].outcome.clone(), summaries[1].steps), (Outcome::Done, 4));
        assert_eq!(steps_of(&events[1]).len(), 4);
        assert!(!same_but_seed(&specs[0], &spec(1, 5, 10.0, arch)), "a different step count is another spec");
    }

    /// A member whose checkpoint cannot be written stops there (it could not be resumed), with
    /// the reason, its last metrics and no final evaluation; the other member trains on.
    #[test]
    fn a_member_whose_checkpoint_fails_stops_with_the_reason() {
        let no = AtomicBool::new(false);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let arch = "arch = 'gpt2'\nn_embd = 16\nn_layer = 1\nn_head = 2\nn_positions = 6";
        let specs = [spec(1, 7, 10.0, arch), spec(2, 7, 10.0, arch)];
        let roots = [dir.path().join("ok"), file.join("under-a-file")];
        let ctls: Vec<TrainControl> = roots.iter().map(|r| TrainControl { checkpoints: Some(r.clone()), ..TrainControl::new(&no) }).collect();
        let mut events: Vec<Vec<TrainEvent>> = vec![Vec::new(), Vec::new()];
        let summaries = train_members::<CpuBackend>(&specs, &NdArrayDevice::Cpu, &ctls, &mut |k, e| events[k].push(e));
        let failed = &summaries[1];
        assert_eq!((failed.outcome.clone(), failed.steps), (Outcome::Interrupted, 3), "the first checkpoint is at step 3 (eval_every)");
        assert!(failed.checkpoint_error.as_deref().is_some_and(|e| e.contains("under-a-file")), "{:?}", failed.checkpoint_error);
        assert!(failed.final_eval.is_none() && failed.last.as_ref().is_some_and(|m| m.step == 3));
        assert!(matches!(events[1].last(), Some(TrainEvent::Ended(s)) if s.steps == 3));
        assert_eq!(events[1].iter().filter(|e| matches!(e, TrainEvent::Ended(_))).count(), 1);
        assert_eq!((summaries[0].outcome.clone(), summaries[0].steps, summaries[0].checkpoint_error.clone()), (Outcome::Done, 7, None));
    }
}

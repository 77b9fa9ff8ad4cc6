//! The training step's optimiser: clipping by the global gradient norm, then Adam (PyTorch's
//! defaults, ε = 1e-8; paper-spec §4). Two forms of the same step:
//! - burn's `Adam` after [`clip_global_norm`] (tensor ops): every backend, and the reference;
//! - on CUDA, `icl_lab_kernels::adam`: the whole step of every parameter as one operation.
//!   burn's form records about 18 operations per parameter, and the host's work per recorded
//!   operation is what bounds our small models' steps.
//!
//! Both keep their state as burn's Adam record, so a checkpoint written by one loads into the
//! other. `ICL_LAB_OPTIMIZER=tensor` keeps burn's form on CUDA.

use std::collections::HashMap;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorPrimitive;
use icl_lab_kernels::adam::{AdamParam, AdamSettings};

use super::clip::clip_global_norm;
use crate::models::IclModel;

pub const BETA_1: f32 = 0.9;
pub const BETA_2: f32 = 0.999;
pub const EPSILON: f32 = 1e-8;

/// The optimiser state as checkpoints store it (burn's Adam record, either form): a map
/// from parameter id to its moments and step count.
pub type OptimRecord<B> = <OptimizerAdaptor<Adam, IclModel<B>, B> as Optimizer<IclModel<B>, B>>::Record;

/// Whether the fused step may run: `ICL_LAB_OPTIMIZER=tensor` turns it off; read once.
fn fused_allowed() -> bool {
    crate::runtime::fast_path_on!("ICL_LAB_OPTIMIZER", off: "tensor")
}

/// Clipping plus Adam, in burn's tensor ops or fused (see the module docs).
pub enum TrainOptim<B: AutodiffBackend> {
    Tensor(OptimizerAdaptor<Adam, IclModel<B>, B>),
    Fused(OptimRecord<B>),
}

impl<B: AutodiffBackend> TrainOptim<B> {
    /// The fused form where `B` has it (and `ICL_LAB_OPTIMIZER` allows), else burn's.
    pub fn new() -> Self {
        Self::with_fused(fused_allowed())
    }

    /// The fused form when `fused` and `B` has it, else burn's.
    pub fn with_fused(fused: bool) -> Self {
        if fused && crate::models::fused_available::<B>() {
            Self::Fused(OptimRecord::<B>::default())
        } else {
            Self::Tensor(AdamConfig::new().with_beta_1(BETA_1).with_beta_2(BETA_2).with_epsilon(EPSILON).init())
        }
    }

    pub fn is_fused(&self) -> bool {
        matches!(self, Self::Fused(_))
    }

    /// Clips `grads` to global norm `max_norm`, then takes one Adam step of `model` at
    /// learning rate `lr`. Also returns the norm before clipping, on the device (read it only
    /// when you log it); `None` when no parameter has a gradient. A stacked model's members
    /// are clipped each by its own norm, returned as `[members]`.
    pub fn step(&mut self, lr: f64, model: IclModel<B>, mut grads: GradientsParams, max_norm: f64) -> (IclModel<B>, Option<Tensor<B::InnerBackend, 1>>) {
        let members = model.members();
        match self {
            Self::Tensor(adam) => {
                let norm = clip_global_norm::<B, _>(&model, &mut grads, max_norm, members);
                (adam.step(lr, model, grads), norm)
            }
            // The fused step clips each member by its own norm (one operation for all).
            Self::Fused(records) => fused_step(records, lr, model, &grads, max_norm, members),
        }
    }

    pub fn to_record(&self) -> OptimRecord<B> {
        match self {
            Self::Tensor(adam) => adam.to_record(),
            Self::Fused(records) => records.clone(),
        }
    }

    pub fn load_record(self, record: OptimRecord<B>) -> Self {
        match self {
            Self::Tensor(adam) => Self::Tensor(adam.load_record(record)),
            Self::Fused(_) => Self::Fused(record),
        }
    }
}

impl<B: AutodiffBackend> Default for TrainOptim<B> {
    fn default() -> Self {
        Self::new()
    }
}

/// Member `k`'s part of a stacked model's optimiser state (`models::members`), keyed as
/// `model.member(k)`'s parameters are: what a lone run of that member would hold.
pub fn member_record<B: AutodiffBackend>(record: &OptimRecord<B>, model: &IclModel<B>, k: usize) -> OptimRecord<B> {
    struct Rows<'a, B: AutodiffBackend> {
        record: &'a OptimRecord<B>,
        out: OptimRecord<B>,
        member: usize,
        members: usize,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Rows<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let Some(record) = self.record.get(&param.id) else { return };
            let state: AdamState<B::InnerBackend, D> = record.clone().into_state();
            let (k, n) = (self.member, self.members);
            let rows = |t: Tensor<B::InnerBackend, D>| {
                let r = crate::models::members::count(t.dims()[0], n);
                t.narrow(0, k * r, r)
            };
            let m = state.momentum;
            let momentum = AdaptiveMomentumState::new(m.time, rows(m.moment_1), rows(m.moment_2));
            self.out.insert(param.id, AdaptorRecord::from_state(AdamState::new(momentum)));
        }
    }
    let mut rows = Rows::<B> { record, out: OptimRecord::<B>::default(), member: k, members: model.members() };
    model.visit(&mut rows);
    rows.out
}

fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> burn::tensor::ops::FloatTensor<B> {
    t.into_primitive().tensor()
}

/// Every parameter with a gradient, with its moments (taken out of `records`; zeros before
/// its first step) and its step number counting this one.
struct Collect<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    records: &'a mut OptimRecord<B>,
    ids: Vec<ParamId>,
    params: Vec<AdamParam<B::InnerBackend>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) else { return };
        let value = param.val().inner();
        let (time, moment_1, moment_2) = match self.records.remove(&param.id) {
            Some(record) => {
                let state: AdamState<B::InnerBackend, D> = record.into_state();
                (state.momentum.time, state.momentum.moment_1, state.momentum.moment_2)
            }
            None => (0, value.zeros_like(), value.zeros_like()),
        };
        self.ids.push(param.id);
        let time = i32::try_from(time + 1).unwrap_or(i32::MAX);
        self.params.push(AdamParam { value: float(value), grad: float(grad), moment_1: float(moment_1), moment_2: float(moment_2), time });
    }
}

/// Puts each updated value into its parameter and its moments into `records`.
struct Apply<'a, B: AutodiffBackend> {
    updated: HashMap<ParamId, (icl_lab_kernels::adam::AdamUpdated<B::InnerBackend>, usize)>,
    records: &'a mut OptimRecord<B>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Apply<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some((new, time)) = self.updated.remove(&param.id) else { return param };
        let (id, tensor, mapper) = param.consume();
        let tensor_of = |p| Tensor::<B::InnerBackend, D>::from_primitive(TensorPrimitive::Float(p));
        let momentum = AdaptiveMomentumState::new(time, tensor_of(new.moment_1), tensor_of(new.moment_2));
        self.records.insert(id, AdaptorRecord::from_state(AdamState::new(momentum)));
        let mut value = Tensor::<B, D>::from_inner(tensor_of(new.value));
        if tensor.is_require_grad() {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

fn fused_step<B: AutodiffBackend>(
    records: &mut OptimRecord<B>,
    lr: f64,
    model: IclModel<B>,
    grads: &GradientsParams,
    max_norm: f64,
    members: usize,
) -> (IclModel<B>, Option<Tensor<B::InnerBackend, 1>>) {
    let mut collect = Collect::<B> { grads, records, ids: Vec::new(), params: Vec::new() };
    model.visit(&mut collect);
    let Collect { ids, params, .. } = collect;
    if params.is_empty() {
        return (model, None);
    }
    let times: Vec<usize> = params.iter().map(|p| p.time as usize).collect();
    let settings = AdamSettings { lr: lr as f32, beta_1: BETA_1, beta_2: BETA_2, epsilon: EPSILON, max_norm: max_norm as f32, members };
    let (updated, norm) = fused_adam::<B::InnerBackend>(params, settings);
    let updated = ids.into_iter().zip(updated.into_iter().zip(times)).collect();
    let model = model.map(&mut Apply::<B> { updated, records });
    (model, Some(Tensor::from_primitive(TensorPrimitive::Float(norm))))
}

/// The kernels' step on `K`, which must be the CUDA backend's inner backend.
fn fused_adam<K: Backend>(params: Vec<AdamParam<K>>, settings: AdamSettings) -> (Vec<icl_lab_kernels::adam::AdamUpdated<K>>, burn::tensor::ops::FloatTensor<K>) {
    #[cfg(feature = "cuda")]
    {
        use icl_lab_kernels::adam::AdamKernels;

        use crate::models::cast;
        type Inner = <crate::runtime::CudaBackend as AutodiffBackend>::InnerBackend;
        let params = match cast::<_, Vec<AdamParam<Inner>>>(params) {
            Ok(params) => {
                let (updated, norm) = Inner::clipped_adam(params, settings);
                let updated = cast(updated).unwrap_or_else(|_| unreachable!("K is Inner"));
                return (updated, cast(norm).unwrap_or_else(|_| unreachable!("K is Inner")));
            }
            Err(params) => params,
        };
        #[cfg(feature = "emulator")]
        {
            type Emu = <crate::runtime::EmuBackend as AutodiffBackend>::InnerBackend;
            let Ok(params) = cast::<_, Vec<AdamParam<Emu>>>(params) else { unreachable!("the fused optimiser is only chosen on CUDA or its emulator") };
            let (updated, norm) = Emu::clipped_adam(params, settings);
            let updated = cast(updated).unwrap_or_else(|_| unreachable!("K is Emu"));
            return (updated, cast(norm).unwrap_or_else(|_| unreachable!("K is Emu")));
        }
        #[allow(unreachable_code)]
        {
            let _ = params;
            unreachable!("the fused optimiser is only chosen on CUDA")
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = (params, settings);
        unreachable!("the fused optimiser is only chosen on CUDA")
    }
}

/// Every parameter of `model` as host values, in visiting order.
fn host_params<B: AutodiffBackend>(model: &IclModel<B>) -> Vec<Vec<f64>> {
    struct Host(Vec<Vec<f64>>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Host {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().into_data().convert::<f64>().iter::<f64>().collect());
        }
    }
    let mut host = Host(Vec::new());
    model.visit(&mut host);
    host.0
}

/// What [`compare_forms`] found at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDifference {
    /// Largest difference of a parameter between the forms, over that tensor's largest value.
    pub params: f64,
    /// Relative difference of the reported gradient norms.
    pub norm: f64,
}

/// The fused step against burn's, both on `device`, one step at a time from the same state:
/// a small GPT-2 is trained `steps` steps on random batches (clipping active in the first,
/// not after). Before each step, burn's state is loaded into a fresh fused form; both take the
/// step on the same weights and gradients; the run goes on with burn's result, its state
/// loaded back from the fused form's record (so records cross both ways, as checkpoints may).
/// Per step, how far the two results are apart. Where `B` has no fused form, both are burn's.
/// `members` stacks that many seeds as one model (`models::members`), each clipped by its own
/// norm: the first step's threshold clips some members and not others.
pub fn compare_forms<B: AutodiffBackend>(device: &B::Device, steps: usize, members: usize) -> Vec<StepDifference> {
    use rand::{Rng, SeedableRng};

    use crate::models::dense::max_scaled_error;
    use crate::spec::ModelSpec;

    let spec = ModelSpec::Gpt2 { n_embd: 64, n_layer: 2, n_head: 4, n_positions: 16 };
    let (b, t, d_in) = (8 * members, 16, 5);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut batch = || {
        let x: Vec<f32> = (0..b * t * d_in).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> = (0..b * t).map(|_| rng.random_range(-1.0..1.0)).collect();
        (Tensor::<B, 3>::from_data(TensorData::new(x, [b, t, d_in]), device), Tensor::<B, 3>::from_data(TensorData::new(y, [b, t, 1]), device))
    };
    let grads_of = |model: &IclModel<B>, (x, y): &(Tensor<B, 3>, Tensor<B, 3>)| {
        let loss = (model.forward(x.clone()) - y.clone()).powf_scalar(2.0).mean();
        GradientsParams::from_grads(loss.backward(), model)
    };
    let norms_of = |n: Option<Tensor<B::InnerBackend, 1>>| n.map_or_else(|| vec![0.0; members], |n| n.into_data().convert::<f64>().to_vec::<f64>().unwrap_or_default());

    let seeds: Vec<u64> = (0..members as u64).collect();
    let mut model = IclModel::<B>::stacked(&spec, d_in, 1, &seeds, device);
    let mut tensor = TrainOptim::<B>::with_fused(false);
    let mut out = Vec::new();
    for step in 0..steps {
        let data = batch();
        // The first step clips: below every member's norm for one member, between the
        // members' norms for several (the median member's norm is measured on a copy).
        let max_norm = if step > 0 {
            1e6
        } else if members == 1 {
            1e-2
        } else {
            let mut probe = TrainOptim::<B>::with_fused(false);
            let mut norms = norms_of(probe.step(0.0, model.clone(), grads_of(&model, &data), 1e6).1);
            norms.sort_by(f64::total_cmp);
            norms[members / 2]
        };
        let mut fused = TrainOptim::<B>::with_fused(true).load_record(tensor.to_record());
        let (fused_model, fused_norm) = fused.step(1e-3, model.clone(), grads_of(&model, &data), max_norm);
        let grads = grads_of(&model, &data);
        let tensor_norm;
        (model, tensor_norm) = tensor.step(1e-3, model, grads, max_norm);
        let params = host_params(&fused_model).iter().zip(&host_params(&model)).map(|(x, y)| max_scaled_error(x, y)).fold(0.0, f64::max);
        let (nf, nt) = (norms_of(fused_norm), norms_of(tensor_norm));
        assert_eq!((nf.len(), nt.len()), (members, members), "a norm per member");
        let norm = nf.iter().zip(&nt).map(|(f, t)| (f - t).abs() / t.abs().max(f64::MIN_POSITIVE)).fold(0.0, f64::max);
        out.push(StepDifference { params, norm });
        tensor = TrainOptim::<B>::with_fused(false).load_record(fused.to_record());
    }
    out
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};

    use super::*;

    type B = Autodiff<NdArray<f32>>;

    #[test]
    fn off_cuda_the_step_is_burns_and_the_comparison_sees_no_difference() {
        assert!(!TrainOptim::<B>::with_fused(true).is_fused());
        for members in [1, 3] {
            let diffs = compare_forms::<B>(&NdArrayDevice::Cpu, 3, members);
            assert_eq!(diffs.len(), 3);
            assert!(diffs.iter().all(|d| d.params == 0.0 && d.norm == 0.0), "{members} members: {diffs:?}");
        }
    }

    /// The fused step against burn's on the GPU: parameters and norms agree to f32 rounding,
    /// with and without clipping, with states passed between the forms.
    /// Skips where there is no CUDA device, as on CI.
    #[cfg(feature = "cuda")]
    #[test]
    fn fused_step_equals_burns_on_cuda() {
        let Some(device) = crate::runtime::device::gpu_or_skip("fused_step_equals_burns_on_cuda") else { return };
        assert!(TrainOptim::<crate::runtime::CudaBackend>::with_fused(true).is_fused());
        for members in [1, 3] {
            for (step, d) in compare_forms::<crate::runtime::CudaBackend>(&device, 4, members).into_iter().enumerate() {
                assert!(d.params <= 1e-4 && d.norm <= 1e-4, "{members} members, step {step}: {d:?}");
            }
        }
    }
}

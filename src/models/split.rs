//! A tensor split along its last dimension whose gradient is one `cat` of the parts'.
//!
//! burn's autodiff takes each slice's gradient on its own: a zero tensor of the whole shape, a
//! slice-assign of the part into it, and an add where the parts meet. For Mamba's two splits
//! a layer (`x | z` out of in_proj, `Δ | B | C` out of x_proj) that is 13 kernel launches a
//! layer and ~5 passes over `[b, l, 2e]`; here the parts' gradients are gathered and the
//! whole one is a single `cat` (one slice-assign a part into an uninitialised tensor).
//!
//! The parts' backward steps share the gathering: the last to run registers the `cat`. So
//! every part must reach the loss (Mamba's all do); a part that gets no gradient would leave
//! the others' unregistered, which debug builds report when the graph is dropped.

use std::sync::{Arc, Mutex};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Slice, TensorMetadata, TensorPrimitive};

use super::fused::{cast, on_autodiff_backend};

/// `t` cut along its last dimension into consecutive parts of `sizes` (which must add up to
/// it). On the training backends (CPU, CUDA and its emulator, with autodiff) the parts'
/// gradients come back as one `cat`; elsewhere these are plain slices.
pub fn split_last<B: Backend, const D: usize, const P: usize>(t: Tensor<B, D>, sizes: [usize; P]) -> [Tensor<B, D>; P] {
    let width = t.dims()[D - 1];
    assert_eq!(sizes.iter().sum::<usize>(), width, "split: parts {sizes:?} must add up to the last dimension's {width}");
    match on_autodiff_backend!(split_on::<B, D>(t, &sizes)) {
        Ok(parts) => whole(parts),
        Err(t) => whole(slices(t, &sizes)),
    }
}

/// The `P` parts as an array.
fn whole<T, const P: usize>(parts: Vec<T>) -> [T; P] {
    parts.try_into().unwrap_or_else(|_| unreachable!("one part a size"))
}

/// The parts as burn's own slices.
fn slices<B: Backend, const D: usize>(t: Tensor<B, D>, sizes: &[usize]) -> Vec<Tensor<B, D>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&size| {
            let part = t.clone().narrow(D - 1, start, size);
            start += size;
            part
        })
        .collect()
}

/// The split when `B` is `Autodiff<I>`, else `t` back.
fn split_on<B: Backend, I: Backend, const D: usize>(t: Tensor<B, D>, sizes: &[usize]) -> Result<Vec<Tensor<B, D>>, Tensor<B, D>> {
    let t: Tensor<Autodiff<I>, D> = cast(t)?;
    let parts = split_autodiff(t, sizes);
    Ok(parts.into_iter().map(|p| cast(p).unwrap_or_else(|_| unreachable!("B is Autodiff<I>"))).collect())
}

fn split_autodiff<I: Backend, C: CheckpointStrategy, const D: usize>(t: Tensor<Autodiff<I, C>, D>, sizes: &[usize]) -> Vec<Tensor<Autodiff<I, C>, D>> {
    let t = t.into_primitive().tensor();
    let shape = t.primitive.shape();
    let joint = Arc::new(Joint::<I>::new(sizes.len(), D - 1));
    let mut start = 0;
    sizes
        .iter()
        .enumerate()
        .map(|(index, &size)| {
            let ranges: Vec<Slice> = (0..D)
                .map(|d| match d == D - 1 {
                    true => Slice::new(start as isize, Some((start + size) as isize), 1),
                    false => Slice::new(0, Some(shape[d] as isize), 1),
                })
                .collect();
            start += size;
            let part = I::float_slice(t.primitive.clone(), &ranges);
            let out = match (Part { index }).prepare::<C>([t.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(joint.clone(), part),
                OpsKind::UnTracked(prep) => prep.finish(part),
            };
            Tensor::from_primitive(TensorPrimitive::Float(out))
        })
        .collect()
}

/// The parts' gradients as they arrive, in order.
struct Joint<I: Backend> {
    dim: usize,
    grads: Mutex<Vec<Option<FloatTensor<I>>>>,
}

impl<I: Backend> Joint<I> {
    fn new(parts: usize, dim: usize) -> Self {
        Joint { dim, grads: Mutex::new(vec![None; parts]) }
    }

    /// Keeps part `index`'s gradient; every part's, in order, once the last has come.
    fn gather(&self, index: usize, grad: FloatTensor<I>) -> Option<Vec<FloatTensor<I>>> {
        let mut grads = self.grads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        grads[index] = Some(grad);
        grads.iter().all(Option::is_some).then(|| grads.iter_mut().map(|g| g.take().expect("all present")).collect())
    }
}

impl<I: Backend> std::fmt::Debug for Joint<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joint").field("dim", &self.dim).finish_non_exhaustive()
    }
}

impl<I: Backend> Drop for Joint<I> {
    fn drop(&mut self) {
        // Some parts' gradients but not all: they never reached the split tensor.
        let grads = self.grads.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        let got = grads.iter().filter(|g| g.is_some()).count();
        debug_assert!(got == 0 || std::thread::panicking(), "split: {got} of {} parts got a gradient; every part must reach the loss", grads.len());
    }
}

/// The backward step of part `index`.
#[derive(Debug)]
struct Part {
    index: usize,
}

impl<I: Backend> Backward<I, 1> for Part {
    type State = Arc<Joint<I>>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<I>(&ops.node);
        let [parent] = ops.parents;
        if let (Some(parent), Some(parts)) = (parent, ops.state.gather(self.index, grad)) {
            grads.register::<I>(parent.id, I::float_cat(parts, ops.state.dim));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::{Autodiff, NdArray};

    use super::*;

    type Ad = Autodiff<NdArray<f64>>;

    /// Values spread over (-1, 1) that differ from one call of `stream` to the next.
    fn wave(shape: [usize; 3], stream: usize) -> Tensor<Ad, 3> {
        let n = shape.iter().product::<usize>();
        let values: Vec<f64> = (0..n).map(|i| ((i * 7 + stream * 13) as f64 * 0.37).sin()).collect();
        // The dtype named: the device's default may be another test's f32.
        Tensor::from_data(TensorData::new(values, shape), (&NdArrayDevice::Cpu, burn::tensor::DType::F64))
    }

    /// Each part weighted by its own tensor, summed: the split's gradients against burn's
    /// slices', and the parts' values.
    fn grads_of(split: impl Fn(Tensor<Ad, 3>, [usize; 3]) -> Vec<Tensor<Ad, 3>>, extra_use: bool) -> (Vec<Vec<f64>>, Vec<f64>) {
        let x = wave([2, 5, 9], 0).require_grad();
        let sizes = [2, 3, 4];
        let parts = split(x.clone() * 2.0, sizes);
        let mut loss = Tensor::<Ad, 1>::zeros([1], (&NdArrayDevice::Cpu, burn::tensor::DType::F64));
        for (i, part) in parts.iter().enumerate() {
            loss = loss + (part.clone() * wave(part.dims(), i + 1)).sum() * (i + 1) as f64;
        }
        if extra_use {
            // The split tensor also feeds the loss whole: its gradient adds to the split's.
            loss = loss + x.clone().powf_scalar(2.0).sum();
        }
        let grads = loss.backward();
        let values = parts.iter().map(|p| p.clone().into_data().convert::<f64>().to_vec().unwrap()).collect();
        (values, x.grad(&grads).expect("x has a gradient").into_data().convert::<f64>().to_vec().unwrap())
    }

    #[test]
    fn the_parts_and_their_gradient_are_burns_slices() {
        for extra_use in [false, true] {
            let (values, grad) = grads_of(|t, sizes| split_last(t, sizes).into(), extra_use);
            let (want_values, want_grad) = grads_of(|t, sizes| slices(t, &sizes), extra_use);
            assert_eq!(values, want_values);
            let worst = grad.iter().zip(&want_grad).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-12, "extra use {extra_use}: gradients differ by {worst}");
            assert!(grad.iter().any(|g| *g != 0.0));
        }
    }

    #[test]
    fn a_split_without_autodiff_is_slices() {
        let device = NdArrayDevice::Cpu;
        let x = Tensor::<NdArray<f32>, 2>::from_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], &device);
        let parts = split_last(x, [1, 2]);
        assert_eq!(parts[0].clone().into_data().convert::<f32>().to_vec::<f32>().unwrap(), vec![1.0, 4.0]);
        assert_eq!(parts[1].clone().into_data().convert::<f32>().to_vec::<f32>().unwrap(), vec![2.0, 3.0, 5.0, 6.0]);
    }

    #[test]
    #[should_panic(expected = "must add up")]
    fn parts_that_miss_the_width_are_refused() {
        let x = Tensor::<NdArray<f32>, 2>::zeros([2, 3], &NdArrayDevice::Cpu);
        split_last(x, [1, 1]);
    }
}

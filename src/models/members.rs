//! Several runs of one model trained as one: the *members* of a stacked model.
//!
//! Our models are small enough that a training step is bound by kernel launches and host work,
//! not by the GPU's arithmetic (docs/performance.md). K runs that differ only in their seed
//! can share every launch: a stacked model holds the K members' parameters concatenated along
//! each tensor's first axis (member-major: rows `k·r .. (k+1)·r` are member k's) and takes
//! their inputs concatenated along the batch axis. Every parameter of every model has a first
//! axis that scales this way (linear weights `[in, out]`, biases, norms, positions, per-channel
//! SSM tensors), so a stacked model has the plain model's type and record layout, and each
//! layer finds K as its parameter's rows over the rows one member has. With K = 1 the layers
//! take exactly their plain code paths.
//!
//! Members never mix: each one's outputs depend only on its own parameters and inputs, so its
//! gradients, Adam moments and (per member) clipping are those of a run of its own.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

/// Members in a tensor whose first axis holds `rows` rows per member: `total / rows`.
/// Panics (a model bug, never user input) if `total` is not a multiple of `rows`.
pub fn count(total: usize, rows: usize) -> usize {
    assert!(rows > 0 && total.is_multiple_of(rows), "stacked tensor of {total} rows is not a multiple of {rows}");
    total / rows
}

/// `x` `[K·b, l, c]` as `[K, b, l, c]`.
pub fn by_member<B: Backend>(x: Tensor<B, 3>, members: usize) -> Tensor<B, 4> {
    let [kb, l, c] = x.dims();
    x.reshape([members, count(kb, members), l, c])
}

/// `x` `[K·b, ..., c]` (any rank ≥ 2) as `[K, b, l, c]`, l the product of the middle sizes.
/// Broadcasting a member's `[K, 1, 1, c]` over this view, rather than `[K, 1, c]` over
/// `[K, b·l, c]`, matters on CUDA: autodiff then sums the broadcast's gradient over b and l in
/// turn, each with many outputs, where one sum over b·l rows into K·c outputs runs on a
/// couple of cubes (burn's reduce without autotune: 0.5 ms each at 16 members of GPT-2 e128).
pub fn view_by_member<B: Backend, const D: usize>(x: Tensor<B, D>, members: usize) -> Tensor<B, 4> {
    let dims = x.dims();
    let (kb, c) = (dims[0], dims[D - 1]);
    let l = dims.iter().product::<usize>() / kb / c;
    x.reshape([members, count(kb, members), l, c])
}

/// The sum of each member's part of a stacked tensor (`[K·r, ...]`): `[K]`. In two sums, over
/// each row and then over the rows, for the same reason as [`view_by_member`].
pub fn sum_per_member<B: Backend, const D: usize>(x: Tensor<B, D>, members: usize) -> Tensor<B, 1> {
    let dims = x.dims();
    let rows = count(dims[0], members);
    let rest = dims.iter().product::<usize>() / dims[0];
    let x = x.reshape([members, rows, rest]);
    let x = if rest > 1 { x.sum_dim(2) } else { x };
    x.sum_dim(1).reshape([members])
}

/// `[K, b, l, c]` back to `[K·b, l, c]`.
pub fn unstack<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [k, b, l, c] = x.dims();
    x.reshape([k * b, l, c])
}

/// `x` `[K·b, l, c]` as `[b, l, K·c]`: for per-channel maps, whose K·c channels then hold
/// each member's own parameters (a depthwise conv, S4's convolution).
pub fn channels_of<B: Backend>(x: Tensor<B, 3>, members: usize) -> Tensor<B, 3> {
    let [kb, l, c] = x.dims();
    let b = count(kb, members);
    x.reshape([members, b, l, c]).permute([1, 2, 0, 3]).reshape([b, l, members * c])
}

/// The inverse of [`channels_of`]: `[b, l, K·c]` back to `[K·b, l, c]`.
pub fn members_of<B: Backend>(y: Tensor<B, 3>, members: usize) -> Tensor<B, 3> {
    let [b, l, kc] = y.dims();
    let c = count(kc, members);
    y.reshape([b, l, members, c]).permute([2, 0, 1, 3]).reshape([members * b, l, c])
}

/// `x + positions[..t]`, each member its own: `x` `[K·b, t, e]`, `positions` `[K·r, e]`, t <= r.
pub fn add_positions<B: Backend>(x: Tensor<B, 3>, positions: Tensor<B, 2>, members: usize) -> Tensor<B, 3> {
    let [_, t, e] = x.dims();
    if members == 1 {
        return x + positions.slice([0..t, 0..e]).unsqueeze::<3>();
    }
    let rows = count(positions.dims()[0], members);
    let pos = positions.reshape([members, rows, e]).slice([0..members, 0..t, 0..e]).unsqueeze_dim::<4>(1);
    unstack(by_member(x, members) + pos)
}

/// `x ⊙ v` per channel, each member its own: `x` `[K·b, l, c]`, `v` `[K·c]`.
pub fn scale_channels<B: Backend>(x: Tensor<B, 3>, v: Tensor<B, 1>) -> Tensor<B, 3> {
    let [_, _, c] = x.dims();
    let members = count(v.dims()[0], c);
    if members == 1 {
        return x * v.reshape([1, 1, c]);
    }
    unstack(by_member(x, members) * v.reshape([members, 1, 1, c]))
}

/// Host copies of every parameter of a module, in visiting order.
struct Collect(Vec<TensorData>);

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().into_data());
    }
}

/// Replaces each parameter (in visiting order) by itself and the others' concatenated.
struct Concat<B: Backend> {
    others: Vec<std::vec::IntoIter<TensorData>>,
    device: B::Device,
}

impl<B: Backend> ModuleMapper<B> for Concat<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let device = self.device.clone();
        let rest: Vec<Tensor<B, D>> = self
            .others
            .iter_mut()
            .map(|o| Tensor::from_data(o.next().expect("members of one spec have the same parameters"), &device))
            .collect();
        param.map(|first| {
            let grad = first.is_require_grad();
            let mut all = vec![first];
            all.extend(rest);
            let stacked = Tensor::cat(all, 0).detach();
            if grad { stacked.require_grad() } else { stacked }
        })
    }
}

/// The members' parameters concatenated into one model of the first one's type and ids.
/// Every model must come from the same spec (so the same parameters, in the same order).
pub fn stack<B: Backend, M: Module<B>>(mut models: Vec<M>, device: &B::Device) -> M {
    assert!(!models.is_empty(), "a stacked model needs at least one member");
    let first = models.remove(0);
    if models.is_empty() {
        return first;
    }
    let others = models
        .iter()
        .map(|m| {
            let mut c = Collect(Vec::new());
            m.visit(&mut c);
            c.0.into_iter()
        })
        .collect();
    first.map(&mut Concat { others, device: device.clone() })
}

/// Member `k`'s rows of every parameter.
struct Slice {
    member: usize,
    members: usize,
}

impl<B: Backend> ModuleMapper<B> for Slice {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (k, n) = (self.member, self.members);
        param.map(|t| {
            let grad = t.is_require_grad();
            let rows = count(t.dims()[0], n);
            let one = t.narrow(0, k * rows, rows).detach();
            if grad { one.require_grad() } else { one }
        })
    }
}

/// Member `k` of a model of `members` members, as a plain model (a copy of its rows).
pub fn member<B: Backend, M: Module<B>>(model: &M, k: usize, members: usize) -> M {
    assert!(k < members, "member {k} of {members}");
    if members == 1 {
        return model.clone();
    }
    model.clone().map(&mut Slice { member: k, members })
}

//! Adam with clipping by the global gradient norm: cube-wise sums of squares of every
//! gradient into one shared buffer of partial sums, one cube that turns them into the norm and
//! the clipping coefficient, then element-wise updates of p, m and v. Both passes take up to
//! [`GROUP`] tensors a launch as sequences, the grid's y picking the tensor.
//! Sums run in a fixed order (warp sums, then the cube's warps, then the partials in index
//! order), so a step is deterministic.
//!
//! Members (several runs stacked as one model): every parameter's first axis holds `K`
//! members' rows one after another, so member m's part of a tensor of `n` elements is the
//! `n / K` elements from `m · n / K` on. Each member is clipped by its own norm: chunks never
//! straddle members, the partial sums are laid out member by member (`stride` a member), one
//! cube a member finishes them, and an update reads its member's coefficient. `K = 1` is the
//! plain step.

use cubecl::prelude::*;

/// Threads per cube (eight warps).
pub const THREADS: usize = 256;
/// Elements each thread of [`square_sum_kernel`] adds up.
pub const PER_THREAD: usize = 16;
/// Elements of a gradient per cube of [`square_sum_kernel`] (one partial sum each).
pub const CHUNK: usize = THREADS * PER_THREAD;

/// The sum of the cube's threads' `s` (all threads of the cube must call it).
#[cube]
fn cube_sum<F: Float>(s: F) -> F {
    let u = UNIT_POS as usize;
    let warp_total = plane_sum(s);
    let mut shared = SharedMemory::<F>::new(comptime!(THREADS / 32));
    if UNIT_POS_PLANE == 0 {
        shared[u / 32] = warp_total;
    }
    sync_cube();
    let mut total = F::new(0.0);
    #[unroll]
    for w in 0..THREADS / 32 {
        total += shared[w];
    }
    total
}

/// Parameters one launch of [`square_sum_kernel`] or [`adam_update_kernel`] takes: a launch
/// per parameter cost more than the kernels' work on our models' small tensors (151 launches
/// each way a step for GPT-2 e256), on the host as on the GPU; groups of four gradients and
/// two updates still left 25 of GPT-2 e128's 136 launches a step to the optimiser. A launch
/// always binds `GROUP` tensors of each kind (a short group repeats its first, never read:
/// the grid's y covers only the real ones), so one compiled kernel serves every group.
pub const GROUP: usize = 16;

/// `Σ g²` over chunk `local` ([`CHUNK`] elements) of the `len` elements of `g` from `base`
/// on; 0 past their end.
#[cube]
fn chunk_square_sum<F: Float>(g: &Tensor<F>, base: usize, len: usize, local: usize) -> F {
    let u = UNIT_POS as usize;
    let mut s = F::new(0.0);
    #[unroll]
    for k in 0..PER_THREAD {
        let i = local * CHUNK + k * THREADS + u;
        if i < len {
            let v = g[base + i];
            s += v * v;
        }
    }
    s
}

/// Chunks of a member's part of a gradient of `n` elements, for `members` members.
#[cube]
fn member_chunks(n: u32, members: u32) -> u32 {
    (n / members + comptime!(CHUNK as u32) - 1) / comptime!(CHUNK as u32)
}

/// For gradient `CUBE_POS_Y` of the group (`ns[k]` elements, each member's partial sums from
/// `offsets[k]` on within the member's `stride`): cube `CUBE_POS_X` is chunk `local` of
/// member `m`'s part, and `partials[m · stride + offset + local] = Σ g²` over it (the grid
/// covers the group's largest).
#[cube(launch, launch_unchecked)]
pub fn square_sum_kernel<F: Float>(
    grads: &Sequence<Tensor<F>>,
    partials: &mut Tensor<F>,
    ns: Sequence<u32>,
    offsets: Sequence<u32>,
    members: u32,
    stride: u32,
    #[define(F)] _dtype: StorageType,
) {
    let cube = CUBE_POS_X as usize;
    let which = CUBE_POS_Y as usize;
    // Uniform per cube: every thread takes the same branch and meets in `cube_sum`.
    #[unroll]
    for k in 0..GROUP {
        if which == k {
            let n = *ns.index(k);
            let len = (n / members) as usize;
            // Cubes past this gradient's chunks (a short gradient in a wide group) sum nothing.
            let chunks = max(member_chunks(n, members), 1) as usize;
            let member = cube / chunks;
            let local = cube % chunks;
            let base = min(member, members as usize - 1) * len;
            let total = cube_sum::<F>(chunk_square_sum::<F>(grads.index(k), base, len, local));
            if UNIT_POS == 0 && member < members as usize && local * CHUNK < len {
                partials[member * stride as usize + *offsets.index(k) as usize + local] = total;
            }
        }
    }
}

/// A cube a member m: `norm[m] = sqrt(Σ partials)` over its `stride` partials,
/// `coef[m] = min(1, max_norm / (norm + 1e-6))`.
#[cube(launch, launch_unchecked)]
pub fn clip_coefficient_kernel<F: Float>(
    partials: &Tensor<F>,
    norm: &mut Tensor<F>,
    coef: &mut Tensor<F>,
    stride: u32,
    max_norm: f32,
    #[define(F)] _dtype: StorageType,
) {
    let u = UNIT_POS as usize;
    let member = CUBE_POS_X as usize;
    let first = member * stride as usize;
    let mut s = F::new(0.0);
    let mut i = u;
    while i < stride as usize {
        s += partials[first + i];
        i += THREADS;
    }
    let total = cube_sum::<F>(s);
    if u == 0 {
        let r = total.sqrt();
        norm[member] = r;
        coef[member] = F::min(F::new(1.0) / (r + F::new(1e-6)) * F::cast_from(max_norm), F::new(1.0));
    }
}

/// Adam's scalars for every parameter of a launch.
#[derive(CubeLaunch, CubeType, Clone, Copy)]
pub struct AdamScalars {
    pub lr: f32,
    pub beta_1: f32,
    pub one_minus_beta_1: f32,
    pub beta_2: f32,
    pub one_minus_beta_2: f32,
    /// Bias corrections (the group's parameters share a step number).
    pub step_factor: f32,
    pub eps_hat: f32,
}

/// One Adam step of element `i` of one parameter, with its gradient scaled by its member's
/// coefficient `c`.
/// The operations and their order are burn's `Adam` (bias corrections folded into
/// `step_factor` and `eps_hat` on the host, as burn does).
#[cube]
#[allow(clippy::too_many_arguments)]
fn adam_element<F: Float>(p: &Tensor<F>, g: &Tensor<F>, m: &Tensor<F>, v: &Tensor<F>, c: F, p_out: &mut Tensor<F>, m_out: &mut Tensor<F>, v_out: &mut Tensor<F>, i: usize, s: &AdamScalars) {
    let gi = g[i] * c;
    let mi = m[i] * F::cast_from(s.beta_1) + gi * F::cast_from(s.one_minus_beta_1);
    let vi = v[i] * F::cast_from(s.beta_2) + gi * gi * F::cast_from(s.one_minus_beta_2);
    let update = mi * F::cast_from(s.step_factor) / (vi.sqrt() + F::cast_from(s.eps_hat));
    p_out[i] = p[i] - update * F::cast_from(s.lr);
    m_out[i] = mi;
    v_out[i] = vi;
}

/// One Adam step of parameter `CUBE_POS_Y` of the group (`ns[k]` elements; all of one step
/// number), element i taking member `i / (n / members)`'s coefficient; the grid covers the
/// largest.
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn adam_update_kernel<F: Float>(
    values: &Sequence<Tensor<F>>,
    grads: &Sequence<Tensor<F>>,
    moments_1: &Sequence<Tensor<F>>,
    moments_2: &Sequence<Tensor<F>>,
    values_out: &mut Sequence<Tensor<F>>,
    moments_1_out: &mut Sequence<Tensor<F>>,
    moments_2_out: &mut Sequence<Tensor<F>>,
    coef: &Tensor<F>,
    ns: Sequence<u32>,
    members: u32,
    scalars: AdamScalars,
    #[define(F)] _dtype: StorageType,
) {
    let i = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS as usize;
    let which = CUBE_POS_Y as usize;
    #[unroll]
    for k in 0..GROUP {
        let n = *ns.index(k);
        if which == k && i < n as usize {
            let c = coef[i / (n / members) as usize];
            adam_element::<F>(
                values.index(k),
                grads.index(k),
                moments_1.index(k),
                moments_2.index(k),
                c,
                values_out.index_mut(k),
                moments_1_out.index_mut(k),
                moments_2_out.index_mut(k),
                i,
                &scalars,
            );
        }
    }
}

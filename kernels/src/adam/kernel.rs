//! Adam with clipping by the global gradient norm: cube-wise sums of squares of every
//! gradient (four a launch) into one shared buffer of partial sums, one cube that turns them
//! into the norm and the clipping coefficient, then element-wise updates of p, m and v (two
//! parameters a launch, the grid's y picking the tensor).
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

/// Gradients one launch of [`square_sum_kernel`] takes (and [`adam_update_kernel`] takes
/// two parameters): a launch per parameter cost more than the kernels' work on our models'
/// small tensors (151 launches each way a step for GPT-2 e256), on the host as on the GPU.
pub const GROUP: usize = 4;

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

/// For gradient `CUBE_POS_Y` of the group (`g0`..`g3`, `n0`..`n3` elements, each member's
/// partial sums from `o0`..`o3` on within the member's `stride`): cube `CUBE_POS_X` is chunk
/// `local` of member `m`'s part, and `partials[m · stride + o + local] = Σ g²` over it (the
/// grid covers the group's largest).
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn square_sum_kernel<F: Float>(
    g0: &Tensor<F>,
    g1: &Tensor<F>,
    g2: &Tensor<F>,
    g3: &Tensor<F>,
    partials: &mut Tensor<F>,
    n0: u32,
    n1: u32,
    n2: u32,
    n3: u32,
    o0: u32,
    o1: u32,
    o2: u32,
    o3: u32,
    members: u32,
    stride: u32,
    #[define(F)] _dtype: StorageType,
) {
    let cube = CUBE_POS_X as usize;
    let which = CUBE_POS_Y;
    // Uniform per cube: every thread takes the same branch and meets in `cube_sum`.
    let mut n = n0;
    let mut offset = o0;
    if which == 1 {
        n = n1;
        offset = o1;
    } else if which == 2 {
        n = n2;
        offset = o2;
    } else if which == 3 {
        n = n3;
        offset = o3;
    }
    let len = (n / members) as usize;
    // Cubes past this gradient's chunks (a short gradient in a wide group) sum nothing.
    let chunks = max(member_chunks(n, members), 1) as usize;
    let member = cube / chunks;
    let local = cube % chunks;
    let base = min(member, members as usize - 1) * len;
    let s = if which == 0 {
        chunk_square_sum::<F>(g0, base, len, local)
    } else if which == 1 {
        chunk_square_sum::<F>(g1, base, len, local)
    } else if which == 2 {
        chunk_square_sum::<F>(g2, base, len, local)
    } else {
        chunk_square_sum::<F>(g3, base, len, local)
    };
    let total = cube_sum::<F>(s);
    if UNIT_POS == 0 && member < members as usize && local * CHUNK < len {
        partials[member * stride as usize + offset as usize + local] = total;
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

/// One Adam step of parameter `CUBE_POS_Y` of a pair (`p0`.. with `n0` elements, `p1`..
/// with `n1`), element i taking member `i / (n / members)`'s coefficient; the grid covers
/// the larger.
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn adam_update_kernel<F: Float>(
    p0: &Tensor<F>,
    g0: &Tensor<F>,
    m0: &Tensor<F>,
    v0: &Tensor<F>,
    p0_out: &mut Tensor<F>,
    m0_out: &mut Tensor<F>,
    v0_out: &mut Tensor<F>,
    p1: &Tensor<F>,
    g1: &Tensor<F>,
    m1: &Tensor<F>,
    v1: &Tensor<F>,
    p1_out: &mut Tensor<F>,
    m1_out: &mut Tensor<F>,
    v1_out: &mut Tensor<F>,
    coef: &Tensor<F>,
    n0: u32,
    n1: u32,
    members: u32,
    scalars: AdamScalars,
    #[define(F)] _dtype: StorageType,
) {
    let i = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS as usize;
    if CUBE_POS_Y == 0 {
        if i < n0 as usize {
            let c = coef[i / (n0 / members) as usize];
            adam_element::<F>(p0, g0, m0, v0, c, p0_out, m0_out, v0_out, i, &scalars);
        }
    } else if i < n1 as usize {
        let c = coef[i / (n1 / members) as usize];
        adam_element::<F>(p1, g1, m1, v1, c, p1_out, m1_out, v1_out, i, &scalars);
    }
}

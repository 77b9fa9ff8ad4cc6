//! Adam with clipping by the global gradient norm: cube-wise sums of squares of every
//! gradient (four a launch) into one shared buffer of partial sums, one cube that turns them
//! into the norm and the clipping coefficient, then element-wise updates of p, m and v (two
//! parameters a launch, the grid's y picking the tensor).
//! Sums run in a fixed order (warp sums, then the cube's warps, then the partials in index
//! order), so a step is deterministic.

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

/// `Σ g²` over chunk `cube` ([`CHUNK`] elements) of `g` (`n` elements); 0 past its end.
#[cube]
fn chunk_square_sum<F: Float>(g: &Tensor<F>, n: u32, cube: usize) -> F {
    let u = UNIT_POS as usize;
    let mut s = F::new(0.0);
    #[unroll]
    for k in 0..PER_THREAD {
        let i = cube * CHUNK + k * THREADS + u;
        if i < n as usize {
            let v = g[i];
            s += v * v;
        }
    }
    s
}

/// For gradient `CUBE_POS_Y` of the group (`g0`..`g3`, `n0`..`n3` elements, partial sums from
/// `o0`..`o3` on): `partials[o + cube] = Σ g²` over chunk `cube` = `CUBE_POS_X`, for the
/// gradient's own chunks (the grid covers the group's largest).
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
    #[define(F)] _dtype: StorageType,
) {
    let cube = CUBE_POS_X as usize;
    let which = CUBE_POS_Y;
    // Uniform per cube: every thread takes the same branch and meets in `cube_sum`.
    let mut n = n0;
    let mut offset = o0;
    let s = if which == 0 {
        chunk_square_sum::<F>(g0, n0, cube)
    } else if which == 1 {
        n = n1;
        offset = o1;
        chunk_square_sum::<F>(g1, n1, cube)
    } else if which == 2 {
        n = n2;
        offset = o2;
        chunk_square_sum::<F>(g2, n2, cube)
    } else {
        n = n3;
        offset = o3;
        chunk_square_sum::<F>(g3, n3, cube)
    };
    let total = cube_sum::<F>(s);
    if UNIT_POS == 0 && cube * CHUNK < n as usize {
        partials[offset as usize + cube] = total;
    }
}

/// One cube: `norm[0] = sqrt(Σ partials)`, `coef[0] = min(1, max_norm / (norm + 1e-6))`.
#[cube(launch, launch_unchecked)]
pub fn clip_coefficient_kernel<F: Float>(
    partials: &Tensor<F>,
    norm: &mut Tensor<F>,
    coef: &mut Tensor<F>,
    count: u32,
    max_norm: f32,
    #[define(F)] _dtype: StorageType,
) {
    let u = UNIT_POS as usize;
    let mut s = F::new(0.0);
    let mut i = u;
    while i < count as usize {
        s += partials[i];
        i += THREADS;
    }
    let total = cube_sum::<F>(s);
    if u == 0 {
        let r = total.sqrt();
        norm[0] = r;
        coef[0] = F::min(F::new(1.0) / (r + F::new(1e-6)) * F::cast_from(max_norm), F::new(1.0));
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

/// One Adam step of element `i` of one parameter, with its gradient scaled by `coef[0]`.
/// The operations and their order are burn's `Adam` (bias corrections folded into
/// `step_factor` and `eps_hat` on the host, as burn does).
#[cube]
#[allow(clippy::too_many_arguments)]
fn adam_element<F: Float>(p: &Tensor<F>, g: &Tensor<F>, m: &Tensor<F>, v: &Tensor<F>, coef: &Tensor<F>, p_out: &mut Tensor<F>, m_out: &mut Tensor<F>, v_out: &mut Tensor<F>, i: usize, s: &AdamScalars) {
    let gi = g[i] * coef[0];
    let mi = m[i] * F::cast_from(s.beta_1) + gi * F::cast_from(s.one_minus_beta_1);
    let vi = v[i] * F::cast_from(s.beta_2) + gi * gi * F::cast_from(s.one_minus_beta_2);
    let update = mi * F::cast_from(s.step_factor) / (vi.sqrt() + F::cast_from(s.eps_hat));
    p_out[i] = p[i] - update * F::cast_from(s.lr);
    m_out[i] = mi;
    v_out[i] = vi;
}

/// One Adam step of parameter `CUBE_POS_Y` of a pair (`p0`.. with `n0` elements, `p1`..
/// with `n1`); the grid covers the larger.
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
    scalars: AdamScalars,
    #[define(F)] _dtype: StorageType,
) {
    let i = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS as usize;
    if CUBE_POS_Y == 0 {
        if i < n0 as usize {
            adam_element::<F>(p0, g0, m0, v0, coef, p0_out, m0_out, v0_out, i, &scalars);
        }
    } else if i < n1 as usize {
        adam_element::<F>(p1, g1, m1, v1, coef, p1_out, m1_out, v1_out, i, &scalars);
    }
}

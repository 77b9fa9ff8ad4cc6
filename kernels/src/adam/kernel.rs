//! Adam with clipping by the global gradient norm: per parameter a cube-wise sum of squares
//! into one shared buffer of partial sums, one cube that turns them into the norm and the
//! clipping coefficient, then per parameter one element-wise update of p, m and v.
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

/// `partials[offset + cube] = Σ g²` over the cube's [`CHUNK`] elements of `g` (`n` in all).
#[cube(launch, launch_unchecked)]
pub fn square_sum_kernel<F: Float>(g: &Tensor<F>, partials: &mut Tensor<F>, offset: u32, n: u32, #[define(F)] _dtype: StorageType) {
    let u = UNIT_POS as usize;
    let cube = CUBE_POS_X as usize;
    let mut s = F::new(0.0);
    #[unroll]
    for k in 0..PER_THREAD {
        let i = cube * CHUNK + k * THREADS + u;
        if i < n as usize {
            let v = g[i];
            s += v * v;
        }
    }
    let total = cube_sum::<F>(s);
    if u == 0 {
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

/// One Adam step of one parameter, with its gradient scaled by `coef[0]`. The operations
/// and their order are burn's `Adam` (bias corrections folded into `step_factor` and
/// `eps_hat` on the host, as burn does).
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn adam_update_kernel<F: Float>(
    p: &Tensor<F>,
    g: &Tensor<F>,
    m: &Tensor<F>,
    v: &Tensor<F>,
    coef: &Tensor<F>,
    p_out: &mut Tensor<F>,
    m_out: &mut Tensor<F>,
    v_out: &mut Tensor<F>,
    n: u32,
    lr: f32,
    beta_1: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    one_minus_beta_2: f32,
    step_factor: f32,
    eps_hat: f32,
    #[define(F)] _dtype: StorageType,
) {
    let i = ABSOLUTE_POS;
    if i < n as usize {
        let gi = g[i] * coef[0];
        let mi = m[i] * F::cast_from(beta_1) + gi * F::cast_from(one_minus_beta_1);
        let vi = v[i] * F::cast_from(beta_2) + gi * gi * F::cast_from(one_minus_beta_2);
        let update = mi * F::cast_from(step_factor) / (vi.sqrt() + F::cast_from(eps_hat));
        p_out[i] = p[i] - update * F::cast_from(lr);
        m_out[i] = mi;
        v_out[i] = vi;
    }
}

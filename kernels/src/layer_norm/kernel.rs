//! LayerNorm over the last dimension, a warp per row: the row's `e = 32·k` values sit in
//! registers (`k` per lane, `k` a compile-time parameter), the row sums are warp sums. The
//! forward saves each row's mean and 1/σ; the backward gives ∂x per row and sums ∂γ, ∂β over
//! the cube's rows (each warp walks [`ROWS_PER_WARP`] rows, the cube's warps meet in shared
//! memory), written per cube and finished by one column sum.
//!
//! Members (several runs stacked as one model): γ and β hold `K` rows of `e`, and x's rows
//! come in `K` equal blocks of `rows_per_member`, block k normalised with γ_k and β_k. A
//! backward cube stays within one member (its rows are a member's rows, its partial sums a
//! member's), so ∂γ and ∂β are the column sums of partials laid out `[cubes per member, K·e]`.
//! With `K = 1` this is the plain LayerNorm.

use cubecl::prelude::*;

/// Warps per cube (a row each at a time).
pub const WARPS: usize = 8;
/// Rows each warp of the backward walks, accumulating ∂γ and ∂β in registers.
pub const ROWS_PER_WARP: usize = 8;

#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward_kernel<F: Float>(
    x: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    y: &mut Tensor<F>,
    mean: &mut Tensor<F>,
    rstd: &mut Tensor<F>,
    rows: u32,
    rows_per_member: u32,
    #[comptime] k: usize,
    #[comptime] eps_bits: u32,
    #[define(F)] _dtype: StorageType,
) {
    let lane = UNIT_POS_PLANE as usize;
    let row = CUBE_POS_X as usize * WARPS + UNIT_POS as usize / 32;
    // Uniform per warp: a warp's lanes take the warp sums together or not at all.
    if row < rows as usize {
        let e = comptime!(k * 32);
        let inv_e = F::new(1.0) / F::new(comptime!(e as f32));
        let base = row * e;
        let affine = (row / rows_per_member as usize) * e;
        let mut xs = Array::<F>::new(k);
        let mut s = F::new(0.0);
        #[unroll]
        for i in 0..k {
            xs[i] = x[base + i * 32 + lane];
            s += xs[i];
        }
        let m = plane_sum(s) * inv_e;
        let mut v = F::new(0.0);
        #[unroll]
        for i in 0..k {
            let d = xs[i] - m;
            v += d * d;
        }
        let r = F::new(1.0) / (plane_sum(v) * inv_e + F::new(comptime!(f32::from_bits(eps_bits)))).sqrt();
        #[unroll]
        for i in 0..k {
            let c = i * 32 + lane;
            y[base + c] = (xs[i] - m) * r * gamma[affine + c] + beta[affine + c];
        }
        if lane == 0 {
            mean[row] = m;
            rstd[row] = r;
        }
    }
}

#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward_kernel<F: Float>(
    x: &Tensor<F>,
    gamma: &Tensor<F>,
    mean: &Tensor<F>,
    rstd: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    parts: &mut Tensor<F>,
    members: u32,
    rows_per_member: u32,
    #[comptime] k: usize,
    #[define(F)] _dtype: StorageType,
) {
    let e = comptime!(k * 32);
    let lane = UNIT_POS_PLANE as usize;
    let u = UNIT_POS as usize;
    let warp = u / 32;
    // Cube c is member c % K's chunk c / K: its partials land in row c / K of
    // [cubes / K, 2·K·e], ∂γ's in its first K·e columns (member m's from m·e on), ∂β's in
    // the rest, so one column sum finishes both.
    let cube = CUBE_POS_X as usize;
    let member = cube % members as usize;
    let width = members as usize * e;
    let part_row = (cube / members as usize) * 2 * width + member * e;
    let rows = rows_per_member as usize;
    let inv_e = F::new(1.0) / F::new(comptime!(e as f32));
    let mut gam = Array::<F>::new(k);
    let mut dgam = Array::<F>::new(k);
    let mut dbet = Array::<F>::new(k);
    #[unroll]
    for i in 0..k {
        gam[i] = gamma[member * e + i * 32 + lane];
        dgam[i] = F::new(0.0);
        dbet[i] = F::new(0.0);
    }
    let mut xh = Array::<F>::new(k);
    let mut g = Array::<F>::new(k);
    let first = ((cube / members as usize) * WARPS + warp) * ROWS_PER_WARP;
    for r in 0..ROWS_PER_WARP {
        let local = first + r;
        if local < rows {
            let row = member * rows + local;
            let base = row * e;
            let m = mean[row];
            let rs = rstd[row];
            let mut s1 = F::new(0.0);
            let mut s2 = F::new(0.0);
            #[unroll]
            for i in 0..k {
                let c = base + i * 32 + lane;
                let d = dy[c];
                xh[i] = (x[c] - m) * rs;
                g[i] = d * gam[i];
                s1 += g[i];
                s2 += g[i] * xh[i];
                dgam[i] += d * xh[i];
                dbet[i] += d;
            }
            let mean_g = plane_sum(s1) * inv_e;
            let mean_gx = plane_sum(s2) * inv_e;
            #[unroll]
            for i in 0..k {
                dx[base + i * 32 + lane] = rs * (g[i] - mean_g - xh[i] * mean_gx);
            }
        }
    }

    // The cube's warps meet in shared memory; thread u sums columns u, u + 256, ...
    let mut sg = SharedMemory::<F>::new(comptime!(WARPS * k * 32));
    let mut sb = SharedMemory::<F>::new(comptime!(WARPS * k * 32));
    #[unroll]
    for i in 0..k {
        sg[warp * e + i * 32 + lane] = dgam[i];
        sb[warp * e + i * 32 + lane] = dbet[i];
    }
    sync_cube();
    #[unroll]
    for q in 0..comptime!((k * 32).div_ceil(WARPS * 32)) {
        let c = q * WARPS * 32 + u;
        if c < e {
            let mut tg = F::new(0.0);
            let mut tb = F::new(0.0);
            #[unroll]
            for w in 0..WARPS {
                tg += sg[w * e + c];
                tb += sb[w * e + c];
            }
            parts[part_row + c] = tg;
            parts[part_row + width + c] = tb;
        }
    }
}

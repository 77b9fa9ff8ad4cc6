//! The per-state kernels ([`super::Layout::PerState`]): thread (bi, ei, j) owns one state
//! entry h[bi, ei, j]. A cube of `block` threads ([`super::StateTile`]) holds `block / n` channels of one batch
//! row, `n` consecutive lanes per channel, so a channel's lanes sit in one warp (`n` divides
//! 32) and sums over the state (y, ∂x, ∂Δ) are `log2 n` xor shuffles. That is `n` times the
//! threads of the per-channel kernels, each with one exponential per step instead of `n`.
//!
//! Layouts (all contiguous): x, delta, y, dy, dx, ddelta `[b, l, e]`; B, C `[b, l, n]`;
//! A `[e, n]`; D `[e]`; saved states `[chunks, b, e, n]` (the state entering each chunk of
//! `k` steps); per-cube partial sums ∂B, ∂C `[b, l, cubes, n]`; per-batch partial sums ∂A
//! `[b, e, n]`, ∂D `[b, e]`.
//!
//! Every thread of a cube stays to the end, also those past the last channel (they read
//! channel e - 1's inputs, add zeros to the sums over channels and write nothing): every
//! lane takes part in the shuffles and every thread in the cube's barriers.

use cubecl::prelude::*;

use crate::lanes::sum_over_lanes;

/// Σ over the warp's channels of this lane's state entry (lanes equal modulo `n`); every
/// lane gets the sum for its entry.
#[cube]
fn sum_over_channels<F: Float>(v: F, #[comptime] n: usize) -> F {
    let mut s = v;
    if comptime!(n <= 16) {
        s += plane_shuffle_xor(s, 16u32);
    }
    if comptime!(n <= 8) {
        s += plane_shuffle_xor(s, 8u32);
    }
    if comptime!(n <= 4) {
        s += plane_shuffle_xor(s, 4u32);
    }
    if comptime!(n <= 2) {
        s += plane_shuffle_xor(s, 2u32);
    }
    if comptime!(n <= 1) {
        s += plane_shuffle_xor(s, 1u32);
    }
    s
}

#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn scan_forward_state_kernel<F: Float>(
    x: &Tensor<F>,
    delta: &Tensor<F>,
    a: &Tensor<F>,
    b_in: &Tensor<F>,
    c: &Tensor<F>,
    d: &Tensor<F>,
    y: &mut Tensor<F>,
    states: &mut Tensor<F>,
    batch: u32,
    members: u32,
    len: u32,
    width: u32,
    #[comptime] n: usize,
    #[comptime] k: usize,
    #[comptime] block: usize,
    #[comptime] save: bool,
    #[define(F)] _dtype: StorageType,
) {
    let nb = batch as usize;
    let l = len as usize;
    let e = width as usize;
    let u = UNIT_POS as usize;
    let own = CUBE_POS_X as usize * comptime!(block / n) + u / n;
    let j = u % n;
    let bi = CUBE_POS_Y as usize;
    // A stacked scan's batch rows are its members' in order; member m's A and D are rows
    // m·e .. (m+1)·e.
    let member = bi / (nb / members as usize);
    let active = own < e;
    let ei = if active { own } else { e - 1 };
    let writes_y = active && j == 0;

    let av = a[(member * e + ei) * n + j];
    let skip = d[member * e + ei];
    let mut h = F::new(0.0);
    // Each step's inputs are loaded one step ahead: the loads of step t + 1 are in flight
    // while step t computes (the scan is otherwise bound by their latency).
    let first_row = bi * l * e + ei;
    let first_bc = bi * l * n + j;
    let mut xv = x[first_row];
    let mut dt = delta[first_row];
    let mut bv = b_in[first_bc];
    let mut cv = c[first_bc];
    for t in 0..l {
        if save {
            if t % k == 0 && active {
                states[(((t / k) * nb + bi) * e + ei) * n + j] = h;
            }
        }
        // The last step reloads its own inputs (a valid address; unused). (A first version
        // advanced a mutable row index by `if t + 1 < l { 1 } else { 0 }` rows and computed
        // wrong states on the H200; this form, the backward's, checks.)
        let next_t = if t + 1 < l { t + 1 } else { t };
        let next_row = (bi * l + next_t) * e + ei;
        let next_bc = (bi * l + next_t) * n + j;
        let next_x = x[next_row];
        let next_dt = delta[next_row];
        let next_b = b_in[next_bc];
        let next_c = c[next_bc];
        h = (dt * av).exp() * h + dt * xv * bv;
        let out = sum_over_lanes::<F>(cv * h, n);
        if writes_y {
            y[(bi * l + t) * e + ei] = out + skip * xv;
        }
        xv = next_x;
        dt = next_dt;
        bv = next_b;
        cv = next_c;
    }
}

#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn scan_backward_state_kernel<F: Float>(
    x: &Tensor<F>,
    delta: &Tensor<F>,
    a: &Tensor<F>,
    b_in: &Tensor<F>,
    c: &Tensor<F>,
    d: &Tensor<F>,
    states: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    ddelta: &mut Tensor<F>,
    da_part: &mut Tensor<F>,
    db_part: &mut Tensor<F>,
    dc_part: &mut Tensor<F>,
    dd_part: &mut Tensor<F>,
    batch: u32,
    members: u32,
    len: u32,
    width: u32,
    #[comptime] n: usize,
    #[comptime] k: usize,
    #[comptime] block: usize,
    #[define(F)] _dtype: StorageType,
) {
    let nb = batch as usize;
    let l = len as usize;
    let e = width as usize;
    let u = UNIT_POS as usize;
    let cube = CUBE_POS_X as usize;
    let cubes = CUBE_COUNT_X as usize;
    let own = cube * comptime!(block / n) + u / n;
    let j = u % n;
    let bi = CUBE_POS_Y as usize;
    // A stacked scan's batch rows are its members' in order; member m's A and D are rows
    // m·e .. (m+1)·e.
    let member = bi / (nb / members as usize);
    let active = own < e;
    let ei = if active { own } else { e - 1 };
    let writes_row = active && j == 0;
    let warp = u / 32;
    let lane = UNIT_POS_PLANE as usize;
    let zero = F::new(0.0);

    // Per warp and chunk step, the warp's sums over its channels of ∂B and ∂C for each state
    // entry; summed over the cube's warps at the end of every chunk.
    let mut sum_b = SharedMemory::<F>::new(comptime!((block / 32) * k * n));
    let mut sum_c = SharedMemory::<F>::new(comptime!((block / 32) * k * n));

    let av = a[(member * e + ei) * n + j];
    let skip = d[member * e + ei];
    let mut carry = zero; // exp(Δ_{t+1} A) g_{t+1}
    let mut da_acc = zero;
    let mut dd_acc = zero;
    // The state entering each step of the chunk and each step's decay, in registers.
    let mut h_in = Array::<F>::new(k);
    let mut decay = Array::<F>::new(k);

    let chunks = (l + k - 1) / k;
    for ci in 0..chunks {
        let chunk_idx = chunks - 1 - ci;
        let t0 = chunk_idx * k;
        let mut h = states[((chunk_idx * nb + bi) * e + ei) * n + j];
        #[unroll]
        for s in 0..k {
            let t = t0 + s;
            h_in[s] = h;
            decay[s] = zero;
            if t < l {
                let row = (bi * l + t) * e + ei;
                let dt = delta[row];
                let dec = (dt * av).exp();
                decay[s] = dec;
                h = dec * h + dt * x[row] * b_in[(bi * l + t) * n + j];
            }
        }

        // The adjoint recurrence back through the chunk (t < l is the same for the whole cube).
        // Each step's inputs are loaded one step ahead, as in the forward; steps past the end
        // (t ≥ l, last chunk only) read step l - 1's (valid addresses; unused).
        let last = if t0 + k - 1 < l { t0 + k - 1 } else { l - 1 };
        let last_row = (bi * l + last) * e + ei;
        let last_bc = (bi * l + last) * n + j;
        let mut xv = x[last_row];
        let mut dt = delta[last_row];
        let mut gy = dy[last_row];
        let mut bj = b_in[last_bc];
        let mut cj = c[last_bc];
        #[unroll]
        for r in 0..k {
            let s = k - 1 - r;
            let t = t0 + s;
            let mut next_x = xv;
            let mut next_dt = dt;
            let mut next_gy = gy;
            let mut next_b = bj;
            let mut next_c = cj;
            if comptime!(r + 1 < k) {
                let pt = if t - 1 < l { t - 1 } else { l - 1 };
                let prow = (bi * l + pt) * e + ei;
                let pbc = (bi * l + pt) * n + j;
                next_x = x[prow];
                next_dt = delta[prow];
                next_gy = dy[prow];
                next_b = b_in[pbc];
                next_c = c[pbc];
            }
            let mut part_b = zero;
            let mut part_c = zero;
            if t < l {
                let row = (bi * l + t) * e + ei;
                let hp = h_in[s];
                let dec = decay[s];
                let g = carry + gy * cj;
                let gdt = sum_over_lanes::<F>(g * (bj * xv + av * dec * hp), n);
                let gx = sum_over_lanes::<F>(g * dt * bj, n);
                da_acc += g * dec * dt * hp;
                carry = g * dec;
                if active {
                    part_b = g * dt * xv;
                    part_c = gy * (dec * hp + dt * xv * bj);
                }
                if writes_row {
                    dx[row] = gx + skip * gy;
                    ddelta[row] = gdt;
                    dd_acc += gy * xv;
                }
            }
            xv = next_x;
            dt = next_dt;
            gy = next_gy;
            bj = next_b;
            cj = next_c;
            let warp_b = sum_over_channels::<F>(part_b, n);
            let warp_c = sum_over_channels::<F>(part_c, n);
            if lane < n {
                sum_b[(warp * k + s) * n + lane] = warp_b;
                sum_c[(warp * k + s) * n + lane] = warp_c;
            }
        }
        sync_cube();
        // k·n ≤ block: one thread per (step, state entry) sums the cube's warps.
        if u < k * n {
            let s = u / n;
            let jj = u % n;
            let t = t0 + s;
            if t < l {
                let mut tb = zero;
                let mut tc = zero;
                #[unroll]
                for w in 0..comptime!(block / 32) {
                    tb += sum_b[(w * k + s) * n + jj];
                    tc += sum_c[(w * k + s) * n + jj];
                }
                let out = ((bi * l + t) * cubes + cube) * n + jj;
                db_part[out] = tb;
                dc_part[out] = tc;
            }
        }
        sync_cube();
    }

    if active {
        da_part[(bi * e + ei) * n + j] = da_acc;
        if j == 0 {
            dd_part[bi * e + ei] = dd_acc;
        }
    }
}

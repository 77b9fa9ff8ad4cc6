//! The CubeCL kernels. Thread (bi, ei) = (CUBE_POS_Y, CUBE_POS_X·CUBE_DIM_X + UNIT_POS_X)
//! owns batch bi, channel ei, and its `n` state entries in registers.
//!
//! Layouts (all contiguous): x, delta, y, dy, dx, ddelta `[b, l, e]`; B, C `[b, l, n]`;
//! A `[e, n]`; D `[e]`; saved states `[chunks, n, b, e]` (state entering each chunk);
//! scratch `[chunk, n, b, e]`; per-warp partial sums ∂B, ∂C `[b, l, ⌈e/32⌉, n]`; per-batch
//! partial sums ∂A `[b, e, n]`, ∂D `[b, e]`. The `[.., n, b, e]` layouts make a warp's 32
//! channels read and write 32 consecutive floats.

use cubecl::prelude::*;

/// Threads of one warp (plane) on NVIDIA GPUs: the ∂B, ∂C reductions sum over one warp's
/// channels.
pub const WARP: usize = 32;

#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn scan_forward_kernel<F: Float>(
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
    chunk: u32,
    #[comptime] n: usize,
    #[comptime] save: bool,
    #[define(F)] _dtype: StorageType,
) {
    let nb = batch as usize;
    let l = len as usize;
    let e = width as usize;
    let k = chunk as usize;
    let ei = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    let bi = CUBE_POS_Y as usize;
    // A stacked scan's batch rows are its members' in order; member m's A and D are rows
    // m·e .. (m+1)·e.
    let member = bi / (nb / members as usize);
    if ei >= e {
        terminate!();
    }
    let plane = nb * e; // distance between state entries in `states`

    let mut h = Array::<F>::new(n);
    let mut av = Array::<F>::new(n);
    #[unroll]
    for j in 0..n {
        h[j] = F::new(0.0);
        av[j] = a[(member * e + ei) * n + j];
    }
    let skip = d[member * e + ei];

    for t in 0..l {
        if save {
            if t % k == 0 {
                let base = (t / k) * n * plane + bi * e + ei;
                #[unroll]
                for j in 0..n {
                    states[base + j * plane] = h[j];
                }
            }
        }
        let row = (bi * l + t) * e + ei;
        let xv = x[row];
        let dt = delta[row];
        let bc = (bi * l + t) * n;
        let input = dt * xv;
        let mut out = skip * xv;
        #[unroll]
        for j in 0..n {
            let hj = (dt * av[j]).exp() * h[j] + input * b_in[bc + j];
            h[j] = hj;
            out += c[bc + j] * hj;
        }
        y[row] = out;
    }
}

#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn scan_backward_kernel<F: Float>(
    x: &Tensor<F>,
    delta: &Tensor<F>,
    a: &Tensor<F>,
    b_in: &Tensor<F>,
    c: &Tensor<F>,
    d: &Tensor<F>,
    states: &Tensor<F>,
    dy: &Tensor<F>,
    scratch: &mut Tensor<F>,
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
    chunk: u32,
    #[comptime] n: usize,
    #[define(F)] _dtype: StorageType,
) {
    let nb = batch as usize;
    let l = len as usize;
    let e = width as usize;
    let k = chunk as usize;
    let own = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    let bi = CUBE_POS_Y as usize;
    // A stacked scan's batch rows are its members' in order; member m's A and D are rows
    // m·e .. (m+1)·e.
    let member = bi / (nb / members as usize);
    let warps = (e + 31) / 32;
    let warp = own / 32;
    // A warp with no channel at all (the tail of the last cube when e is not a multiple of
    // the cube's 128 threads) takes part in nothing: it leaves as a whole, so no warp sum
    // misses a lane.
    if warp >= warps {
        terminate!();
    }
    // Lanes past the last channel in the last warp stay to the end: every lane of a warp
    // takes part in the warp sums. They read channel e - 1's inputs (valid addresses), add
    // zeros to the sums and touch no memory another thread owns: the chunk scratch is per
    // channel, and an idle lane writing channel e - 1's entries would race the lane that owns
    // them (warps run unsynchronised, so another warp's idle lanes could be a chunk ahead).
    let active = own < e;
    let ei = if active { own } else { e - 1 };
    let writes_sums = UNIT_POS_PLANE == 0;
    let plane = nb * e;
    let me = bi * e + ei;
    let zero = F::new(0.0);

    let mut av = Array::<F>::new(n);
    let mut carry = Array::<F>::new(n); // exp(Δ_{t+1} A) g_{t+1}
    let mut da_acc = Array::<F>::new(n);
    #[unroll]
    for j in 0..n {
        av[j] = a[(member * e + ei) * n + j];
        carry[j] = zero;
        da_acc[j] = zero;
    }
    let skip = d[member * e + ei];
    let mut dd_acc = zero;

    let chunks = (l + k - 1) / k;
    for ci in 0..chunks {
        let chunk_idx = chunks - 1 - ci;
        let t0 = chunk_idx * k;
        let t1 = if t0 + k < l { t0 + k } else { l };
        let start = chunk_idx * n * plane + me;

        // The chunk's states, from the saved state entering it, into this thread's scratch.
        let mut h = Array::<F>::new(n);
        #[unroll]
        for j in 0..n {
            h[j] = states[start + j * plane];
        }
        for t in t0..t1 {
            let row = (bi * l + t) * e + ei;
            let xv = x[row];
            let dt = delta[row];
            let bc = (bi * l + t) * n;
            let input = dt * xv;
            let sbase = (t - t0) * n * plane + me;
            #[unroll]
            for j in 0..n {
                let hj = (dt * av[j]).exp() * h[j] + input * b_in[bc + j];
                h[j] = hj;
                if active {
                    scratch[sbase + j * plane] = hj;
                }
            }
        }

        // The adjoint recurrence back through the chunk.
        let steps = t1 - t0;
        for step in 0..steps {
            let t = t1 - 1 - step;
            let row = (bi * l + t) * e + ei;
            let xv = x[row];
            let dt = delta[row];
            let gy = dy[row];
            let bc = (bi * l + t) * n;
            let sbase = (t - t0) * n * plane + me;
            let sums = ((bi * l + t) * warps + warp) * n;
            let mut gx = skip * gy;
            let mut gdt = zero;
            dd_acc += gy * xv;
            #[unroll]
            for j in 0..n {
                // Idle lanes read nothing of the scratch (channel e - 1's lane writes it).
                let mut ht = zero;
                let mut hp = zero;
                if active {
                    ht = scratch[sbase + j * plane];
                    hp = if t > t0 { scratch[sbase - n * plane + j * plane] } else { states[start + j * plane] };
                }
                let bj = b_in[bc + j];
                let decay = (dt * av[j]).exp();
                let g = carry[j] + gy * c[bc + j];
                gdt += g * (bj * xv + av[j] * decay * hp);
                gx += g * dt * bj;
                da_acc[j] += g * decay * dt * hp;
                carry[j] = g * decay;
                let sum_c = plane_sum(select(active, gy * ht, zero));
                let sum_b = plane_sum(select(active, g * dt * xv, zero));
                if writes_sums {
                    dc_part[sums + j] = sum_c;
                    db_part[sums + j] = sum_b;
                }
            }
            if active {
                dx[row] = gx;
                ddelta[row] = gdt;
            }
        }
    }

    if active {
        #[unroll]
        for j in 0..n {
            da_part[me * n + j] = da_acc[j];
        }
        dd_part[me] = dd_acc;
    }
}

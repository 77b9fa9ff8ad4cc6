//! The per-channel kernels ([`super::Layout::PerChannel`]). Thread (bi, ei) = (CUBE_POS_Y,
//! CUBE_POS_X·CUBE_DIM_X + UNIT_POS_X) owns batch row bi, channel ei, and its `n` state
//! entries in registers, so a step issues the state's own arithmetic and little else: the
//! step's x, Δ (and ∂y) load once for all `n` entries, indices advance by one add a step, and
//! the backward's sums of ∂B, ∂C over a warp's 32 channels are one reduce-scatter
//! ([`sum_over_warp_scattered`]). Counted in SASS (`examples/cuda_source.rs`, `sass.py`):
//! see docs/performance.md.
//!
//! Layouts (all contiguous): x, delta, y, dy, dx, ddelta `[b, l, e]`; B, C `[b, l, n]`;
//! A `[e, n]`; D `[e]`; saved states `[chunks, n, b, e]` (state entering each chunk; the
//! backward keeps a chunk's states in shared memory); per-warp partial sums ∂B, ∂C `[b, l, ⌈e/32⌉, n]`; per-batch
//! partial sums ∂A `[b, e, n]`, ∂D `[b, e]`. The `[.., n, b, e]` layouts make a warp's 32
//! channels read and write 32 consecutive floats.
//!
//! `exp` compiles to `__expf` (`fast_math`: ex2.approx of x·log₂e, 2 instructions instead of
//! expf's ~8). Its relative error is ~2⁻²² plus that of rounding x·log₂e (|x|·2⁻²⁴): at most
//! ~1e-5 for the |Δ·A| below ~100 where exp(Δ·A) is not already 0 in f32, well inside the
//! 1e-4 the kernels are checked to.

use cubecl::prelude::*;

/// Threads of one warp (plane) on NVIDIA GPUs: the ∂B, ∂C reductions sum over one warp's
/// channels.
pub const WARP: usize = 32;

/// One stage of [`sum_over_warp_scattered`]: `count` values a lane (a power of two) become
/// `count / 2`, each the sum of this lane's and the lane `offset` away's value of the same
/// index; lanes with the `offset` bit set keep the upper half. With one value left, it is
/// summed with the other lane's (the two hold the same index).
#[cube]
fn halve_over_lanes<F: Float>(v: &mut Array<F>, lane: u32, #[comptime] count: usize, #[comptime] offset: u32) {
    if comptime!(count >= 2) {
        let upper = (lane & offset) != 0;
        #[unroll]
        for i in 0..comptime!(count / 2) {
            let lo = v[i];
            let hi = v[i + comptime!(count / 2)];
            let send = select(upper, lo, hi);
            let keep = select(upper, hi, lo);
            v[i] = keep + plane_shuffle_xor(send, offset);
        }
    } else {
        let own = v[0];
        v[0] = own + plane_shuffle_xor(own, offset);
    }
}

/// Σ over a warp's 32 lanes of each of the `p` values (a power of two) every lane holds in
/// `v`, spread over the lanes: 31 shuffles and adds for p = 32, where a sum per value would
/// take 32 × 5. Afterwards lane λ holds in `v[0..c]`, c = max(p/32, 1), the sums of the values
/// of index `(λ >> shift)·c + i` ([`scattered_layout`]); for p < 32 the `2^shift` lanes
/// with the same index all hold its sum. Every lane of the warp must call it.
#[cube]
fn sum_over_warp_scattered<F: Float>(v: &mut Array<F>, #[comptime] p: usize) {
    let lane = UNIT_POS_PLANE;
    halve_over_lanes::<F>(v, lane, p, 16u32);
    halve_over_lanes::<F>(v, lane, comptime!(if p >= 2 { p / 2 } else { 1 }), 8u32);
    halve_over_lanes::<F>(v, lane, comptime!(if p >= 4 { p / 4 } else { 1 }), 4u32);
    halve_over_lanes::<F>(v, lane, comptime!(if p >= 8 { p / 8 } else { 1 }), 2u32);
    halve_over_lanes::<F>(v, lane, comptime!(if p >= 16 { p / 16 } else { 1 }), 1u32);
}

/// After [`sum_over_warp_scattered`] of `p` values: the sums a lane holds (`c`), and the shift
/// of the lane index that gives their first index (`(λ >> shift)·c`; the `2^shift` lanes
/// that agree above it hold the same sums, and the lowest of them writes them).
pub const fn scattered_layout(p: usize) -> (usize, u32) {
    let stages = if p.trailing_zeros() < 5 { p.trailing_zeros() } else { 5 };
    (if p >= 32 { p / 32 } else { 1 }, 5 - stages)
}

/// Row `row` (in vectors) of a `[.., n]` tensor read as vectors, into `out[0..n]`.
#[cube]
fn load_row<F: Float, N: Size>(t: &Tensor<Vector<F, N>>, row: usize, out: &mut Array<F>, #[comptime] n: usize) {
    let vs = t.vector_size();
    #[unroll]
    for q in 0..comptime!(n / vs) {
        let v = t[row + q];
        #[unroll]
        for i in 0..vs {
            out[q * vs + i] = v[i];
        }
    }
}

/// `values[0..n]` into a thread's slot `slot` of the backward's shared memory: vector `q` of
/// slot `s` for thread `u` at `(s·n/vs + q)·block + u`, so a warp's 32 threads touch 32
/// consecutive vectors (no bank conflicts).
#[cube]
fn store_slot<F: Float, N: Size>(mem: &mut SharedMemory<Vector<F, N>>, slot: usize, values: &Array<F>, #[comptime] n: usize, #[comptime] vs: usize, #[comptime] block: usize) {
    let u = UNIT_POS as usize;
    #[unroll]
    for q in 0..comptime!(n / vs) {
        let mut v = Vector::<F, N>::empty();
        #[unroll]
        for i in 0..vs {
            v[i] = values[q * vs + i];
        }
        mem[(slot * comptime!(n / vs) + q) * block + u] = v;
    }
}

/// A thread's slot `slot` of the backward's shared memory into `out[0..n]` ([`store_slot`]).
#[cube]
fn load_slot<F: Float, N: Size>(mem: &SharedMemory<Vector<F, N>>, slot: usize, out: &mut Array<F>, #[comptime] n: usize, #[comptime] vs: usize, #[comptime] block: usize) {
    let u = UNIT_POS as usize;
    #[unroll]
    for q in 0..comptime!(n / vs) {
        let v = mem[(slot * comptime!(n / vs) + q) * block + u];
        #[unroll]
        for i in 0..vs {
            out[q * vs + i] = v[i];
        }
    }
}

#[cube(launch, launch_unchecked, fast_math = FastMath::ReducedPrecision | FastMath::NotNaN | FastMath::NotInf)]
#[allow(clippy::too_many_arguments)]
pub fn scan_forward_kernel<F: Float, N: Size>(
    x: &Tensor<F>,
    delta: &Tensor<F>,
    a: &Tensor<F>,
    b_in: &Tensor<Vector<F, N>>,
    c: &Tensor<Vector<F, N>>,
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
    let ei = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    let bi = CUBE_POS_Y as usize;
    // A stacked scan's batch rows are its members' in order; member m's A and D are rows
    // m·e .. (m+1)·e.
    let member = bi / (nb / members as usize);
    if ei >= e {
        terminate!();
    }
    let plane = nb * e; // distance between state entries in `states`
    let row_vectors = comptime!(n) / b_in.vector_size();

    let mut h = Array::<F>::new(n);
    let mut av = Array::<F>::new(n);
    let mut bv = Array::<F>::new(n);
    let mut cv = Array::<F>::new(n);
    #[unroll]
    for j in 0..n {
        h[j] = F::new(0.0);
        av[j] = a[(member * e + ei) * n + j];
    }
    let skip = d[member * e + ei];

    // Indices advance by one add a step (a division or modulo by a runtime value costs ~20
    // instructions).
    let mut row = bi * l * e + ei;
    let mut bc = bi * l * row_vectors;
    let mut saved = bi * e + ei;
    let mut until_save = 0u32;
    for _t in 0..l {
        if save {
            if until_save == 0 {
                #[unroll]
                for j in 0..n {
                    states[saved + j * plane] = h[j];
                }
                saved += n * plane;
                until_save = chunk;
            }
            until_save -= 1;
        }
        let xv = x[row];
        let dt = delta[row];
        load_row::<F, N>(b_in, bc, &mut bv, n);
        load_row::<F, N>(c, bc, &mut cv, n);
        let input = dt * xv;
        let mut out = skip * xv;
        #[unroll]
        for j in 0..n {
            let hj = (dt * av[j]).exp() * h[j] + input * bv[j];
            h[j] = hj;
            out += cv[j] * hj;
        }
        y[row] = out;
        row += e;
        bc += row_vectors;
    }
}

#[cube(launch, launch_unchecked, fast_math = FastMath::ReducedPrecision | FastMath::NotNaN | FastMath::NotInf)]
#[allow(clippy::too_many_arguments)]
pub fn scan_backward_kernel<F: Float, N: Size>(
    x: &Tensor<F>,
    delta: &Tensor<F>,
    a: &Tensor<F>,
    b_in: &Tensor<Vector<F, N>>,
    c: &Tensor<Vector<F, N>>,
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
    // takes part in the warp sums. They run channel e - 1's inputs with ∂y = 0, so what they
    // add to the sums is 0, in shared-memory slots of their own (every thread has its own
    // every lane of every warp), and write nothing else.
    let active = own < e;
    let ei = if active { own } else { e - 1 };
    let plane = nb * e;
    let me = bi * e + ei;
    let zero = F::new(0.0);
    let vs = b_in.vector_size();
    let row_vectors = comptime!(n / vs);
    // The chunk's states, a slot a step for each thread: k·n floats a thread, in shared
    // memory (on-chip; in global memory they were 2·n floats of traffic a channel-step).
    let mut slots = SharedMemory::<Vector<F, N>>::new(comptime!(k * (n / vs) * block));
    // ∂B and ∂C of a step: 2n values a lane, padded to a power of two for the warp sum.
    let p = comptime!((2 * n).next_power_of_two());
    let per_lane = comptime!(scattered_layout(p).0);
    let shift = comptime!(scattered_layout(p).1);
    let lane = UNIT_POS_PLANE;
    let writes_sums = (lane & comptime!((1u32 << shift) - 1)) == 0;
    let first_index = (lane >> shift) as usize * per_lane;

    let mut av = Array::<F>::new(n);
    let mut carry = Array::<F>::new(n); // exp(Δ_{t+1} A) g_{t+1}
    let mut da_acc = Array::<F>::new(n);
    let mut h = Array::<F>::new(n);
    let mut hp = Array::<F>::new(n);
    let mut bv = Array::<F>::new(n);
    let mut cv = Array::<F>::new(n);
    let mut sums = Array::<F>::new(p);
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
        let steps = t1 - t0;
        let start = chunk_idx * n * plane + me;

        // The chunk's states, from the saved state entering it: the state entering each step
        // into this thread's scratch slot for the step, the state after the last step in `h`.
        #[unroll]
        for j in 0..n {
            h[j] = states[start + j * plane];
        }
        let mut row = (bi * l + t0) * e + ei;
        let mut bc = (bi * l + t0) * row_vectors;
        for s in 0..steps {
            store_slot::<F, N>(&mut slots, s, &h, n, vs, block);
            let xv = x[row];
            let dt = delta[row];
            load_row::<F, N>(b_in, bc, &mut bv, n);
            let input = dt * xv;
            #[unroll]
            for j in 0..n {
                h[j] = (dt * av[j]).exp() * h[j] + input * bv[j];
            }
            row += e;
            bc += row_vectors;
        }

        // The adjoint recurrence back through the chunk. At step t, `h` holds the state after
        // it (h_t), its slot the state entering it (h_{t-1}), which is `h` for step t - 1.
        for r in 0..steps {
            let s = steps - 1 - r;
            let t = t0 + s;
            row -= e;
            bc -= row_vectors;
            let xv = x[row];
            let dt = delta[row];
            let gy = select(active, dy[row], zero);
            load_slot::<F, N>(&slots, s, &mut hp, n, vs, block);
            load_row::<F, N>(b_in, bc, &mut bv, n);
            load_row::<F, N>(c, bc, &mut cv, n);
            let mut gxs = zero;
            let mut gdt = zero;
            dd_acc += gy * xv;
            #[unroll]
            for j in 0..n {
                let decay = (dt * av[j]).exp();
                let g = carry[j] + gy * cv[j];
                let dhp = decay * hp[j];
                gdt += g * (bv[j] * xv + av[j] * dhp);
                gxs += g * bv[j];
                let gdt_j = g * dt;
                da_acc[j] += gdt_j * dhp;
                carry[j] = g * decay;
                sums[j] = gdt_j * xv;
                sums[j + n] = gy * h[j];
                h[j] = hp[j];
            }
            #[unroll]
            for q in 0..comptime!(p - 2 * n) {
                sums[q + comptime!(2 * n)] = zero;
            }
            sum_over_warp_scattered::<F>(&mut sums, p);
            let base = ((bi * l + t) * warps + warp) * n;
            #[unroll]
            for i in 0..per_lane {
                let idx = first_index + i;
                if writes_sums {
                    if idx < n {
                        db_part[base + idx] = sums[i];
                    } else if idx < comptime!(2 * n) {
                        dc_part[base + idx - n] = sums[i];
                    }
                }
            }
            if active {
                dx[row] = gxs * dt + skip * gy;
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

//! Causal softmax attention, `lanes` threads per row: the forward and the query-side backward
//! give each row's threads a query row and walk the key rows in tiles of [`BLOCK`] staged in
//! shared memory (an online softmax in the forward); the key-side backward gives them a key
//! row and walks the query rows after it. No `t x t` matrix is ever written: the forward saves
//! one log-sum-exp per row and the backward recomputes the probabilities from it.
//!
//! A row's `lanes` threads (neighbouring lanes of one warp) each hold `d / lanes` of its
//! columns, and the dot products are finished by xor shuffles over them: half (or a quarter)
//! of the registers of a whole row per thread (a whole row took 255 registers and spilled in
//! the key-side backward: docs/performance.md, session 10).
//!
//! Layouts (all contiguous): `qkv` `[b, t, 3e]` as the projection writes it (q, k, v side by
//! side, head `hh` in columns `hh·d .. hh·d + d` of each), y and ∂y `[b, t, e]`, ∂qkv like
//! `qkv`; per row `[b, h, t]`: the log-sum-exp and `Σ_c ∂y·y`.
//!
//! Every thread of a warp runs the same loop steps, because of the shuffles: keys after a
//! query (the causal mask, within the diagonal tile) are masked rather than skipped, and the
//! threads past the last row compute on clamped rows, take part in every barrier and
//! shuffle, and write nothing.

use cubecl::prelude::*;

use crate::lanes::sum_over_lanes;

/// Rows per cube and per shared-memory tile (a cube is `BLOCK · lanes` threads). 32 rather
/// than 64: more, shorter cubes balance the causal triangle's uneven tiles (session 9: GPT-2
/// e256's attention 3-10 % faster, the whole step 49.1 against 51.1 and 52.4 ms in one lease).
pub const BLOCK: usize = 32;

/// Copies rows `r0 .. r0 + BLOCK` (clamped to the last row) of one head's `d` columns at
/// `col` of a `[b, t, width]` tensor into `tile` (`BLOCK x d`). Consecutive threads take
/// consecutive elements: coalesced reads, no bank conflicts.
#[cube]
#[allow(clippy::too_many_arguments)]
fn load_tile<F: Float>(
    src: &Tensor<F>,
    tile: &mut SharedMemory<F>,
    batch_start: usize,
    r0: usize,
    t: usize,
    width: usize,
    col: usize,
    #[comptime] d: usize,
    #[comptime] lanes: usize,
) {
    let u = UNIT_POS as usize;
    #[unroll]
    for r in 0..comptime!(d / lanes) {
        let idx = r * comptime!(BLOCK * lanes) + u;
        let row = min(r0 + idx / d, t - 1);
        tile[idx] = src[batch_start + row * width + col + idx % d];
    }
}

/// Copies one value per row (`[b·h, t]` tensors) for rows `r0 .. r0 + BLOCK` into `tile`.
#[cube]
fn load_row_values<F: Float>(src: &Tensor<F>, tile: &mut SharedMemory<F>, bh: usize, r0: usize, t: usize) {
    let u = UNIT_POS as usize;
    if u < BLOCK {
        tile[u] = src[bh * t + min(r0 + u, t - 1)];
    }
}

/// The cube's tile of query rows, last tile first: cubes run roughly in launch order (x, the
/// batch row x head, fastest), and a late tile walks the most keys, so the heaviest cubes
/// start first and the short ones fill in behind them.
// The lint sees the host-side placeholders of CUBE_COUNT_Y and CUBE_POS_Y (1 and 2).
#[cube]
#[allow(arithmetic_overflow)]
fn query_tile() -> usize {
    (CUBE_COUNT_Y - 1 - CUBE_POS_Y) as usize
}

#[cube]
fn scale_of<F: Float>(#[comptime] d: usize) -> F {
    F::new(1.0) / F::new(comptime!(d as f32)).sqrt()
}

#[cube(launch, launch_unchecked)]
pub fn attention_forward_kernel<F: Float>(
    qkv: &Tensor<F>,
    y: &mut Tensor<F>,
    lse: &mut Tensor<F>,
    len: u32,
    heads: u32,
    #[comptime] d: usize,
    #[comptime] lanes: usize,
    #[define(F)] _dtype: StorageType,
) {
    let t = len as usize;
    let h = heads as usize;
    let e = h * d;
    let dh = comptime!(d / lanes);
    let bh = CUBE_POS_X as usize;
    let (bi, hh) = (bh / h, bh % h);
    let row_tile = query_tile();
    let first = row_tile * BLOCK;
    let u = UNIT_POS as usize;
    let part = u % lanes;
    let cols = part * dh; // this thread's columns within the head
    let i = first + u / lanes;
    let active = i < t;
    let start = bi * t * 3 * e;
    let qoff = start + min(i, t - 1) * 3 * e + hh * d + cols;
    let scale = scale_of::<F>(d);

    let mut q = Array::<F>::new(dh);
    let mut acc = Array::<F>::new(dh);
    #[unroll]
    for c in 0..dh {
        q[c] = qkv[qoff + c] * scale;
        acc[c] = F::new(0.0);
    }
    let mut m = F::new(-1.0e30);
    let mut l = F::new(0.0);
    let mut ks = SharedMemory::<F>::new(comptime!(BLOCK * d));
    let mut vs = SharedMemory::<F>::new(comptime!(BLOCK * d));

    // Keys 0 ..= the cube's last query, a tile at a time: first the tile's scores (independent
    // dot products the compiler interleaves), then one rescale by the tile's maximum and the
    // weighted values. A key after the query scores -1e30, so its weight is exp(-1e30 - m) = 0:
    // key 0 is in the first tile, so m is a real score after it.
    let mut scores = Array::<F>::new(BLOCK);
    let tiles = row_tile + 1;
    for tile in 0..tiles {
        let j0 = tile * BLOCK;
        load_tile::<F>(qkv, &mut ks, start, j0, t, 3 * e, e + hh * d, d, lanes);
        load_tile::<F>(qkv, &mut vs, start, j0, t, 3 * e, 2 * e + hh * d, d, lanes);
        sync_cube();
        let mut tile_max = F::new(-1.0e30);
        #[unroll]
        for j in 0..BLOCK {
            let mut s = F::new(0.0);
            #[unroll]
            for c in 0..dh {
                s += q[c] * ks[j * d + cols + c];
            }
            let s = select(j0 + j <= i, sum_over_lanes::<F>(s, lanes), F::new(-1.0e30));
            scores[j] = s;
            tile_max = max(tile_max, s);
        }
        let m_new = max(m, tile_max);
        let corr = (m - m_new).exp();
        l *= corr;
        #[unroll]
        for c in 0..dh {
            acc[c] *= corr;
        }
        #[unroll]
        for j in 0..BLOCK {
            let p = (scores[j] - m_new).exp();
            l += p;
            #[unroll]
            for c in 0..dh {
                acc[c] += p * vs[j * d + cols + c];
            }
        }
        m = m_new;
        sync_cube();
    }
    if active {
        let inv = F::new(1.0) / l;
        let yoff = (bi * t + i) * e + hh * d + cols;
        #[unroll]
        for c in 0..dh {
            y[yoff + c] = acc[c] * inv;
        }
        if part == 0 {
            lse[bh * t + i] = m + l.ln();
        }
    }
}

/// ∂q of every query row; also writes each row's `Σ_c ∂y·y` for the key-side kernel.
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_query_kernel<F: Float>(
    qkv: &Tensor<F>,
    y: &Tensor<F>,
    dy: &Tensor<F>,
    lse: &Tensor<F>,
    dsum: &mut Tensor<F>,
    dqkv: &mut Tensor<F>,
    len: u32,
    heads: u32,
    #[comptime] d: usize,
    #[comptime] lanes: usize,
    #[define(F)] _dtype: StorageType,
) {
    let t = len as usize;
    let h = heads as usize;
    let e = h * d;
    let dh = comptime!(d / lanes);
    let bh = CUBE_POS_X as usize;
    let (bi, hh) = (bh / h, bh % h);
    let row_tile = query_tile();
    let first = row_tile * BLOCK;
    let u = UNIT_POS as usize;
    let part = u % lanes;
    let cols = part * dh;
    let i = first + u / lanes;
    let active = i < t;
    let ic = min(i, t - 1);
    let start = bi * t * 3 * e;
    let qoff = start + ic * 3 * e + hh * d + cols;
    let yoff = (bi * t + ic) * e + hh * d + cols;
    let scale = scale_of::<F>(d);

    let mut q = Array::<F>::new(dh);
    let mut g = Array::<F>::new(dh);
    let mut dq = Array::<F>::new(dh);
    let mut di = F::new(0.0);
    #[unroll]
    for c in 0..dh {
        q[c] = qkv[qoff + c] * scale;
        g[c] = dy[yoff + c];
        di += g[c] * y[yoff + c];
        dq[c] = F::new(0.0);
    }
    let di = sum_over_lanes::<F>(di, lanes);
    let li = lse[bh * t + ic];
    if active && part == 0 {
        dsum[bh * t + i] = di;
    }
    let mut ks = SharedMemory::<F>::new(comptime!(BLOCK * d));
    let mut vs = SharedMemory::<F>::new(comptime!(BLOCK * d));
    let mut ds = Array::<F>::new(BLOCK);

    let tiles = row_tile + 1;
    for tile in 0..tiles {
        let j0 = tile * BLOCK;
        load_tile::<F>(qkv, &mut ks, start, j0, t, 3 * e, e + hh * d, d, lanes);
        load_tile::<F>(qkv, &mut vs, start, j0, t, 3 * e, 2 * e + hh * d, d, lanes);
        sync_cube();
        // The tile's score gradients first (independent per key), then ∂q from them.
        #[unroll]
        for j in 0..BLOCK {
            let mut s = F::new(0.0);
            let mut dp = F::new(0.0);
            #[unroll]
            for c in 0..dh {
                s += q[c] * ks[j * d + cols + c];
                dp += g[c] * vs[j * d + cols + c];
            }
            let s = sum_over_lanes::<F>(s, lanes);
            let dp = sum_over_lanes::<F>(dp, lanes);
            ds[j] = select(j0 + j <= i, (s - li).exp() * (dp - di), F::new(0.0));
        }
        #[unroll]
        for j in 0..BLOCK {
            #[unroll]
            for c in 0..dh {
                dq[c] += ds[j] * ks[j * d + cols + c];
            }
        }
        sync_cube();
    }
    if active {
        #[unroll]
        for c in 0..dh {
            dqkv[qoff + c] = dq[c] * scale;
        }
    }
}

/// ∂k and ∂v of every key row: each row's threads walk the query rows at or after its key.
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_key_kernel<F: Float>(
    qkv: &Tensor<F>,
    dy: &Tensor<F>,
    lse: &Tensor<F>,
    dsum: &Tensor<F>,
    dqkv: &mut Tensor<F>,
    len: u32,
    heads: u32,
    #[comptime] d: usize,
    #[comptime] lanes: usize,
    #[define(F)] _dtype: StorageType,
) {
    let t = len as usize;
    let h = heads as usize;
    let e = h * d;
    let dh = comptime!(d / lanes);
    let bh = CUBE_POS_X as usize;
    let (bi, hh) = (bh / h, bh % h);
    // Key tile 0 walks every query tile: the natural order already starts with the heaviest.
    let row_tile = CUBE_POS_Y as usize;
    let first = row_tile * BLOCK;
    let u = UNIT_POS as usize;
    let part = u % lanes;
    let cols = part * dh;
    let j = first + u / lanes;
    let active = j < t;
    let start = bi * t * 3 * e;
    let koff = start + min(j, t - 1) * 3 * e + e + hh * d + cols;
    let scale = scale_of::<F>(d);

    let mut k = Array::<F>::new(dh);
    let mut v = Array::<F>::new(dh);
    let mut dk = Array::<F>::new(dh);
    let mut dv = Array::<F>::new(dh);
    #[unroll]
    for c in 0..dh {
        k[c] = qkv[koff + c] * scale;
        v[c] = qkv[koff + e + c];
        dk[c] = F::new(0.0);
        dv[c] = F::new(0.0);
    }
    let mut qs = SharedMemory::<F>::new(comptime!(BLOCK * d));
    let mut gs = SharedMemory::<F>::new(comptime!(BLOCK * d));
    let mut ls = SharedMemory::<F>::new(BLOCK);
    let mut dsums = SharedMemory::<F>::new(BLOCK);

    // Queries from the cube's first key to the last row; within the first tile, queries
    // before the thread's key are masked (weight 0).
    let tiles = (t + BLOCK - 1) / BLOCK;
    for tile in row_tile..tiles {
        let i0 = tile * BLOCK;
        load_tile::<F>(qkv, &mut qs, start, i0, t, 3 * e, hh * d, d, lanes);
        load_tile::<F>(dy, &mut gs, bi * t * e, i0, t, e, hh * d, d, lanes);
        load_row_values::<F>(lse, &mut ls, bh, i0, t);
        load_row_values::<F>(dsum, &mut dsums, bh, i0, t);
        sync_cube();
        let to = min(BLOCK, t - i0);
        for r in 0..to {
            let mut s = F::new(0.0);
            let mut dp = F::new(0.0);
            #[unroll]
            for c in 0..dh {
                s += qs[r * d + cols + c] * k[c];
                dp += gs[r * d + cols + c] * v[c];
            }
            let s = sum_over_lanes::<F>(s, lanes);
            let dp = sum_over_lanes::<F>(dp, lanes);
            let p = select(i0 + r >= j, (s - ls[r]).exp(), F::new(0.0));
            let ds = p * (dp - dsums[r]);
            #[unroll]
            for c in 0..dh {
                dv[c] += p * gs[r * d + cols + c];
                dk[c] += ds * qs[r * d + cols + c];
            }
        }
        sync_cube();
    }
    if active {
        #[unroll]
        for c in 0..dh {
            dqkv[koff + c] = dk[c] * scale;
            dqkv[koff + e + c] = dv[c];
        }
    }
}

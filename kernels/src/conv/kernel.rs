//! The kernels. x, y, dy, dx `[K·b, l, c]`, w `[K·c, k]`, bias `[K·c]` for K stacked members
//! (sequence row r is member `r / b`'s, with its rows of w and bias; K = 1 a plain conv),
//! contiguous, except that x's steps may lie `x_step ≥ c` apart (a column slice of a wider
//! tensor: Mamba's x, half of in_proj's output); a thread per output element forward, per
//! (sequence piece, channel) backward (consecutive threads take consecutive channels:
//! coalesced rows).

use cubecl::prelude::*;

/// `y[i] = bias[c'] + Σ_j w[c', j] · x[r, t − (k − 1 − j), c]` for element `i` = (r, t, c),
/// `c' = m·c + c` the channel's row in member `m = r / per_member`'s part of w and bias.
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn causal_conv_forward_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    bias: &Tensor<F>,
    y: &mut Tensor<F>,
    len: u32,
    channels: u32,
    x_step: u32,
    per_member: u32,
    total: u32,
    #[comptime] k: usize,
    #[define(F)] _dtype: StorageType,
) {
    let i = ABSOLUTE_POS;
    if i >= total as usize {
        terminate!();
    }
    let c = channels as usize;
    let l = len as usize;
    let ch = i % c;
    let t = (i / c) % l;
    let wrow = (i / (c * l) / per_member as usize) * c + ch;
    let xs = x_step as usize;
    let xi = (i / c) * xs + ch;
    let mut acc = bias[wrow];
    #[unroll]
    for j in 0..k {
        let back = comptime!(k - 1 - j);
        if t >= back {
            acc += w[wrow * k + j] * x[xi - back * xs];
        }
    }
    y[i] = acc;
}

/// Thread (piece, ch): steps `piece`'s `span` steps of one sequence (of member m) for channel
/// `ch`: ∂x of each (`Σ_j w[c', j] · ∂y[t + k − 1 − j]`, `c' = m·c + ch`), and the piece's sums
/// of ∂w (`∂y[t] · x[t − (k − 1 − j)]`) and of ∂bias (`∂y[t]`), into row p (the piece's place
/// among its member's pieces) of `parts` `[pieces / K, K·c·(k + 1)]`: ∂w at columns
/// `c'·k + j` (row-major `[K·c, k]`), ∂bias at `K·c·k + c'`; one column sum then finishes both.
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn causal_conv_backward_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    parts: &mut Tensor<F>,
    len: u32,
    channels: u32,
    x_step: u32,
    members: u32,
    per_member: u32,
    span: u32,
    #[comptime] k: usize,
    #[define(F)] _dtype: StorageType,
) {
    let c = channels as usize;
    let l = len as usize;
    let ch = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if ch >= c {
        terminate!();
    }
    let piece = CUBE_POS_Y as usize;
    let pieces = (l + span as usize - 1) / span as usize;
    let bi = piece / pieces;
    let member = bi / per_member as usize;
    let wrow = member * c + ch;
    let t0 = (piece % pieces) * span as usize;
    let t1 = if t0 + (span as usize) < l { t0 + span as usize } else { l };
    let mut taps = Array::<F>::new(k);
    let mut sums = Array::<F>::new(k);
    #[unroll]
    for j in 0..k {
        taps[j] = w[wrow * k + j];
        sums[j] = F::new(0.0);
    }
    let mut sum_bias = F::new(0.0);
    let xs = x_step as usize;
    for t in t0..t1 {
        let row = (bi * l + t) * c + ch;
        let xrow = (bi * l + t) * xs + ch;
        let g = dy[row];
        let mut acc = F::new(0.0);
        #[unroll]
        for j in 0..k {
            let ahead = comptime!(k - 1 - j);
            if t + ahead < l {
                acc += taps[j] * dy[row + ahead * c];
            }
            if t >= ahead {
                sums[j] += g * x[xrow - ahead * xs];
            }
        }
        dx[row] = acc;
        sum_bias += g;
    }
    // Pieces of one member are consecutive: its p-th is piece − member · (its pieces).
    let kc = members as usize * c;
    let row = (piece - member * per_member as usize * pieces) * kc * comptime!(k + 1);
    #[unroll]
    for j in 0..k {
        parts[row + wrow * k + j] = sums[j];
    }
    parts[row + kc * k + wrow] = sum_bias;
}

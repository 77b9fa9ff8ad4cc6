//! The kernels. x, y, dy, dx `[b, l, c]`, w `[c, k]`, bias `[c]`, contiguous; a thread per
//! output element forward, per (sequence piece, channel) backward (consecutive threads take
//! consecutive channels: coalesced rows).

use cubecl::prelude::*;

/// `y[i] = bias[c] + Σ_j w[c, j] · x[b, t − (k − 1 − j), c]` for element `i` = (b, t, c).
#[cube(launch, launch_unchecked)]
pub fn causal_conv_forward_kernel<F: Float>(x: &Tensor<F>, w: &Tensor<F>, bias: &Tensor<F>, y: &mut Tensor<F>, len: u32, channels: u32, total: u32, #[comptime] k: usize, #[define(F)] _dtype: StorageType) {
    let i = ABSOLUTE_POS;
    if i >= total as usize {
        terminate!();
    }
    let c = channels as usize;
    let ch = i % c;
    let t = (i / c) % len as usize;
    let mut acc = bias[ch];
    #[unroll]
    for j in 0..k {
        let back = comptime!(k - 1 - j);
        if t >= back {
            acc += w[ch * k + j] * x[i - back * c];
        }
    }
    y[i] = acc;
}

/// Thread (piece, ch): steps `piece`'s `span` steps of one sequence for channel `ch`: ∂x of
/// each (`Σ_j w[c, j] · ∂y[t + k − 1 − j]`), and the piece's sums of ∂w (`∂y[t] · x[t − (k − 1
/// − j)]`, into row `piece` of `dw_part` `[pieces, c·k]`, row-major `[c, k]`) and of ∂bias
/// (`∂y[t]`, into `dbias_part` `[pieces, c]`).
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn causal_conv_backward_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    dw_part: &mut Tensor<F>,
    dbias_part: &mut Tensor<F>,
    len: u32,
    channels: u32,
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
    let t0 = (piece % pieces) * span as usize;
    let t1 = if t0 + (span as usize) < l { t0 + span as usize } else { l };
    let mut taps = Array::<F>::new(k);
    let mut sums = Array::<F>::new(k);
    #[unroll]
    for j in 0..k {
        taps[j] = w[ch * k + j];
        sums[j] = F::new(0.0);
    }
    let mut sum_bias = F::new(0.0);
    for t in t0..t1 {
        let row = (bi * l + t) * c + ch;
        let g = dy[row];
        let mut acc = F::new(0.0);
        #[unroll]
        for j in 0..k {
            let ahead = comptime!(k - 1 - j);
            if t + ahead < l {
                acc += taps[j] * dy[row + ahead * c];
            }
            if t >= ahead {
                sums[j] += g * x[row - ahead * c];
            }
        }
        dx[row] = acc;
        sum_bias += g;
    }
    #[unroll]
    for j in 0..k {
        dw_part[(piece * c + ch) * k + j] = sums[j];
    }
    dbias_part[piece * c + ch] = sum_bias;
}

//! Sums of a row-major `[rows, cols]` matrix over its rows, for the gradients that reduce
//! over many rows: a linear layer's ∂bias (over the b·t rows of ∂y), its ∂w (over the batch
//! of per-sample products) and LayerNorm's ∂γ, ∂β (over per-cube partial sums).
//!
//! burn's reduction over the first of two dimensions takes ~30-50 µs a launch at these sizes
//! without autotune (docs/performance.md, session 8 call 6: 153 of them took 32.8 ms of a
//! GPT-2 e256 step). Here a warp reads 32 neighbouring columns of a row (coalesced), a cube's
//! [`ROW_LANES`] warps take interleaved rows of its chunk, each thread keeps four sums so four
//! loads are in flight, and the warps meet in shared memory. More than [`ONE_PASS_ROWS`] rows
//! go in chunks of [`CHUNK_ROWS`] to a partial sum per chunk, summed by a second pass. Every
//! sum runs in a fixed order: the result is deterministic.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::ops::reshape;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

/// Warps of a cube, each summing every `ROW_LANES`-th row of the cube's chunk.
pub const ROW_LANES: usize = 8;
/// Rows summed by one pass straight into the result (at most 32 loads a thread).
pub const ONE_PASS_ROWS: usize = 256;
/// Rows of a chunk of a first pass (16 loads a thread), one partial sum per chunk.
pub const CHUNK_ROWS: usize = 128;

/// `Σ x[r, c]` over the rows `r` of chunk `CUBE_POS_Y` (`chunk` rows each) into
/// `out[chunk, c]` for the columns `c < split` and `rest[chunk, c - split]` for the others
/// (`split = cols`: all into `out`; `rest` is then bound but never written); a cube takes 32
/// columns.
#[cube(launch, launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn column_sum_kernel<F: Float>(x: &Tensor<F>, out: &mut Tensor<F>, rest: &mut Tensor<F>, rows: u32, cols: u32, chunk: u32, split: u32, #[define(F)] _dtype: StorageType) {
    let lane = UNIT_POS_X as usize;
    let warp = UNIT_POS_Y as usize;
    let c = cols as usize;
    let col = CUBE_POS_X as usize * 32 + lane;
    // Lanes past the last column read a valid one and write nothing.
    let read_col = min(col, c - 1);
    let first = CUBE_POS_Y as usize * chunk as usize;
    let end = min(first + chunk as usize, rows as usize);
    let (mut s0, mut s1, mut s2, mut s3) = (F::new(0.0), F::new(0.0), F::new(0.0), F::new(0.0));
    let mut r = first + warp;
    while r + 3 * ROW_LANES < end {
        s0 += x[r * c + read_col];
        s1 += x[(r + ROW_LANES) * c + read_col];
        s2 += x[(r + 2 * ROW_LANES) * c + read_col];
        s3 += x[(r + 3 * ROW_LANES) * c + read_col];
        r += 4 * ROW_LANES;
    }
    while r < end {
        s0 += x[r * c + read_col];
        r += ROW_LANES;
    }
    let mut shared = SharedMemory::<F>::new(comptime!(ROW_LANES * 32));
    shared[warp * 32 + lane] = (s0 + s1) + (s2 + s3);
    sync_cube();
    if warp == 0 && col < c {
        let mut total = F::new(0.0);
        #[unroll]
        for w in 0..ROW_LANES {
            total += shared[w * 32 + lane];
        }
        let split = split as usize;
        if col < split {
            out[CUBE_POS_Y as usize * split + col] = total;
        } else {
            rest[CUBE_POS_Y as usize * (c - split) + col - split] = total;
        }
    }
}

/// The passes over `rows` rows: `(rows, chunk rows)` of each, the last one a single chunk.
pub fn passes(rows: usize) -> Vec<(usize, usize)> {
    let mut plan = Vec::new();
    let mut rows = rows.max(1);
    while rows > ONE_PASS_ROWS {
        plan.push((rows, CHUNK_ROWS));
        rows = rows.div_ceil(CHUNK_ROWS);
    }
    plan.push((rows, rows));
    plan
}

/// The sum over the rows of a 2-D tensor `[rows, cols]`: `[cols]`.
pub fn column_sum<R: CubeRuntime>(x: CubeTensor<R>) -> CubeTensor<R> {
    let cols = x.shape().dims::<2>()[1];
    sum_rows(x, cols).0
}

/// The sum over the rows of a 2-D tensor `[rows, cols]` as two tensors, columns
/// `..split` (`[split]`) and `split..` (`[cols - split]`), by the same launches as one sum (the
/// last pass writes both), where a sum then a split would copy every part that misses the
/// memory alignment.
pub fn column_sums<R: CubeRuntime>(x: CubeTensor<R>, split: usize) -> (CubeTensor<R>, CubeTensor<R>) {
    let cols = x.shape().dims::<2>()[1];
    assert!(0 < split && split < cols, "column sums: split {split} must fall within the {cols} columns");
    let (first, rest) = sum_rows(x, split);
    (first, rest.expect("a split sum"))
}

/// Columns `..split` summed, and the rest's sums when `split < cols`.
fn sum_rows<R: CubeRuntime>(x: CubeTensor<R>, split: usize) -> (CubeTensor<R>, Option<CubeTensor<R>>) {
    let [rows, cols] = x.shape().dims::<2>();
    assert!(cols > 0, "column sum: no columns");
    let mut x = into_contiguous(x);
    let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
    let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
    let plan = passes(rows);
    let last = plan.len() - 1;
    let mut rest = None;
    for (pass, (rows, chunk)) in plan.into_iter().enumerate() {
        let chunks = rows.div_ceil(chunk);
        assert!(chunks <= 65_535, "column sum: {rows} rows exceed the grid's y limit");
        // Dense outputs: the kernel indexes them row-major. Only the last pass splits.
        let split = if pass == last { split } else { cols };
        let out = empty(Shape::new([chunks, split]));
        let second = if split < cols { empty(Shape::new([cols - split])) } else { out.clone() };
        crate::launch!(column_sum_kernel::<R>(
            &client,
            CubeCount::Static(cols.div_ceil(32) as u32, chunks as u32, 1),
            CubeDim::new_2d(32, ROW_LANES as u32),
            x.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            second.clone().into_tensor_arg(),
            rows as u32,
            cols as u32,
            chunk as u32,
            split as u32,
            dtype.into(),
        ));
        x = out;
        rest = Some(second);
    }
    (reshape(x, Shape::new([split])), rest.filter(|_| split < cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_end_in_one_chunk_and_cover_every_row() {
        assert_eq!(passes(64), vec![(64, 64)]);
        assert_eq!(passes(ONE_PASS_ROWS), vec![(ONE_PASS_ROWS, ONE_PASS_ROWS)]);
        assert_eq!(passes(0), vec![(1, 1)]);
        // GPT-2 e256's ∂bias: 64 x 280 rows, then 140 partial sums.
        assert_eq!(passes(17_920), vec![(17_920, CHUNK_ROWS), (140, 140)]);
        for rows in [257, 1000, 33_000, 5_000_000] {
            let plan = passes(rows);
            assert_eq!(plan[0].0, rows);
            for pair in plan.windows(2) {
                // Each pass's rows are the chunks of the pass before.
                assert_eq!(pair[1].0, pair[0].0.div_ceil(pair[0].1));
            }
            let (last_rows, last_chunk) = *plan.last().unwrap();
            assert_eq!(last_rows, last_chunk);
            assert!(last_rows <= ONE_PASS_ROWS);
        }
    }
}

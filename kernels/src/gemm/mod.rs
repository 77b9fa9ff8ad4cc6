//! Our own TF32 matmul for CUDA: a hand-written kernel (CUDA C++, `mma.sync` tensor-core
//! tiles fed by `cp.async` stages; [`source`]) launched through CubeCL like its own kernels.
//!
//! cubek 0.2's matmuls reach about a third of cuBLAS's speed on our shapes
//! (docs/performance.md, session 20), and the linear layers' matmuls are most of a GPT-2
//! step. It launches through CubeCL as our other CUDA C++ kernels do ([`crate::source_kernel`]);
//! the emulator (kernels/emu) runs the same source on the CPU, with its own `mma.sync` and
//! `cp.async`, so CI checks what it computes.
//!
//! Operands: `A [batches, m, k] @ B [batches, k, n]`, each with either of its two inner
//! dimensions contiguous (a transposed view is read in place), f32 read as TF32 (rounded to
//! nearest), f32 accumulators and output. A K too long for the tiles to fill the GPU is split
//! over several cubes whose partial products are then summed ([`crate::column_sum`]).

pub mod source;

use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use crate::source_kernel::{compiles_cuda, CudaSource};

/// The tiling the linear layers' matmuls take when they run on this kernel.
pub const DEFAULT: &str = "gemm-128x128-w2x4-s3";

/// A cube's tile of C (`bm x bn`), its warps (`wm` along m, `wn` along n) and the stages of
/// K in flight. Named `gemm-<bm>x<bn>-w<wm>x<wn>-s<stages>` ([`Tiling::GRAMMAR`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tiling {
    pub bm: u32,
    pub bn: u32,
    pub wm: u32,
    pub wn: u32,
    pub stages: u32,
}

/// Which of each operand's inner dimensions is contiguous in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// A's k (rows of A contiguous), else its m (a transposed view, as `xᵀ` in ∂w).
    pub a_k_contiguous: bool,
    /// B's n (rows of B contiguous), else its k (a transposed view, as `wᵀ` in ∂x).
    pub b_n_contiguous: bool,
}

impl Tiling {
    /// How a tiling is named.
    pub const GRAMMAR: &'static str = "gemm-<bm>x<bn>-w<wm>x<wn>-s<stages>";

    /// The tiling named `name` (see [`Tiling::GRAMMAR`]) if the kernel can take it: warp
    /// tiles whole multiples of the 16 x 8 MMA tile, at most 16 warps, 2 to 6 stages, and
    /// its shared memory within a cube's 227 KB.
    pub fn parse(name: &str) -> Option<Tiling> {
        let mut parts = name.strip_prefix("gemm-")?.split('-');
        let pair = |part: Option<&str>, prefix: &str| -> Option<(u32, u32)> {
            let (a, b) = part?.strip_prefix(prefix)?.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let (bm, bn) = pair(parts.next(), "")?;
        let (wm, wn) = pair(parts.next(), "w")?;
        let stages = parts.next()?.strip_prefix('s')?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        let tiling = Tiling { bm, bn, wm, wn, stages };
        tiling.is_valid().then_some(tiling)
    }

    fn is_valid(self) -> bool {
        let Tiling { bm, bn, wm, wn, stages } = self;
        let whole = wm > 0 && wn > 0 && bm.is_multiple_of(16 * wm) && bn.is_multiple_of(8 * wn) && bm > 0 && bn > 0;
        let fits = || {
            let most = [true, false].into_iter().flat_map(|a| [true, false].map(|b| Layout { a_k_contiguous: a, b_n_contiguous: b }));
            most.map(|l| source::shared_bytes(self, l)).max().unwrap_or(0) <= 232_448
        };
        // A stage's rows split evenly over the cube's copies, in each operand layout.
        // (After `whole`, so there is at least one warp.)
        let threads = wm * wn * 32;
        let copies_divide = || {
            [(bm, source::BK), (source::BK, bm), (source::BK, bn), (bn, source::BK)]
                .iter()
                .all(|&(outer, inner)| inner % 4 == 0 && threads % (inner / 4) == 0 && threads / (inner / 4) <= outer && outer % (threads / (inner / 4)) == 0)
        };
        whole && wm * wn <= 16 && (2..=6).contains(&stages) && bm <= 256 && bn <= 256 && copies_divide() && fits()
    }

    fn threads(self) -> u32 {
        self.wm * self.wn * 32
    }

    pub fn name(self) -> String {
        let Tiling { bm, bn, wm, wn, stages } = self;
        format!("gemm-{bm}x{bn}-w{wm}x{wn}-s{stages}")
    }
}

/// One compiled form of the kernel: its tiling, its operands' layout, and whether it adds a
/// bias to C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Variant {
    tiling: Tiling,
    layout: Layout,
    bias: bool,
}

impl CudaSource for Variant {
    const NAME: &'static str = "icl_lab_kernels::gemm";

    fn entry_point(&self) -> String {
        source::entry_point(self.tiling, self.layout, self.bias)
    }

    fn cuda(&self) -> String {
        source::cuda(self.tiling, self.layout, self.bias)
    }

    fn threads(&self) -> u32 {
        self.tiling.threads()
    }

    fn shared_floats(&self) -> usize {
        source::shared_bytes(self.tiling, self.layout) as usize / 4
    }
}

/// A bias added to every row of a product `[batches, m, n]` in the kernel's epilogue:
/// column `c` of batch `b` gets `values[b * batch_stride + c * column_stride]` (a stride of
/// 0 broadcasts: one bias for all batches, or one value for all columns).
pub struct Bias<R: CubeRuntime> {
    /// f32, contiguous.
    pub values: CubeTensor<R>,
    pub batch_stride: usize,
    pub column_stride: usize,
}

impl<R: CubeRuntime> Clone for Bias<R> {
    fn clone(&self) -> Self {
        Bias { values: self.values.clone(), batch_stride: self.batch_stride, column_stride: self.column_stride }
    }
}

impl<R: CubeRuntime> Bias<R> {
    /// The shape of `values` that broadcasts against a rank-`rank` product `[.., m, n]` of
    /// `batches` (what adding it as a tensor op takes instead).
    pub fn broadcast_shape(&self, rank: usize, batches: usize, n: usize) -> Shape {
        let (b, c) = (if self.batch_stride == 0 { 1 } else { batches }, if self.column_stride == 0 { 1 } else { n });
        if rank == 3 { Shape::new([b, 1, c]) } else { Shape::new([1, c]) }
    }

    fn check(&self, batches: usize, n: usize) -> Result<(), String> {
        let len = self.values.meta.shape().num_elements();
        if self.values.dtype != DType::F32 {
            return Err(format!("bias: {:?}, the kernel takes f32", self.values.dtype));
        }
        if !self.values.is_contiguous() {
            return Err(format!("bias: strides {:?}, the kernel takes it contiguous", self.values.meta.strides()));
        }
        let last = (batches - 1) * self.batch_stride + (n - 1) * self.column_stride;
        if last >= len {
            return Err(format!("bias: {len} values, but batch {} column {} reads index {last}", batches - 1, n - 1));
        }
        Ok(())
    }
}

/// One operand as the kernel reads it: `[batches, rows, cols]` by strides, the contiguous
/// dimension found.
struct Operand {
    batches: usize,
    rows: usize,
    cols: usize,
    /// Whether `cols` is the contiguous dimension (else `rows` is).
    cols_contiguous: bool,
    /// Stride of the other dimension.
    ld: usize,
    batch_stride: usize,
}

impl Operand {
    fn of<R: CubeRuntime>(t: &CubeTensor<R>, side: &str) -> Result<Operand, String> {
        let (shape, strides) = (t.meta.shape().to_vec(), t.meta.strides().to_vec());
        let rank = shape.len();
        if !(2..=3).contains(&rank) {
            return Err(format!("{side}: rank {rank}, the kernel takes 2 or 3"));
        }
        if t.dtype != DType::F32 {
            return Err(format!("{side}: {:?}, the kernel takes f32", t.dtype));
        }
        let (rows, cols) = (shape[rank - 2], shape[rank - 1]);
        let (batches, batch_stride) = if rank == 3 { (shape[0], if shape[0] == 1 { 0 } else { strides[0] }) } else { (1, 0) };
        let (cols_contiguous, ld, extent) = if strides[rank - 1] == 1 || cols == 1 {
            (true, strides[rank - 2], cols)
        } else if strides[rank - 2] == 1 || rows == 1 {
            (false, strides[rank - 1], rows)
        } else {
            return Err(format!("{side}: strides {strides:?}, neither inner dimension contiguous"));
        };
        let offset = t.handle.offset_start.unwrap_or(0);
        // Every copy moves 16 aligned bytes.
        if !(extent.is_multiple_of(4) && ld.is_multiple_of(4) && batch_stride.is_multiple_of(4) && offset.is_multiple_of(16)) {
            return Err(format!("{side}: shape {shape:?}, strides {strides:?}, offset {offset}: 16-byte loads need the contiguous extent, the strides and the start at multiples of 4 floats"));
        }
        Ok(Operand { batches, rows, cols, cols_contiguous, ld, batch_stride })
    }
}

/// `lhs @ rhs` on [`Tiling`]: `[b, m, k] @ [b, k, n]` (or rank 2; a batch of 1 broadcasts),
/// each operand with either inner dimension contiguous. An error names what the kernel
/// cannot take (another runtime than CUDA's, a dtype, misaligned or strided operands).
pub fn matmul<R: CubeRuntime>(tiling: Tiling, lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> Result<CubeTensor<R>, String> {
    matmul_bias(tiling, lhs, rhs, None)
}

/// [`matmul`] plus `bias` added to each row of the product in the same kernel (the linear
/// layer's `x w + b` without a pass of its own over `y`).
pub fn matmul_bias<R: CubeRuntime>(tiling: Tiling, lhs: CubeTensor<R>, rhs: CubeTensor<R>, bias: Option<Bias<R>>) -> Result<CubeTensor<R>, String> {
    if !compiles_cuda::<R>() {
        return Err("our matmul kernel is CUDA C++: this runtime compiles something else".into());
    }
    let (a, b) = (Operand::of(&lhs, "lhs")?, Operand::of(&rhs, "rhs")?);
    if a.cols != b.rows {
        return Err(format!("lhs's {} columns do not meet rhs's {} rows", a.cols, b.rows));
    }
    let batches = a.batches.max(b.batches);
    if (a.batches != batches && a.batches != 1) || (b.batches != batches && b.batches != 1) {
        return Err(format!("batches {} and {} do not broadcast", a.batches, b.batches));
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let rank = lhs.meta.shape().len().max(rhs.meta.shape().len());
    let out_shape = if rank == 3 { Shape::new([batches, m, n]) } else { Shape::new([m, n]) };
    let (client, device) = (lhs.client.clone(), lhs.device.clone());
    let empty = |shape: Shape| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, DType::F32);
    if m == 0 || n == 0 {
        return Ok(empty(out_shape));
    }
    if let Some(bias) = &bias {
        bias.check(batches, n)?;
    }
    if k == 0 && bias.is_none() {
        // An empty sum: the product is zeros.
        return Ok(burn_cubecl::ops::numeric::zeros_client::<R>(client, device, out_shape, DType::F32));
    }
    let fits_u32 = |v: usize| u32::try_from(v).map_err(|_| format!("{v} is past the kernel's 32-bit sizes"));
    // A batch of 1 against a batch of many: the single one's rows fold into m when they are
    // one run of memory (x [b, t, in] @ w: b·t rows), so its cubes are not cut per batch.
    let (mut m_run, mut batch_count, mut a_batch) = (m, batches, a.batch_stride);
    let bias_per_batch = bias.as_ref().is_some_and(|b| b.batch_stride != 0);
    if b.batches == 1 && a.batches > 1 && a.cols_contiguous && a.batch_stride == m * a.ld && !bias_per_batch {
        (m_run, batch_count, a_batch) = (m * batches, 1, 0);
    }
    let layout = Layout { a_k_contiguous: a.cols_contiguous, b_n_contiguous: b.cols_contiguous };
    let sms = client.properties().hardware.num_streaming_multiprocessors.unwrap_or(132) as usize;
    let tiles = m_run.div_ceil(tiling.bm as usize) * n.div_ceil(tiling.bn as usize) * batch_count;
    let splits = split_k(tiles, k, sms);
    // (An empty K with a bias: one split of no tiles writes the bias alone.)
    let k_chunk = (k.div_ceil(splits).div_ceil(source::BK as usize) * source::BK as usize).max(source::BK as usize);
    let splits = k.div_ceil(k_chunk).max(1);
    let grid_y = m_run.div_ceil(tiling.bm as usize);
    if grid_y > 65_535 || batch_count * splits > 65_535 {
        return Err(format!("{m_run} rows over {batch_count} batches are past the grid's limits"));
    }
    let (bias_batch, bias_col) = bias.as_ref().map_or((0, 0), |b| (b.batch_stride, b.column_stride));
    let scalars = [m_run, n, k, batch_count, k_chunk, a.ld, b.ld, a_batch, if b.batches == 1 { 0 } else { b.batch_stride }, bias_batch, bias_col];
    let scalars: Vec<u32> = scalars.into_iter().map(fits_u32).collect::<Result<_, _>>()?;
    // Split K: the parts' products side by side, summed afterwards.
    let out = empty(if splits == 1 { out_shape.clone() } else { Shape::new([splits, batch_count * m_run * n]) });
    let count = CubeCount::Static(n.div_ceil(tiling.bn as usize) as u32, grid_y as u32, (batch_count * splits) as u32);
    let mut buffers = vec![lhs.handle.clone().binding(), rhs.handle.clone().binding(), out.handle.clone().binding()];
    buffers.extend(bias.as_ref().map(|b| b.values.handle.clone().binding()));
    let variant = Variant { tiling, layout, bias: bias.is_some() };
    crate::source_kernel::launch(&client, variant, count, buffers, &scalars);
    if splits == 1 {
        return Ok(out);
    }
    let summed = crate::column_sum::column_sum(out);
    Ok(burn_cubecl::ops::reshape(summed, out_shape))
}

/// Parts to split K into so that `tiles` cubes become about two waves on `sms`
/// multiprocessors, each part still at least 8 stages deep (1: no split).
pub fn split_k(tiles: usize, k: usize, sms: usize) -> usize {
    let wanted = (2 * sms).div_ceil(tiles.max(1));
    let most = k / (8 * source::BK as usize);
    wanted.min(most).max(1)
}

#[cfg(test)]
mod tests {
    use super::{split_k, Layout, Tiling};

    #[test]
    fn tilings_parse_from_their_names_and_refuse_what_the_kernel_cannot_take() {
        let t = Tiling::parse("gemm-128x64-w2x2-s3").expect("a tiling");
        assert_eq!(t, Tiling { bm: 128, bn: 64, wm: 2, wn: 2, stages: 3 });
        assert_eq!(Tiling::parse(&t.name()), Some(t));
        for bad in [
            "gemm-128x64-w2x2",
            "gemm-128x64-w2x2-s3-x",
            "gemm-100x64-w2x2-s3",
            "gemm-128x64-w2x3-s3",
            "gemm-128x64-w2x2-s1",
            "gemm-256x256-w2x2-s6",
            "gemm-128x64-w0x2-s3",
            "tile-tma-m4x2-n4-k4-s",
        ] {
            assert_eq!(Tiling::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn k_splits_only_when_the_tiles_leave_the_gpu_idle() {
        // GPT-2 e256's ∂w of its MLP: 256 x 1024 outputs in 128 x 64 tiles over 17,920 rows.
        assert_eq!(split_k(2 * 16, 17_920, 132), 9);
        assert_eq!(split_k(560, 256, 132), 1);
        // Too short to split however few the tiles.
        assert_eq!(split_k(1, 255, 132), 1);
    }

    #[test]
    fn shared_memory_pads_inner_rows_off_the_banks() {
        let t = Tiling { bm: 128, bn: 64, wm: 2, wn: 2, stages: 3 };
        let both = Layout { a_k_contiguous: true, b_n_contiguous: true };
        assert_eq!(super::source::shared_bytes(t, both), 4 * 3 * (128 * 36 + 32 * 68));
        for bias in [false, true] {
            let source = super::source::cuda(t, both, bias);
            assert!(source.contains(&super::source::entry_point(t, both, bias)));
            // Only the biased form reads a bias.
            assert_eq!(source.contains("buffer_3"), bias);
        }
    }
}

//! A matmul by a chosen strategy: one of `cubek-matmul`'s by name, a cubek tiling of one's own
//! ([`Tiles`]), or our own kernel ([`crate::gemm`]). The linear layers take theirs from here
//! ([`crate::linear::Strategies`]); `icl-lab bench matmul` times them all on our shapes.
//!
//! Without CubeCL autotune burn runs every f32 matmul with one strategy (a simple cyclic CMMA
//! kernel, TF32 on tensor cores); autotune would try the others but costs minutes per shape.

use burn_cubecl::kernel::matmul::init_matmul_output;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubek::matmul::components::tile::TileMatmulKind;
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
use cubek::matmul::launch::{launch_ref, Strategy};
use cubek::matmul::routines::double_buffering::DoubleBufferingArgs;
use cubek::matmul::routines::double_unit::DoubleUnitSelectionArgs;
use cubek::matmul::routines::ordered_double_buffering::OrderedSelectionArgs;
use cubek::matmul::routines::simple::SimpleArgs;
use cubek::matmul::routines::simple_unit::SimpleUnitSelectionArgs;
use cubek::matmul::routines::{BlueprintStrategy, TileSizeSelection};
use cubek::std::InputBinding;

/// burn's CubeCL backend on CUDA without fusion, as `burn_cuda::Cuda` wraps it.
#[cfg(feature = "cuda")]
pub type CudaCube = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;

/// Strategy names, burn's default (`auto`) first.
pub const STRATEGIES: [&str; 14] = [
    "auto",
    "simple-cmma",
    "simple-mma",
    "simple-rows-cmma",
    "simple-rows-mma",
    "double-cmma",
    "double-mma",
    "double-spec-cmma",
    "ordered-cmma",
    "specialized-cmma",
    "simple-tma-cmma",
    "specialized-tma-cmma",
    "unit",
    "double-unit",
];

/// How a [`Tiles`] matmul moves its stages into shared memory: cubek's routines that take a
/// forced tiling blueprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    /// One stage at a time through TMA (`tma`).
    Tma,
    /// One stage at a time, loaded by the cube's threads (`cyc`).
    Cyclic,
    /// Two stages in flight through TMA: the next stage loads while this one computes (`dtma`).
    DoubleTma,
    /// Two stages in flight, loaded by the cube's threads (`dcyc`).
    DoubleCyclic,
    /// Warps specialised to loading (TMA) beside the computing ones (`stma`).
    SpecializedTma,
}

impl Loader {
    const NAMES: [(&'static str, Loader); 5] =
        [("tma", Loader::Tma), ("cyc", Loader::Cyclic), ("dtma", Loader::DoubleTma), ("dcyc", Loader::DoubleCyclic), ("stma", Loader::SpecializedTma)];

}

/// A plane-tiling of one's own, past the few cubek infers (named as [`Tiles::GRAMMAR`]
/// says, loaders as in [`Loader`]): TF32 tensor-core tiles of 16x16x8 (`wmma`, or `mma.sync` with `-mma`),
/// `planes` warps along m each holding `rows` x `n` tiles of the output, `k` tiles deep a
/// stage, single or double partition buffering, shared memory swizzled or not. cubek's
/// inference for f32 on TMA swizzles shared memory, which caps a stage at 32 x 32 x 32
/// (128-byte rows); these take larger stages (the linear layers' forward and ∂x ran on one in
/// session 20, before [`crate::gemm`]). `bench matmul` times them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub loader: Loader,
    pub planes: u32,
    pub rows: u32,
    pub n: u32,
    pub k: u32,
    pub double: bool,
    pub swizzle: bool,
    pub mma: bool,
}

impl Tiles {
    /// How a tiling is named.
    pub const GRAMMAR: &'static str = "tile-<tma|cyc|dtma|dcyc|stma>-m<planes>x<rows>-n<tiles>-k<tiles>-<s|d>[-swz][-mma]";

    /// The tiling named `name` (see [`Tiles::GRAMMAR`]); `None` for anything else.
    pub fn parse(name: &str) -> Option<Tiles> {
        let mut parts = name.strip_prefix("tile-")?.split('-');
        let loader_name = parts.next()?;
        let loader = Loader::NAMES.iter().find(|(n, _)| *n == loader_name)?.1;
        let (planes, rows) = parts.next()?.strip_prefix('m')?.split_once('x')?;
        let n = parts.next()?.strip_prefix('n')?.parse().ok()?;
        let k = parts.next()?.strip_prefix('k')?.parse().ok()?;
        let double = match parts.next()? {
            "s" => false,
            "d" => true,
            _ => return None,
        };
        let (mut swizzle, mut mma) = (false, false);
        for flag in parts {
            match flag {
                "swz" if !swizzle && !mma => swizzle = true,
                "mma" if !mma => mma = true,
                _ => return None,
            }
        }
        let tiles = Tiles { loader, planes: planes.parse().ok()?, rows: rows.parse().ok()?, n, k, double, swizzle, mma };
        let sizes = [tiles.planes, tiles.rows, tiles.n, tiles.k];
        sizes.iter().all(|&v| (1..=32).contains(&v)).then_some(tiles)
    }
}

/// `lhs @ rhs` on [`Tiles`]: f32 operands read as TF32 (as cubek's inferred tensor-core
/// strategies round them), f32 accumulators and output.
pub fn matmul_tiled<R: CubeRuntime>(tiles: Tiles, lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> Result<CubeTensor<R>, String> {
    use cubecl::ir::{ElemType, FloatKind, StorageType};
    use cubek::matmul::components::stage::PartitionBuffering;
    use cubek::matmul::definition::{MatmulProblem, TilingBlueprint, TilingScheme};
    use cubek::std::cube_count::{CubeCountStrategy, GlobalOrder, HypercubeBlueprint, SmAllocation};
    use cubek::matmul::routines::select_swizzle;
    use cubek::std::{MatrixLayout, PartitionSize, StageSize, SwizzleModes, TileSize};
    let err = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let dtype = lhs.dtype;
    let out = init_matmul_output(&lhs, &rhs, dtype);
    let client = out.client.clone();
    let tf32 = StorageType::Scalar(ElemType::Float(FloatKind::TF32));
    let globals = MatmulGlobalElems { lhs: tf32, rhs: tf32, out: dtype.into() };
    let (lhs, rhs) = (InputBinding::new(lhs.binding(), tf32), InputBinding::new(rhs.binding(), tf32));
    let out_binding = out.clone().binding();
    let address = lhs.required_address_type().max(rhs.required_address_type()).max(out_binding.required_address_type(4));
    let problem = MatmulProblem::from_shapes_and_strides(
        lhs.shape().clone(),
        rhs.shape().clone(),
        out_binding.shape.clone(),
        lhs.data().strides.clone(),
        rhs.data().strides.clone(),
        out_binding.strides.clone(),
        globals.clone(),
        address,
        None,
        None,
    )
    .map_err(|e| err(&e))?;
    let scheme = TilingScheme::builder()
        .with_tile_size(TileSize::new(16, 16, 8))
        .with_partition_size(PartitionSize::new(tiles.rows, tiles.n, tiles.k))
        .with_stage_size(StageSize::new(tiles.planes, 1, 1))
        .build()
        .map_err(|e| err(&e))?;
    let cube_count = match client.properties().hardware.num_streaming_multiprocessors {
        Some(num_sms) => CubeCountStrategy::Sm { num_sms, sm_usage: SmAllocation::Exact, cubes_first: true },
        None => CubeCountStrategy::FromProblem,
    };
    let hypercube = HypercubeBlueprint::builder().global_order(GlobalOrder::SwizzleRow(4)).cube_count_strategy(cube_count).build();
    let kind = if tiles.mma { TileMatmulKind::Mma } else { TileMatmulKind::Cmma };
    let mut builder = TilingBlueprint::builder(kind, scheme, 32, &problem)
        .partition_buffering(if tiles.double { PartitionBuffering::Double } else { PartitionBuffering::Single })
        .hypercube_blueprint(hypercube);
    if tiles.swizzle {
        // As cubek's inference does: by the bytes of a stage row along the contiguous dimension.
        let lhs_dim = match problem.lhs_layout {
            MatrixLayout::RowMajor => scheme.elements_per_stage_along_k(),
            MatrixLayout::ColMajor => scheme.elements_per_stage_along_m(),
        };
        let rhs_dim = match problem.rhs_layout {
            MatrixLayout::RowMajor => scheme.elements_per_stage_along_n(),
            MatrixLayout::ColMajor => scheme.elements_per_stage_along_k(),
        };
        let lhs_mode = select_swizzle(lhs_dim as usize, tf32, 1);
        let rhs_mode = select_swizzle(rhs_dim as usize, tf32, 1);
        builder = builder.shared_swizzle(SwizzleModes { lhs: lhs_mode, rhs: rhs_mode, ..Default::default() });
    }
    if tiles.loader == Loader::SpecializedTma {
        use cubek::matmul::components::global::{InputLoadFlow, LoadFlows};
        builder = builder.load_specialization_config(LoadFlows { lhs: InputLoadFlow::LoadOnly, rhs: InputLoadFlow::LoadOnly });
    }
    let blueprint = builder.build();
    // Each routine has its own strategy type over the same blueprint.
    macro_rules! forced {
        () => {
            BlueprintStrategy::Forced(blueprint.clone())
        };
    }
    let strategy = match (tiles.loader, tiles.mma) {
        (Loader::Tma, false) => Strategy::SimpleTmaCmma(forced!()),
        (Loader::Tma, true) => Strategy::SimpleTmaMma(forced!()),
        (Loader::Cyclic, false) => Strategy::SimpleCyclicCmma(forced!()),
        (Loader::Cyclic, true) => Strategy::SimpleCyclicMma(forced!()),
        (Loader::DoubleTma, false) => Strategy::DoubleTmaCmma(forced!()),
        (Loader::DoubleTma, true) => Strategy::DoubleTmaMma(forced!()),
        (Loader::DoubleCyclic, false) => Strategy::DoubleCyclicCmma(forced!()),
        (Loader::DoubleCyclic, true) => Strategy::DoubleCyclicMma(forced!()),
        (Loader::SpecializedTma, false) => Strategy::SpecializedTmaCmma(forced!()),
        (Loader::SpecializedTma, true) => Strategy::SpecializedTmaMma(forced!()),
    };
    let mut dtypes = MatmulElems::from_globals(&globals);
    launch_ref(&strategy, &client, lhs, rhs, out_binding, &mut dtypes).map_err(|e| err(&e))?;
    Ok(out)
}

/// A strategy by name, [`Tiles`] of one's own, or our own kernel ([`crate::gemm`]).
pub enum Choice {
    Strategy(Strategy),
    Tiles(Tiles),
    Gemm(crate::gemm::Tiling),
}

/// `lhs @ rhs` by `choice` ([`matmul_with`] or [`matmul_tiled`]).
pub fn matmul_by<R: CubeRuntime>(choice: &Choice, lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> Result<CubeTensor<R>, String> {
    match choice {
        Choice::Strategy(s) => matmul_with(s, lhs, rhs),
        Choice::Tiles(t) => matmul_tiled(*t, lhs, rhs),
        Choice::Gemm(t) => crate::gemm::matmul(*t, lhs, rhs),
    }
}

/// [`strategy`], [`Tiles::parse`] or [`crate::gemm::Tiling::parse`] of `name`.
pub fn choice(name: &str) -> Option<Choice> {
    strategy(name)
        .map(Choice::Strategy)
        .or_else(|| Tiles::parse(name).map(Choice::Tiles))
        .or_else(|| crate::gemm::Tiling::parse(name).map(Choice::Gemm))
}

/// The strategy called `name` (one of [`STRATEGIES`]).
pub fn strategy(name: &str) -> Option<Strategy> {
    use BlueprintStrategy::Inferred;
    use TileMatmulKind::{Cmma, Mma};
    let simple = |tile_matmul, multi_rows| Inferred(SimpleArgs { tile_matmul, multi_rows });
    let double = |tile_matmul, specialized| Inferred(DoubleBufferingArgs { tile_matmul, specialized });
    Some(match name {
        "auto" => Strategy::Auto,
        "simple-cmma" => Strategy::SimpleCyclicCmma(simple(Cmma, false)),
        "simple-mma" => Strategy::SimpleCyclicMma(simple(Mma, false)),
        "simple-rows-cmma" => Strategy::SimpleCyclicCmma(simple(Cmma, true)),
        "simple-rows-mma" => Strategy::SimpleCyclicMma(simple(Mma, true)),
        "double-cmma" => Strategy::DoubleCyclicCmma(double(Cmma, false)),
        "double-mma" => Strategy::DoubleCyclicMma(double(Mma, false)),
        "double-spec-cmma" => Strategy::DoubleCyclicCmma(double(Cmma, true)),
        "ordered-cmma" => Strategy::OrderedDoubleCmma(Inferred(OrderedSelectionArgs {
            tile_matmul: Cmma,
            partition_k: Some(2),
            row_count: Some(8),
            rows_per_plane: Some(2),
        })),
        "specialized-cmma" => Strategy::SpecializedCyclicCmma(Inferred(().into())),
        "simple-tma-cmma" => Strategy::SimpleTmaCmma(Inferred(SimpleArgs { tile_matmul: Cmma, multi_rows: false })),
        "specialized-tma-cmma" => Strategy::SpecializedTmaCmma(Inferred(().into())),
        "unit" => Strategy::SimpleUnit(Inferred(SimpleUnitSelectionArgs { tile_size: TileSizeSelection::MaxTileSize })),
        "double-unit" => Strategy::DoubleUnit(Inferred(DoubleUnitSelectionArgs { tile_size: TileSizeSelection::MaxTileSize })),
        _ => return None,
    })
}

/// `lhs @ rhs` (batch dimensions broadcast, either side may be a transposed view) with
/// `strategy`; an error when that strategy cannot run these operands here.
pub fn matmul_with<R: CubeRuntime>(strategy: &Strategy, lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> Result<CubeTensor<R>, String> {
    let dtype = lhs.dtype;
    let out = init_matmul_output(&lhs, &rhs, dtype);
    let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems { lhs: dtype.into(), rhs: dtype.into(), out: dtype.into() });
    let client = out.client.clone();
    let (lhs, rhs) = (InputBinding::new(lhs.binding(), dtype.into()), InputBinding::new(rhs.binding(), dtype.into()));
    launch_ref(strategy, &client, lhs, rhs, out.clone().binding(), &mut dtypes).map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

/// The matmuls a linear layer `y = x w` runs in one training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `x [b, t, in] @ w [1, in, out]`.
    Forward,
    /// `∂y [b, t, out] @ wᵀ [1, out, in]` (a transposed view of w).
    InputGrad,
    /// `xᵀ [b, in, t] @ ∂y [b, t, out]`, then summed over b: what burn's autodiff runs.
    WeightGradBatched,
    /// `xᵀ [in, b·t] @ ∂y [b·t, out]`: one matmul over the flattened tokens.
    WeightGradFlat,
}

impl Form {
    pub const ALL: [Form; 4] = [Form::Forward, Form::InputGrad, Form::WeightGradBatched, Form::WeightGradFlat];

    pub fn name(self) -> &'static str {
        match self {
            Form::Forward => "forward",
            Form::InputGrad => "dx",
            Form::WeightGradBatched => "dw-batched",
            Form::WeightGradFlat => "dw-flat",
        }
    }
}

/// Runs `form` on `x [b, t, in]`, `w [in, out]` and `dy [b, t, out]` with `strategy`.
pub fn run_form<R: CubeRuntime>(
    choice: &Choice,
    form: Form,
    x: &CubeTensor<R>,
    w: &CubeTensor<R>,
    dy: &CubeTensor<R>,
) -> Result<CubeTensor<R>, String> {
    use burn::tensor::ops::FloatTensorOps;
    use burn::tensor::{Shape, TensorMetadata};
    type B<R> = burn_cubecl::CubeBackend<R, f32, i32, u8>;
    let [b, t, d_in] = x.shape().dims();
    let [_, d_out] = w.shape().dims();
    let w3 = || B::<R>::float_reshape(w.clone(), Shape::new([1, d_in, d_out]));
    let run = |lhs, rhs| matmul_by(choice, lhs, rhs);
    match form {
        Form::Forward => run(x.clone(), w3()),
        Form::InputGrad => run(dy.clone(), B::<R>::float_swap_dims(w3(), 1, 2)),
        Form::WeightGradBatched => {
            let per_batch = run(B::<R>::float_swap_dims(x.clone(), 1, 2), dy.clone())?;
            Ok(B::<R>::float_reshape(B::<R>::float_sum_dim(per_batch, 0), Shape::new([d_in, d_out])))
        }
        Form::WeightGradFlat => {
            let x2 = B::<R>::float_reshape(x.clone(), Shape::new([b * t, d_in]));
            let dy2 = B::<R>::float_reshape(dy.clone(), Shape::new([b * t, d_out]));
            run(B::<R>::float_swap_dims(x2, 0, 1), dy2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tiles;

    #[test]
    fn tilings_parse_from_their_names_and_refuse_malformed_ones() {
        use super::Loader;
        let t = Tiles::parse("tile-tma-m4x2-n8-k4-d-swz").expect("a tiling");
        assert_eq!(t, Tiles { loader: Loader::Tma, planes: 4, rows: 2, n: 8, k: 4, double: true, swizzle: true, mma: false });
        assert_eq!(Tiles::parse("tile-cyc-m8x1-n4-k2-s"), Some(Tiles { loader: Loader::Cyclic, planes: 8, rows: 1, n: 4, k: 2, double: false, swizzle: false, mma: false }));
        let loaders = |name: &str| Tiles::parse(name).map(|t| (t.loader, t.swizzle, t.mma));
        assert_eq!(loaders("tile-dtma-m4x2-n4-k4-s-mma"), Some((Loader::DoubleTma, false, true)));
        assert_eq!(loaders("tile-stma-m4x2-n4-k4-s-swz-mma"), Some((Loader::SpecializedTma, true, true)));
        assert_eq!(loaders("tile-dcyc-m4x2-n4-k4-d"), Some((Loader::DoubleCyclic, false, false)));
        for bad in [
            "tile-tma-m4-n8-k4-s",
            "tile-gpu-m4x2-n8-k4-s",
            "tile-tma-m4x2-n8-k4",
            "tile-tma-m4x2-n8-k4-s-x",
            "tile-tma-m4x2-n8-k4-s-mma-swz",
            "tile-tma-m4x2-n8-k4-s-mma-mma",
            "tile-tma-m0x2-n8-k4-s",
            "tile-tma-m4x2-n64-k4-s",
            "auto",
        ] {
            assert_eq!(Tiles::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_grammar_names_every_loader() {
        let loaders = Tiles::GRAMMAR.strip_prefix("tile-<").and_then(|g| g.split_once('>')).expect("tile-<loaders>...").0;
        let named: Vec<&str> = loaders.split('|').collect();
        let known: Vec<&str> = super::Loader::NAMES.iter().map(|(name, _)| *name).collect();
        assert_eq!(named, known);
    }
}

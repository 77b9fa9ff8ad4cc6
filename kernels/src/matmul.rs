//! burn's matmul with a chosen `cubek-matmul` strategy, for `icl-lab bench matmul`.
//!
//! Without CubeCL autotune burn runs every f32 matmul with one strategy (a simple cyclic CMMA
//! kernel, TF32 on tensor cores); autotune would try the others but costs minutes per shape.
//! This names each strategy the autotune list holds, so the bench can time them on our shapes.

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
    strategy: &Strategy,
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
    match form {
        Form::Forward => matmul_with(strategy, x.clone(), w3()),
        Form::InputGrad => matmul_with(strategy, dy.clone(), B::<R>::float_swap_dims(w3(), 1, 2)),
        Form::WeightGradBatched => {
            let per_batch = matmul_with(strategy, B::<R>::float_swap_dims(x.clone(), 1, 2), dy.clone())?;
            Ok(B::<R>::float_reshape(B::<R>::float_sum_dim(per_batch, 0), Shape::new([d_in, d_out])))
        }
        Form::WeightGradFlat => {
            let x2 = B::<R>::float_reshape(x.clone(), Shape::new([b * t, d_in]));
            let dy2 = B::<R>::float_reshape(dy.clone(), Shape::new([b * t, d_out]));
            matmul_with(strategy, B::<R>::float_swap_dims(x2, 0, 1), dy2)
        }
    }
}

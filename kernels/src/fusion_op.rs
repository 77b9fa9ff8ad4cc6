//! Registering a kernel as a custom operation of burn-fusion's stream
//! (`OperationIr::Custom`) with its inputs and outputs declared, so the tensors before and
//! after it still fuse; when the stream executes it, the operation runs the inner backend's
//! kernel on the resolved tensors.

use burn::tensor::{DType, Shape};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{FusionBackend, FusionTensor};
use burn_ir::{CustomOpIr, OperationIr, TensorIr};

/// Registers a custom op with these inputs and outputs of the given shapes.
pub(crate) fn register<B, O>(name: &'static str, inputs: Vec<FusionTensor<B::FusionRuntime>>, outputs: &[Shape], dtype: DType, op: impl FnOnce(CustomOpIr) -> O) -> Vec<FusionTensor<B::FusionRuntime>>
where
    B: FusionBackend,
    O: Operation<B::FusionRuntime> + 'static,
{
    let client = inputs[0].client.clone();
    let streams = OperationStreams::with_inputs(&inputs);
    let outputs: Vec<TensorIr> = outputs.iter().map(|s| TensorIr::uninit(client.create_empty_handle(), s.clone(), dtype)).collect();
    let inputs: Vec<TensorIr> = inputs.into_iter().map(FusionTensor::into_ir).collect();
    let desc = CustomOpIr::new(name, &inputs, &outputs);
    client.register(streams, OperationIr::Custom(desc.clone()), op(desc))
}


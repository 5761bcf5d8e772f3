#pragma once
// Conversions between LibTorch tensors and kmidi::onnx's torch-free types, for
// model families emitting their weights and for the onnxruntime runner.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "onnx/Types.h"

namespace kmidi::onnx {

/// The DType of a LibTorch scalar type; throws UsageError for types ONNX
/// graphs of kmidi do not use (complex, bfloat16, quantized).
DType dtype_of(c10::ScalarType type);
/// The LibTorch scalar type of a DType.
c10::ScalarType scalar_type_of(DType dtype);

/// A copy of `tensor`'s values (any device, any strides) as row-major bytes.
/// Use for weights: `b.linear(x, to_tensor_data(fc->weight), to_tensor_data(fc->bias), "fc")`.
TensorData to_tensor_data(const at::Tensor& tensor);
/// A CPU tensor holding a copy of `data`.
at::Tensor to_tensor(const TensorData& data);

}  // namespace kmidi::onnx

#pragma once
// Private glue between kmidi::onnx's types and the ONNX protobuf messages.
// Included by kmidi_onnx's .cpp files only: it drags in protobuf.

#include <onnx/onnx_pb.h>

#include <string>

#include "onnx/Types.h"

namespace kmidi::onnx::detail {

/// The versions every kmidi graph declares (../shared/CONTRACTS.md).
constexpr int64_t kIrVersion = 8;
constexpr int64_t kOpsetVersion = 17;

/// TensorProto.DataType of a DType.
int32_t to_proto_dtype(DType dtype);
/// The DType of a TensorProto.DataType; throws DataError naming `where` for
/// types kmidi does not use (string, complex, bfloat16, ...).
DType from_proto_dtype(int32_t elem_type, const std::string& where);

/// An initializer or tensor attribute with raw little-endian data.
::onnx::TensorProto to_tensor_proto(const TensorData& data, const std::string& name, const std::string& doc = {});

}  // namespace kmidi::onnx::detail

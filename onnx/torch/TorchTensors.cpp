#include "onnx/torch/TorchTensors.h"

#include <ATen/ATen.h>

#include <cstring>

#include "core/Errors.h"

namespace kmidi::onnx {

DType dtype_of(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return DType::kFloat32;
    case c10::kHalf: return DType::kFloat16;
    case c10::kDouble: return DType::kFloat64;
    case c10::kLong: return DType::kInt64;
    case c10::kInt: return DType::kInt32;
    case c10::kShort: return DType::kInt16;
    case c10::kChar: return DType::kInt8;
    case c10::kByte: return DType::kUInt8;
    case c10::kBool: return DType::kBool;
    default: break;
  }
  throw UsageError(std::string("tensor type ") + c10::toString(type) +
                   " has no ONNX counterpart in kmidi; expected float32, float16, float64, int64, int32, int16, "
                   "int8, uint8 or bool");
}

c10::ScalarType scalar_type_of(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return c10::kFloat;
    case DType::kFloat16: return c10::kHalf;
    case DType::kFloat64: return c10::kDouble;
    case DType::kInt64: return c10::kLong;
    case DType::kInt32: return c10::kInt;
    case DType::kInt16: return c10::kShort;
    case DType::kInt8: return c10::kChar;
    case DType::kUInt8: return c10::kByte;
    case DType::kBool: return c10::kBool;
  }
  throw UsageError("unknown kmidi::onnx::DType value " + std::to_string(static_cast<int>(dtype)));
}

TensorData to_tensor_data(const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  return TensorData::from_raw(dtype_of(t.scalar_type()), shape, t.data_ptr(), t.numel() * t.element_size());
}

at::Tensor to_tensor(const TensorData& data) {
  at::Tensor t = at::empty(data.shape, at::TensorOptions().dtype(scalar_type_of(data.dtype)));
  const size_t expected = static_cast<size_t>(t.numel() * t.element_size());
  if (data.bytes.size() != expected) {
    throw UsageError("to_tensor: " + std::to_string(data.bytes.size()) + " bytes for " +
                     std::string(dtype_name(data.dtype)) + " " + shape_to_string(data.shape) + ", expected " +
                     std::to_string(expected));
  }
  if (expected) std::memcpy(t.data_ptr(), data.bytes.data(), expected);
  return t;
}

}  // namespace kmidi::onnx

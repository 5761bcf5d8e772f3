#include "onnx/detail/ProtoConvert.h"

#include "core/Errors.h"

namespace kmidi::onnx::detail {

int32_t to_proto_dtype(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return ::onnx::TensorProto::FLOAT;
    case DType::kFloat16: return ::onnx::TensorProto::FLOAT16;
    case DType::kFloat64: return ::onnx::TensorProto::DOUBLE;
    case DType::kInt64: return ::onnx::TensorProto::INT64;
    case DType::kInt32: return ::onnx::TensorProto::INT32;
    case DType::kInt16: return ::onnx::TensorProto::INT16;
    case DType::kInt8: return ::onnx::TensorProto::INT8;
    case DType::kUInt8: return ::onnx::TensorProto::UINT8;
    case DType::kBool: return ::onnx::TensorProto::BOOL;
  }
  throw UsageError("unknown kmidi::onnx::DType value " + std::to_string(static_cast<int>(dtype)));
}

DType from_proto_dtype(int32_t elem_type, const std::string& where) {
  switch (elem_type) {
    case ::onnx::TensorProto::FLOAT: return DType::kFloat32;
    case ::onnx::TensorProto::FLOAT16: return DType::kFloat16;
    case ::onnx::TensorProto::DOUBLE: return DType::kFloat64;
    case ::onnx::TensorProto::INT64: return DType::kInt64;
    case ::onnx::TensorProto::INT32: return DType::kInt32;
    case ::onnx::TensorProto::INT16: return DType::kInt16;
    case ::onnx::TensorProto::INT8: return DType::kInt8;
    case ::onnx::TensorProto::UINT8: return DType::kUInt8;
    case ::onnx::TensorProto::BOOL: return DType::kBool;
    default: break;
  }
  const std::string type_name = ::onnx::TensorProto::DataType_IsValid(elem_type)
                                    ? ::onnx::TensorProto::DataType_Name(static_cast<::onnx::TensorProto::DataType>(elem_type))
                                    : std::to_string(elem_type);
  throw DataError(where + ": element type " + type_name +
                  " is not one kmidi uses; expected float32, float16, float64, int64, int32, int16, int8, uint8 or bool");
}

::onnx::TensorProto to_tensor_proto(const TensorData& data, const std::string& name, const std::string& doc) {
  const size_t expected = static_cast<size_t>(data.numel()) * dtype_size(data.dtype);
  if (data.bytes.size() != expected) {
    throw UsageError("tensor '" + name + "': " + std::to_string(data.bytes.size()) + " bytes for " +
                     std::string(dtype_name(data.dtype)) + " " + shape_to_string(data.shape) + ", expected " +
                     std::to_string(expected));
  }
  ::onnx::TensorProto t;
  if (!name.empty()) t.set_name(name);
  if (!doc.empty()) t.set_doc_string(doc);
  t.set_data_type(to_proto_dtype(data.dtype));
  for (int64_t d : data.shape) t.add_dims(d);
  t.set_raw_data(data.bytes);
  return t;
}

}  // namespace kmidi::onnx::detail

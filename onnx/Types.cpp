#include "onnx/Types.h"

#include <cstring>

#include "core/Errors.h"

namespace kmidi::onnx {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "TensorData stores host bytes as ONNX's little-endian raw_data");

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kFloat32, "float32", 4}, {DType::kFloat16, "float16", 2}, {DType::kFloat64, "float64", 8},
    {DType::kInt64, "int64", 8},     {DType::kInt32, "int32", 4},     {DType::kInt16, "int16", 2},
    {DType::kInt8, "int8", 1},       {DType::kUInt8, "uint8", 1},     {DType::kBool, "bool", 1},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& i : kDTypes) {
    if (i.dtype == dtype) return i;
  }
  throw UsageError("unknown kmidi::onnx::DType value " + std::to_string(static_cast<int>(dtype)));
}

bool valid_symbol(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

template <class T>
std::vector<T> values_as(const TensorData& t, DType expected) {
  if (t.dtype != expected) {
    throw UsageError("TensorData: expected " + std::string(dtype_name(expected)) + ", got " +
                     std::string(dtype_name(t.dtype)));
  }
  std::vector<T> out(static_cast<size_t>(t.numel()));
  if (!out.empty()) std::memcpy(out.data(), t.bytes.data(), out.size() * sizeof(T));
  return out;
}

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }

DType dtype_from_name(std::string_view name) {
  std::string known;
  for (const auto& i : kDTypes) {
    if (name == i.name) return i.dtype;
    known += known.empty() ? "" : ", ";
    known += i.name;
  }
  throw UsageError("unknown element type '" + std::string(name) + "'; expected one of " + known);
}

size_t dtype_size(DType dtype) { return info(dtype).size; }

bool is_floating(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat16 || dtype == DType::kFloat64;
}

Dim::Dim(int64_t size) : size_(size) {
  if (size < 0) throw UsageError("ONNX dimension: expected a size >= 0, got " + std::to_string(size));
}

Dim::Dim(std::string symbol) : symbol_(std::move(symbol)) {
  if (!valid_symbol(symbol_)) {
    throw UsageError("ONNX dimension: a symbolic name must match [A-Za-z_][A-Za-z0-9_]*, got '" + symbol_ + "'");
  }
}

std::string Dim::to_string() const {
  if (is_fixed()) return std::to_string(size_);
  if (is_symbolic()) return symbol_;
  return "?";
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i].to_string();
  return s + "]";
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t TensorData::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

TensorData TensorData::from_raw(DType dtype, std::vector<int64_t> shape, const void* data, size_t byte_size) {
  TensorData t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  for (int64_t d : t.shape) {
    if (d < 0) throw UsageError("TensorData: negative dimension in shape " + shape_to_string(t.shape));
  }
  const size_t expected = static_cast<size_t>(t.numel()) * dtype_size(dtype);
  if (byte_size != expected) {
    throw UsageError("TensorData: " + std::string(dtype_name(dtype)) + " shape " + shape_to_string(t.shape) +
                     " needs " + std::to_string(expected) + " bytes, got " + std::to_string(byte_size));
  }
  t.bytes.assign(static_cast<const char*>(data), byte_size);
  return t;
}

TensorData TensorData::float32(std::vector<int64_t> shape, const std::vector<float>& values) {
  return from_raw(DType::kFloat32, std::move(shape), values.data(), values.size() * sizeof(float));
}

TensorData TensorData::int64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  return from_raw(DType::kInt64, std::move(shape), values.data(), values.size() * sizeof(int64_t));
}

TensorData TensorData::boolean(std::vector<int64_t> shape, const std::vector<bool>& values) {
  std::vector<uint8_t> bytes(values.begin(), values.end());
  return from_raw(DType::kBool, std::move(shape), bytes.data(), bytes.size());
}

TensorData TensorData::scalar_float32(float value) { return float32({}, {value}); }

TensorData TensorData::scalar_int64(int64_t value) { return int64({}, {value}); }

std::vector<float> TensorData::to_float32() const { return values_as<float>(*this, DType::kFloat32); }

std::vector<int64_t> TensorData::to_int64() const { return values_as<int64_t>(*this, DType::kInt64); }

}  // namespace kmidi::onnx

#pragma once
// The small value types of kmidi's ONNX graphs: element types, dimensions
// (fixed or symbolic), and raw tensor data for initializers. Torch-free and
// protobuf-free; see export/README.md for the conventions.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kmidi::onnx {

/// Element types kmidi's graphs use. Names (dtype_name) are onnxruntime's:
/// "float32", "int64", "bool", ...
enum class DType : int {
  kFloat32,
  kFloat16,
  kFloat64,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool,
};

/// "float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool".
std::string_view dtype_name(DType dtype);
/// The inverse of dtype_name; throws UsageError listing the known names.
DType dtype_from_name(std::string_view name);
/// Bytes per element (bool: 1).
size_t dtype_size(DType dtype);
/// Whether values of this type are compared with tolerances (floating point).
bool is_floating(DType dtype);

/// One dimension of a graph input or output: a fixed size, a symbolic name
/// shared by every axis of the same length ("batch", "sequence", "frames"),
/// or unknown (neither; only for outputs whose size no name describes).
class Dim {
 public:
  /// Unknown.
  Dim() = default;
  Dim(int size) : Dim(static_cast<int64_t>(size)) {}  // NOLINT: implicit so that Shape{"batch", 64} reads well
  Dim(int64_t size);                                   // NOLINT
  Dim(const char* symbol) : Dim(std::string(symbol)) {}  // NOLINT
  Dim(std::string symbol);                               // NOLINT

  bool is_fixed() const { return size_ >= 0; }
  bool is_symbolic() const { return !symbol_.empty(); }
  bool is_unknown() const { return !is_fixed() && !is_symbolic(); }
  /// The fixed size; -1 when symbolic or unknown.
  int64_t size() const { return size_; }
  /// The symbolic name; empty when fixed or unknown.
  const std::string& symbol() const { return symbol_; }
  /// "64", "batch" or "?".
  std::string to_string() const;

  bool operator==(const Dim& other) const { return size_ == other.size_ && symbol_ == other.symbol_; }
  bool operator!=(const Dim& other) const { return !(*this == other); }

 private:
  int64_t size_ = -1;
  std::string symbol_;
};

using Shape = std::vector<Dim>;

/// "[batch, sequence, 388]".
std::string shape_to_string(const Shape& shape);
/// "[2, 3]".
std::string shape_to_string(const std::vector<int64_t>& shape);

/// A dense tensor's bytes, little-endian and row-major, for initializers and
/// tensor attributes. `bytes.size()` is numel() * dtype_size(dtype).
struct TensorData {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;  ///< empty for a scalar
  std::string bytes;

  int64_t numel() const;

  /// Copies `byte_size` bytes; throws UsageError when they do not fill `shape`.
  static TensorData from_raw(DType dtype, std::vector<int64_t> shape, const void* data, size_t byte_size);
  static TensorData float32(std::vector<int64_t> shape, const std::vector<float>& values);
  static TensorData int64(std::vector<int64_t> shape, const std::vector<int64_t>& values);
  static TensorData boolean(std::vector<int64_t> shape, const std::vector<bool>& values);
  /// 0-d tensors.
  static TensorData scalar_float32(float value);
  static TensorData scalar_int64(int64_t value);

  /// The float32 values; throws UsageError for another dtype.
  std::vector<float> to_float32() const;
  /// The int64 values; throws UsageError for another dtype.
  std::vector<int64_t> to_int64() const;
};

}  // namespace kmidi::onnx

#pragma once
// Builds an ONNX model (opset 17, IR version 8) node by node and returns its
// serialized bytes. No protobuf in this header: model families include it next
// to their LibTorch definitions and emit their graph with it.
//
//   onnx::ModelBuilder b;
//   b.set_metadata(onnx::meta::kFormatVersion, "1");
//   b.set_metadata(onnx::meta::kModelFamily, "emotion");
//   onnx::Value x = b.input("features", onnx::DType::kFloat32, {"batch", 128});
//   {
//     auto scope = b.scope("encoder");
//     x = b.gelu(b.linear(x, w1, b1, "fc1"));   // initializers encoder.fc1.weight, encoder.fc1.bias
//     x = b.layer_norm(x, ln_w, ln_b, 1e-5f, "norm");
//   }
//   b.output(x, "embedding", onnx::DType::kFloat32, {"batch", 64});
//   std::string bytes = b.build();
//
// Names: nodes are "<scope>/<OpType>[_<local>]" (scopes joined by '.', e.g.
// "decoder.layers.3.attn/MatMul_q"), made unique with a numeric suffix;
// initializers are "<scope>.<local>" and must be unique (they mirror LibTorch's
// parameter names). Helpers assume float32 activations. See export/README.md.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "onnx/Types.h"

namespace kmidi::onnx {

/// A tensor of the graph under construction, known by its unique name.
class Value {
 public:
  /// No value: an omitted optional node input.
  Value() = default;
  explicit Value(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  bool empty() const { return name_.empty(); }
  bool operator==(const Value& other) const { return name_ == other.name_; }
  bool operator!=(const Value& other) const { return name_ != other.name_; }

 private:
  std::string name_;
};

/// A node attribute: {"axis", -1}, {"epsilon", 1e-5f}, {"mode", "constant"},
/// Attr::ints("perm", {0, 2, 1, 3}), Attr::tensor("value", data).
class Attr {
 public:
  enum class Kind { kInt, kFloat, kString, kInts, kFloats, kTensor };

  Attr(std::string name, int value) : Attr(std::move(name), static_cast<int64_t>(value)) {}
  Attr(std::string name, int64_t value);
  Attr(std::string name, float value);
  /// Stored as float: ONNX float attributes are 32-bit.
  Attr(std::string name, double value) : Attr(std::move(name), static_cast<float>(value)) {}
  Attr(std::string name, const char* value) : Attr(std::move(name), std::string(value)) {}
  Attr(std::string name, std::string value);
  static Attr ints(std::string name, std::vector<int64_t> values);
  static Attr floats(std::string name, std::vector<float> values);
  static Attr tensor(std::string name, TensorData value);

  const std::string& name() const { return name_; }
  Kind kind() const { return kind_; }
  int64_t int_value() const { return int_; }
  float float_value() const { return float_; }
  const std::string& string_value() const { return string_; }
  const std::vector<int64_t>& ints_value() const { return ints_; }
  const std::vector<float>& floats_value() const { return floats_; }
  const TensorData& tensor_value() const { return tensor_; }

 private:
  Attr() = default;
  std::string name_;
  Kind kind_ = Kind::kInt;
  int64_t int_ = 0;
  float float_ = 0.0f;
  std::string string_;
  std::vector<int64_t> ints_;
  std::vector<float> floats_;
  TensorData tensor_;
};

/// Model-level fields.
struct ModelOptions {
  std::string graph_name = "main";  ///< GraphProto.name
  std::string doc;                  ///< ModelProto.doc_string: what the model computes
  std::string producer_name = "kmidi";
  std::string producer_version;     ///< empty: kmidi's version
  int64_t model_version = 1;        ///< ModelProto.model_version
};

/// Exact GELU (torch's default) or its tanh approximation (approximate="tanh").
enum class GeluApproximation { kNone, kTanh };

/// Options of ModelBuilder::attention.
struct AttentionOptions {
  /// REQUIRED (> 0): the factor on q·kᵀ, usually 1/sqrt(head_dim).
  float scale = 0.0f;
  /// Mask future keys. With T queries and S keys, the queries are the last T
  /// of the S positions (S > T when past keys are prepended): query i sees keys
  /// 0..i+S-T.
  bool causal = false;
  /// Optional bool mask broadcastable to [B, H, T, S]; false masks a key (e.g.
  /// padding). Masked scores take the lowest finite float, as models::attend
  /// does, so a row with every key masked averages v instead of giving NaN.
  Value allowed;
};

/// Options of ModelBuilder::conv, as torch's Conv1d/Conv2d take them.
struct ConvOptions {
  std::vector<int64_t> stride;    ///< per spatial axis; empty: 1
  std::vector<int64_t> padding;   ///< symmetric zero padding per spatial axis; empty: 0
  std::vector<int64_t> dilation;  ///< per spatial axis; empty: 1
  int64_t groups = 1;
};

class ModelBuilder;

/// Returned by ModelBuilder::scope(); leaves the scope when destroyed.
class [[nodiscard]] ScopeGuard {
 public:
  ScopeGuard(ScopeGuard&& other) noexcept;
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ScopeGuard& operator=(ScopeGuard&&) = delete;
  ~ScopeGuard();

 private:
  friend class ModelBuilder;
  ScopeGuard(ModelBuilder* builder, size_t depth) : builder_(builder), depth_(depth) {}
  ModelBuilder* builder_;
  size_t depth_;
};

class ModelBuilder {
 public:
  explicit ModelBuilder(ModelOptions options = {});
  ~ModelBuilder();
  ModelBuilder(const ModelBuilder&) = delete;
  ModelBuilder& operator=(const ModelBuilder&) = delete;

  // ---- graph interface ---------------------------------------------------

  /// Declares the next graph input (order is the contract's order).
  Value input(const std::string& name, DType dtype, Shape shape, std::string doc = {});
  /// Declares the next graph output: `value` becomes the output called `name`.
  /// The node producing `value` is renamed when possible, else an Identity is added.
  void output(const Value& value, const std::string& name, DType dtype, Shape shape, std::string doc = {});
  /// Optional shape annotation of an intermediate value (ValueInfoProto).
  void value_info(const Value& value, DType dtype, Shape shape);
  /// A named weight: "<scope>.<local_name>". Throws UsageError when the name is taken.
  Value initializer(const std::string& local_name, TensorData data, std::string doc = {});
  /// An unnamed constant (an initializer "const_N"); identical constants are shared.
  Value constant(const TensorData& data);
  /// A 1-D int64 constant, e.g. a shape or a list of axes.
  Value constant_int64s(const std::vector<int64_t>& values);
  /// 0-d constants.
  Value scalar_float32(float value);
  Value scalar_int64(int64_t value);

  /// metadata_props entry; keys are "kmidi.<name>" (see Metadata.h). A key set
  /// twice keeps its first position and takes the new value.
  void set_metadata(const std::string& key, std::string value);
  /// GraphProto.doc_string.
  void set_graph_doc(std::string doc);

  /// Enters a naming scope: "decoder" then "layers.3" gives "decoder.layers.3".
  ScopeGuard scope(const std::string& name);
  /// The current scope path ("" at the top).
  std::string scope_path() const;

  // ---- nodes -------------------------------------------------------------

  /// Any single-output ONNX operator of opset 17. `name` is the node's local name.
  Value node(const std::string& op_type, const std::vector<Value>& inputs, const std::vector<Attr>& attrs = {},
             const std::string& name = {});
  /// An operator with several outputs (e.g. Split, TopK).
  std::vector<Value> multi_output_node(const std::string& op_type, const std::vector<Value>& inputs,
                                       size_t num_outputs, const std::vector<Attr>& attrs = {},
                                       const std::string& name = {});

  // Elementwise (numpy broadcasting) and matrix product.
  Value add(const Value& a, const Value& b, const std::string& name = {});
  Value sub(const Value& a, const Value& b, const std::string& name = {});
  Value mul(const Value& a, const Value& b, const std::string& name = {});
  Value div(const Value& a, const Value& b, const std::string& name = {});
  Value pow(const Value& a, const Value& b, const std::string& name = {});
  Value matmul(const Value& a, const Value& b, const std::string& name = {});
  Value sqrt(const Value& x, const std::string& name = {});
  Value exp(const Value& x, const std::string& name = {});
  Value erf(const Value& x, const std::string& name = {});
  Value relu(const Value& x, const std::string& name = {});
  Value sigmoid(const Value& x, const std::string& name = {});
  Value tanh(const Value& x, const std::string& name = {});
  Value identity(const Value& x, const std::string& name = {});
  /// Softmax along one axis (opset 13 semantics).
  Value softmax(const Value& x, int64_t axis = -1, const std::string& name = {});
  /// torch.nn.functional.gelu: x·Φ(x) through Erf (or the tanh formula); several nodes in scope `name`.
  Value gelu(const Value& x, GeluApproximation approximation = GeluApproximation::kNone,
             const std::string& name = "gelu");

  // Layers with parameters. `name` is the LibTorch module name: parameters
  // become "<scope>.<name>.weight" / ".bias".

  /// torch Linear: x [.., in] -> [.., out]. `weight` is LibTorch's [out, in];
  /// it is stored transposed, [in, out], so that the graph is MatMul + Add.
  Value linear(const Value& x, const TensorData& weight, const TensorData& bias, const std::string& name);
  /// Linear without bias.
  Value linear(const Value& x, const TensorData& weight, const std::string& name);
  /// torch LayerNorm over the last weight.shape.size() axes (LayerNormalization, opset 17).
  Value layer_norm(const Value& x, const TensorData& weight, const TensorData& bias, float epsilon,
                   const std::string& name);
  /// torch Conv1d/Conv2d: x [B, C_in, *spatial]; `weight` is LibTorch's
  /// [C_out, C_in/groups, *kernel] (ONNX Conv uses the same layout).
  Value conv(const Value& x, const TensorData& weight, const TensorData& bias, const ConvOptions& options,
             const std::string& name);
  /// Conv without bias.
  Value conv(const Value& x, const TensorData& weight, const ConvOptions& options, const std::string& name);
  /// torch Embedding: ids (int64, any shape) -> [.., dim]; `table` is [num, dim].
  Value embedding(const Value& ids, const TensorData& table, const std::string& name);

  // Shapes and indexing.
  /// Reshape to a constant shape; 0 copies the input's dim, -1 is inferred.
  Value reshape(const Value& x, const std::vector<int64_t>& shape, const std::string& name = {});
  /// Reshape to a computed shape (1-D int64 value).
  Value reshape(const Value& x, const Value& shape, const std::string& name = {});
  Value transpose(const Value& x, const std::vector<int64_t>& perm, const std::string& name = {});
  Value concat(const std::vector<Value>& values, int64_t axis, const std::string& name = {});
  /// Slice with constant bounds (INT64_MAX for "to the end"); empty steps mean 1.
  Value slice(const Value& x, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
              const std::vector<int64_t>& axes, const std::vector<int64_t>& steps = {},
              const std::string& name = {});
  /// Slice with computed bounds (1-D int64 values; `steps` may be empty).
  Value slice(const Value& x, const Value& starts, const Value& ends, const Value& axes,
              const Value& steps = Value(), const std::string& name = {});
  Value gather(const Value& data, const Value& indices, int64_t axis = 0, const std::string& name = {});
  Value unsqueeze(const Value& x, const std::vector<int64_t>& axes, const std::string& name = {});
  Value squeeze(const Value& x, const std::vector<int64_t>& axes, const std::string& name = {});
  Value where(const Value& condition, const Value& a, const Value& b, const std::string& name = {});
  /// Broadcast to a computed shape (1-D int64 value).
  Value expand(const Value& x, const Value& shape, const std::string& name = {});
  /// The shape of x as 1-D int64, optionally dims [start, end) (Shape, opset 15).
  Value shape_of(const Value& x, const std::string& name = {});
  Value shape_of(const Value& x, int64_t start, int64_t end, const std::string& name = {});
  Value cast(const Value& x, DType to, const std::string& name = {});
  Value reduce_mean(const Value& x, const std::vector<int64_t>& axes, bool keep_dims,
                    const std::string& name = {});

  // Attention building blocks.
  /// [B, T, heads*head_dim] -> [B, heads, T, head_dim].
  Value split_heads(const Value& x, int64_t heads, int64_t head_dim, const std::string& name = "split_heads");
  /// [B, heads, T, head_dim] -> [B, T, heads*head_dim].
  Value merge_heads(const Value& x, int64_t heads, int64_t head_dim, const std::string& name = "merge_heads");
  /// softmax(masked(q·kᵀ·scale))·v for q [B, H, T, D], k and v [B, H, S, D] -> [B, H, T, D].
  Value attention(const Value& q, const Value& k, const Value& v, const AttentionOptions& options,
                  const std::string& name = "attention");

  // ---- result ------------------------------------------------------------

  /// The serialized ModelProto. Throws UsageError when the graph has no output,
  /// lacks the required metadata (kmidi.format_version, kmidi.model_family) or
  /// has an initializer (weight or constant) that no node or output reads.
  /// Run check_model() on the result before trusting it.
  std::string build() const;

 private:
  friend class ScopeGuard;
  struct Impl;
  std::string unique_node_name(const std::string& op_type, const std::string& local);
  std::string unique_value_name(const std::string& wanted);
  std::string resolve(const Value& v, const std::string& node_name) const;
  void require_initializers_used() const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kmidi::onnx

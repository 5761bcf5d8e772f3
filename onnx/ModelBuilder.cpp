#include "onnx/ModelBuilder.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "core/Errors.h"
#include "onnx/Metadata.h"
#include "onnx/detail/ProtoConvert.h"

#ifndef KMIDI_VERSION
#error "kmidi_onnx needs KMIDI_VERSION (set by export/CMakeLists.txt)"
#endif

namespace kmidi::onnx {

// ---- Attr -------------------------------------------------------------------

Attr::Attr(std::string name, int64_t value) : name_(std::move(name)), kind_(Kind::kInt), int_(value) {}
Attr::Attr(std::string name, float value) : name_(std::move(name)), kind_(Kind::kFloat), float_(value) {}
Attr::Attr(std::string name, std::string value)
    : name_(std::move(name)), kind_(Kind::kString), string_(std::move(value)) {}

Attr Attr::ints(std::string name, std::vector<int64_t> values) {
  Attr a;
  a.name_ = std::move(name);
  a.kind_ = Kind::kInts;
  a.ints_ = std::move(values);
  return a;
}

Attr Attr::floats(std::string name, std::vector<float> values) {
  Attr a;
  a.name_ = std::move(name);
  a.kind_ = Kind::kFloats;
  a.floats_ = std::move(values);
  return a;
}

Attr Attr::tensor(std::string name, TensorData value) {
  Attr a;
  a.name_ = std::move(name);
  a.kind_ = Kind::kTensor;
  a.tensor_ = std::move(value);
  return a;
}

// ---- builder state ----------------------------------------------------------

namespace {

struct ValueInfoRecord {
  std::string name;
  DType dtype;
  Shape shape;
  std::string doc;
};

struct NodeRecord {
  std::string op_type, name;
  std::vector<std::string> inputs, outputs;
  std::vector<Attr> attrs;
};

struct InitializerRecord {
  std::string name;
  TensorData data;
  std::string doc;
};

std::string constant_key(const TensorData& t) {
  std::string key = std::string(dtype_name(t.dtype)) + shape_to_string(t.shape);
  key += '|';
  key += t.bytes;
  return key;
}

::onnx::AttributeProto to_proto(const Attr& a) {
  ::onnx::AttributeProto p;
  p.set_name(a.name());
  switch (a.kind()) {
    case Attr::Kind::kInt:
      p.set_type(::onnx::AttributeProto::INT);
      p.set_i(a.int_value());
      break;
    case Attr::Kind::kFloat:
      p.set_type(::onnx::AttributeProto::FLOAT);
      p.set_f(a.float_value());
      break;
    case Attr::Kind::kString:
      p.set_type(::onnx::AttributeProto::STRING);
      p.set_s(a.string_value());
      break;
    case Attr::Kind::kInts:
      p.set_type(::onnx::AttributeProto::INTS);
      for (int64_t v : a.ints_value()) p.add_ints(v);
      break;
    case Attr::Kind::kFloats:
      p.set_type(::onnx::AttributeProto::FLOATS);
      for (float v : a.floats_value()) p.add_floats(v);
      break;
    case Attr::Kind::kTensor:
      p.set_type(::onnx::AttributeProto::TENSOR);
      *p.mutable_t() = detail::to_tensor_proto(a.tensor_value(), "");
      break;
  }
  return p;
}

void fill_value_info(::onnx::ValueInfoProto* p, const ValueInfoRecord& r) {
  p->set_name(r.name);
  if (!r.doc.empty()) p->set_doc_string(r.doc);
  auto* tensor_type = p->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(detail::to_proto_dtype(r.dtype));
  auto* shape = tensor_type->mutable_shape();
  for (const Dim& d : r.shape) {
    auto* dim = shape->add_dim();
    if (d.is_fixed()) dim->set_dim_value(d.size());
    else if (d.is_symbolic()) dim->set_dim_param(d.symbol());
  }
}

}  // namespace

struct ModelBuilder::Impl {
  ModelOptions options;
  std::string graph_doc;
  std::vector<ValueInfoRecord> inputs, outputs, value_infos;
  std::vector<InitializerRecord> initializers;
  std::vector<NodeRecord> nodes;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::unordered_set<std::string> value_names, node_names;
  std::unordered_map<std::string, size_t> producer;       // value -> index in nodes
  std::unordered_map<std::string, std::string> renamed;   // old value name -> output name
  std::unordered_set<std::string> graph_output_values;
  std::unordered_set<std::string> graph_input_values;
  std::map<std::string, std::string> constants;           // constant_key -> value name
  std::vector<std::string> scopes;
};

// ---- scopes -------------------------------------------------------------------

ScopeGuard::ScopeGuard(ScopeGuard&& other) noexcept : builder_(other.builder_), depth_(other.depth_) {
  other.builder_ = nullptr;
}

ScopeGuard::~ScopeGuard() {
  if (builder_ && builder_->impl_->scopes.size() > depth_) builder_->impl_->scopes.resize(depth_);
}

ScopeGuard ModelBuilder::scope(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) {
    throw UsageError("ModelBuilder::scope: a scope name must be non-empty and contain no '/', got '" + name + "'");
  }
  const size_t depth = impl_->scopes.size();
  impl_->scopes.push_back(name);
  return ScopeGuard(this, depth);
}

std::string ModelBuilder::scope_path() const {
  std::string path;
  for (const auto& s : impl_->scopes) path += (path.empty() ? "" : ".") + s;
  return path;
}

// ---- names --------------------------------------------------------------------

ModelBuilder::ModelBuilder(ModelOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.producer_version.empty()) impl_->options.producer_version = KMIDI_VERSION;
}

ModelBuilder::~ModelBuilder() = default;

std::string ModelBuilder::unique_node_name(const std::string& op_type, const std::string& local) {
  const std::string path = scope_path();
  std::string base = (path.empty() ? "" : path + "/") + op_type + (local.empty() ? "" : "_" + local);
  std::string name = base;
  for (int i = 1; impl_->node_names.count(name) || impl_->value_names.count(name); ++i) {
    name = base + "_" + std::to_string(i);
  }
  impl_->node_names.insert(name);
  return name;
}

std::string ModelBuilder::unique_value_name(const std::string& wanted) {
  std::string name = wanted;
  for (int i = 1; impl_->value_names.count(name); ++i) name = wanted + "_" + std::to_string(i);
  impl_->value_names.insert(name);
  return name;
}

std::string ModelBuilder::resolve(const Value& v, const std::string& node_name) const {
  if (v.empty()) return {};
  auto it = impl_->renamed.find(v.name());
  const std::string& name = it == impl_->renamed.end() ? v.name() : it->second;
  if (!impl_->value_names.count(name)) {
    throw UsageError("ModelBuilder: node '" + node_name + "' uses '" + v.name() +
                     "', which is no graph input, initializer or node output of this builder");
  }
  return name;
}

// ---- graph interface ------------------------------------------------------------

Value ModelBuilder::input(const std::string& name, DType dtype, Shape shape, std::string doc) {
  if (name.empty()) throw UsageError("ModelBuilder::input: every graph input needs a name");
  if (impl_->value_names.count(name)) throw UsageError("ModelBuilder::input: the name '" + name + "' is taken");
  impl_->value_names.insert(name);
  impl_->graph_input_values.insert(name);
  impl_->inputs.push_back({name, dtype, std::move(shape), std::move(doc)});
  return Value(name);
}

void ModelBuilder::output(const Value& value, const std::string& name, DType dtype, Shape shape, std::string doc) {
  if (name.empty()) throw UsageError("ModelBuilder::output: every graph output needs a name");
  const std::string current = resolve(value, "output " + name);
  std::string final_name = current;
  if (current != name) {
    if (impl_->value_names.count(name)) {
      throw UsageError("ModelBuilder::output: the name '" + name + "' is taken by another value");
    }
    auto producer = impl_->producer.find(current);
    const bool can_rename = producer != impl_->producer.end() && !impl_->graph_output_values.count(current);
    if (can_rename) {
      // Rename the producing node's output and every use, so that no Identity is needed.
      for (auto& node : impl_->nodes) {
        for (auto& in : node.inputs) if (in == current) in = name;
        for (auto& out : node.outputs) if (out == current) out = name;
      }
      for (auto& vi : impl_->value_infos) if (vi.name == current) vi.name = name;
      impl_->value_names.erase(current);
      impl_->value_names.insert(name);
      impl_->producer[name] = producer->second;
      impl_->producer.erase(current);
      for (auto& [old_name, target] : impl_->renamed) if (target == current) target = name;
      impl_->renamed[current] = name;
    } else {
      NodeRecord node;
      node.op_type = "Identity";
      node.name = unique_node_name("Identity", name);
      node.inputs = {current};
      node.outputs = {name};
      impl_->value_names.insert(name);
      impl_->producer[name] = impl_->nodes.size();
      impl_->nodes.push_back(std::move(node));
    }
    final_name = name;
  } else if (impl_->graph_input_values.count(current) || impl_->graph_output_values.count(current)) {
    throw UsageError("ModelBuilder::output: '" + name + "' is already a graph input or output");
  }
  impl_->graph_output_values.insert(final_name);
  impl_->outputs.push_back({final_name, dtype, std::move(shape), std::move(doc)});
}

void ModelBuilder::value_info(const Value& value, DType dtype, Shape shape) {
  impl_->value_infos.push_back({resolve(value, "value_info"), dtype, std::move(shape), {}});
}

Value ModelBuilder::initializer(const std::string& local_name, TensorData data, std::string doc) {
  if (local_name.empty()) throw UsageError("ModelBuilder::initializer: a weight needs a name");
  const std::string path = scope_path();
  const std::string name = path.empty() ? local_name : path + "." + local_name;
  if (impl_->value_names.count(name)) {
    throw UsageError("ModelBuilder::initializer: the name '" + name +
                     "' is taken; weight names mirror LibTorch parameter names and must be unique");
  }
  impl_->value_names.insert(name);
  impl_->initializers.push_back({name, std::move(data), std::move(doc)});
  return Value(name);
}

Value ModelBuilder::constant(const TensorData& data) {
  const std::string key = constant_key(data);
  auto it = impl_->constants.find(key);
  if (it != impl_->constants.end()) return Value(it->second);
  const std::string name = unique_value_name("const_" + std::to_string(impl_->constants.size()));
  impl_->initializers.push_back({name, data, {}});
  impl_->constants.emplace(key, name);
  return Value(name);
}

Value ModelBuilder::constant_int64s(const std::vector<int64_t>& values) {
  return constant(TensorData::int64({static_cast<int64_t>(values.size())}, values));
}

Value ModelBuilder::scalar_float32(float value) { return constant(TensorData::scalar_float32(value)); }

Value ModelBuilder::scalar_int64(int64_t value) { return constant(TensorData::scalar_int64(value)); }

void ModelBuilder::set_metadata(const std::string& key, std::string value) {
  if (!meta::is_valid_key(key)) {
    throw UsageError("ModelBuilder::set_metadata: keys live in the 'kmidi.' namespace (lower-case letters, "
                     "digits, '_', '.'), got '" + key + "'");
  }
  for (auto& [k, v] : impl_->metadata) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  impl_->metadata.emplace_back(key, std::move(value));
}

void ModelBuilder::set_graph_doc(std::string doc) { impl_->graph_doc = std::move(doc); }

// ---- nodes ------------------------------------------------------------------------

std::vector<Value> ModelBuilder::multi_output_node(const std::string& op_type, const std::vector<Value>& inputs,
                                                   size_t num_outputs, const std::vector<Attr>& attrs,
                                                   const std::string& name) {
  if (op_type.empty()) throw UsageError("ModelBuilder::node: empty op type");
  if (num_outputs == 0) throw UsageError("ModelBuilder::node: " + op_type + " needs at least one output");
  NodeRecord node;
  node.op_type = op_type;
  node.name = unique_node_name(op_type, name);
  for (const Value& in : inputs) node.inputs.push_back(resolve(in, node.name));
  node.attrs = attrs;
  std::vector<Value> outputs;
  for (size_t i = 0; i < num_outputs; ++i) {
    const std::string out =
        unique_value_name(num_outputs == 1 ? node.name : node.name + ":" + std::to_string(i));
    impl_->producer[out] = impl_->nodes.size();
    node.outputs.push_back(out);
    outputs.emplace_back(out);
  }
  impl_->nodes.push_back(std::move(node));
  return outputs;
}

Value ModelBuilder::node(const std::string& op_type, const std::vector<Value>& inputs,
                         const std::vector<Attr>& attrs, const std::string& name) {
  return multi_output_node(op_type, inputs, 1, attrs, name).front();
}

Value ModelBuilder::add(const Value& a, const Value& b, const std::string& name) { return node("Add", {a, b}, {}, name); }
Value ModelBuilder::sub(const Value& a, const Value& b, const std::string& name) { return node("Sub", {a, b}, {}, name); }
Value ModelBuilder::mul(const Value& a, const Value& b, const std::string& name) { return node("Mul", {a, b}, {}, name); }
Value ModelBuilder::div(const Value& a, const Value& b, const std::string& name) { return node("Div", {a, b}, {}, name); }
Value ModelBuilder::pow(const Value& a, const Value& b, const std::string& name) { return node("Pow", {a, b}, {}, name); }
Value ModelBuilder::matmul(const Value& a, const Value& b, const std::string& name) {
  return node("MatMul", {a, b}, {}, name);
}
Value ModelBuilder::sqrt(const Value& x, const std::string& name) { return node("Sqrt", {x}, {}, name); }
Value ModelBuilder::exp(const Value& x, const std::string& name) { return node("Exp", {x}, {}, name); }
Value ModelBuilder::erf(const Value& x, const std::string& name) { return node("Erf", {x}, {}, name); }
Value ModelBuilder::relu(const Value& x, const std::string& name) { return node("Relu", {x}, {}, name); }
Value ModelBuilder::sigmoid(const Value& x, const std::string& name) { return node("Sigmoid", {x}, {}, name); }
Value ModelBuilder::tanh(const Value& x, const std::string& name) { return node("Tanh", {x}, {}, name); }
Value ModelBuilder::identity(const Value& x, const std::string& name) { return node("Identity", {x}, {}, name); }

Value ModelBuilder::softmax(const Value& x, int64_t axis, const std::string& name) {
  return node("Softmax", {x}, {{"axis", axis}}, name);
}

Value ModelBuilder::gelu(const Value& x, GeluApproximation approximation, const std::string& name) {
  auto s = scope(name);
  const Value half = scalar_float32(0.5f);
  const Value one = scalar_float32(1.0f);
  Value inner;
  if (approximation == GeluApproximation::kNone) {
    // 0.5·x·(1 + erf(x/√2)), written as torch computes it (x·M_SQRT1_2).
    inner = erf(mul(x, scalar_float32(static_cast<float>(M_SQRT1_2))));
  } else {
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    const Value cube = mul(mul(x, x), x);
    const Value poly = add(x, mul(cube, scalar_float32(0.044715f)));
    inner = tanh(mul(poly, scalar_float32(static_cast<float>(std::sqrt(2.0 / M_PI)))));
  }
  return mul(mul(x, half), add(inner, one));
}

Value ModelBuilder::linear(const Value& x, const TensorData& weight, const TensorData& bias,
                           const std::string& name) {
  if (bias.shape.size() != 1 || weight.shape.size() != 2 || bias.shape[0] != weight.shape[0]) {
    throw UsageError("ModelBuilder::linear '" + name + "': expected bias [out] for weight [out, in] = " +
                     shape_to_string(weight.shape) + ", got bias " + shape_to_string(bias.shape));
  }
  const Value y = linear(x, weight, name);
  auto s = scope(name);
  const Value b = initializer("bias", bias);
  return add(y, b);
}

Value ModelBuilder::linear(const Value& x, const TensorData& weight, const std::string& name) {
  if (weight.shape.size() != 2) {
    throw UsageError("ModelBuilder::linear '" + name + "': expected weight [out, in], got " +
                     shape_to_string(weight.shape));
  }
  const int64_t out = weight.shape[0], in = weight.shape[1];
  // Transpose once here so that the graph is a plain MatMul.
  TensorData transposed;
  transposed.dtype = weight.dtype;
  transposed.shape = {in, out};
  const size_t elem = dtype_size(weight.dtype);
  transposed.bytes.resize(weight.bytes.size());
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      std::copy_n(weight.bytes.data() + (o * in + i) * elem, elem, transposed.bytes.data() + (i * out + o) * elem);
    }
  }
  auto s = scope(name);
  const Value w = initializer("weight", std::move(transposed), "LibTorch weight [out, in] stored transposed as [in, out]");
  return matmul(x, w);
}

Value ModelBuilder::layer_norm(const Value& x, const TensorData& weight, const TensorData& bias, float epsilon,
                               const std::string& name) {
  if (weight.shape.empty() || weight.shape != bias.shape) {
    throw UsageError("ModelBuilder::layer_norm '" + name + "': expected weight and bias of one non-empty shape, got " +
                     shape_to_string(weight.shape) + " and " + shape_to_string(bias.shape));
  }
  auto s = scope(name);
  const Value w = initializer("weight", weight);
  const Value b = initializer("bias", bias);
  const int64_t axis = -static_cast<int64_t>(weight.shape.size());
  return node("LayerNormalization", {x, w, b}, {{"axis", axis}, {"epsilon", epsilon}});
}

namespace {

/// ONNX Conv attributes from torch-style options for `spatial` axes.
std::vector<Attr> conv_attrs(const TensorData& weight, const ConvOptions& o, const std::string& name) {
  const size_t spatial = weight.shape.size() - 2;
  auto per_axis = [&](const std::vector<int64_t>& v, int64_t fallback, const char* what) {
    if (v.empty()) return std::vector<int64_t>(spatial, fallback);
    if (v.size() != spatial) {
      throw UsageError("ModelBuilder::conv '" + name + "': " + what + " needs " + std::to_string(spatial) +
                       " value(s), one per spatial axis, got " + std::to_string(v.size()));
    }
    return v;
  };
  const std::vector<int64_t> padding = per_axis(o.padding, 0, "padding");
  std::vector<int64_t> pads = padding;  // ONNX: all begins, then all ends
  pads.insert(pads.end(), padding.begin(), padding.end());
  return {Attr::ints("kernel_shape", std::vector<int64_t>(weight.shape.begin() + 2, weight.shape.end())),
          Attr::ints("strides", per_axis(o.stride, 1, "stride")),
          Attr::ints("pads", pads),
          Attr::ints("dilations", per_axis(o.dilation, 1, "dilation")),
          {"group", o.groups}};
}

}  // namespace

Value ModelBuilder::conv(const Value& x, const TensorData& weight, const TensorData& bias, const ConvOptions& options,
                         const std::string& name) {
  if (weight.shape.size() < 3 || bias.shape.size() != 1 || bias.shape[0] != weight.shape[0]) {
    throw UsageError("ModelBuilder::conv '" + name + "': expected weight [out, in/groups, *kernel] and bias [out], got " +
                     shape_to_string(weight.shape) + " and " + shape_to_string(bias.shape));
  }
  const std::vector<Attr> attrs = conv_attrs(weight, options, name);
  auto s = scope(name);
  const Value w = initializer("weight", weight);
  const Value b = initializer("bias", bias);
  return node("Conv", {x, w, b}, attrs);
}

Value ModelBuilder::conv(const Value& x, const TensorData& weight, const ConvOptions& options, const std::string& name) {
  if (weight.shape.size() < 3) {
    throw UsageError("ModelBuilder::conv '" + name + "': expected weight [out, in/groups, *kernel], got " +
                     shape_to_string(weight.shape));
  }
  const std::vector<Attr> attrs = conv_attrs(weight, options, name);
  auto s = scope(name);
  const Value w = initializer("weight", weight);
  return node("Conv", {x, w}, attrs);
}

Value ModelBuilder::embedding(const Value& ids, const TensorData& table, const std::string& name) {
  if (table.shape.size() != 2) {
    throw UsageError("ModelBuilder::embedding '" + name + "': expected a table [num, dim], got " +
                     shape_to_string(table.shape));
  }
  auto s = scope(name);
  const Value w = initializer("weight", table);
  return gather(w, ids, 0);
}

Value ModelBuilder::reshape(const Value& x, const std::vector<int64_t>& shape, const std::string& name) {
  return reshape(x, constant_int64s(shape), name);
}

Value ModelBuilder::reshape(const Value& x, const Value& shape, const std::string& name) {
  return node("Reshape", {x, shape}, {}, name);
}

Value ModelBuilder::transpose(const Value& x, const std::vector<int64_t>& perm, const std::string& name) {
  return node("Transpose", {x}, {Attr::ints("perm", perm)}, name);
}

Value ModelBuilder::concat(const std::vector<Value>& values, int64_t axis, const std::string& name) {
  return node("Concat", values, {{"axis", axis}}, name);
}

Value ModelBuilder::slice(const Value& x, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                          const std::vector<int64_t>& axes, const std::vector<int64_t>& steps,
                          const std::string& name) {
  if (starts.size() != ends.size() || starts.size() != axes.size() ||
      (!steps.empty() && steps.size() != starts.size())) {
    throw UsageError("ModelBuilder::slice: starts, ends, axes (and steps) need one entry per sliced axis");
  }
  return slice(x, constant_int64s(starts), constant_int64s(ends), constant_int64s(axes),
               steps.empty() ? Value() : constant_int64s(steps), name);
}

Value ModelBuilder::slice(const Value& x, const Value& starts, const Value& ends, const Value& axes,
                          const Value& steps, const std::string& name) {
  std::vector<Value> inputs = {x, starts, ends, axes};
  if (!steps.empty()) inputs.push_back(steps);
  return node("Slice", inputs, {}, name);
}

Value ModelBuilder::gather(const Value& data, const Value& indices, int64_t axis, const std::string& name) {
  return node("Gather", {data, indices}, {{"axis", axis}}, name);
}

Value ModelBuilder::unsqueeze(const Value& x, const std::vector<int64_t>& axes, const std::string& name) {
  return node("Unsqueeze", {x, constant_int64s(axes)}, {}, name);
}

Value ModelBuilder::squeeze(const Value& x, const std::vector<int64_t>& axes, const std::string& name) {
  return node("Squeeze", {x, constant_int64s(axes)}, {}, name);
}

Value ModelBuilder::where(const Value& condition, const Value& a, const Value& b, const std::string& name) {
  return node("Where", {condition, a, b}, {}, name);
}

Value ModelBuilder::expand(const Value& x, const Value& shape, const std::string& name) {
  return node("Expand", {x, shape}, {}, name);
}

Value ModelBuilder::shape_of(const Value& x, const std::string& name) { return node("Shape", {x}, {}, name); }

Value ModelBuilder::shape_of(const Value& x, int64_t start, int64_t end, const std::string& name) {
  return node("Shape", {x}, {{"start", start}, {"end", end}}, name);
}

Value ModelBuilder::cast(const Value& x, DType to, const std::string& name) {
  return node("Cast", {x}, {{"to", static_cast<int64_t>(detail::to_proto_dtype(to))}}, name);
}

Value ModelBuilder::reduce_mean(const Value& x, const std::vector<int64_t>& axes, bool keep_dims,
                                const std::string& name) {
  // Opset 17 still takes the axes as an attribute (an input from opset 18).
  return node("ReduceMean", {x}, {Attr::ints("axes", axes), {"keepdims", keep_dims ? 1 : 0}}, name);
}

Value ModelBuilder::split_heads(const Value& x, int64_t heads, int64_t head_dim, const std::string& name) {
  auto s = scope(name);
  return transpose(reshape(x, {0, 0, heads, head_dim}), {0, 2, 1, 3});
}

Value ModelBuilder::merge_heads(const Value& x, int64_t heads, int64_t head_dim, const std::string& name) {
  auto s = scope(name);
  return reshape(transpose(x, {0, 2, 1, 3}), {0, 0, heads * head_dim});
}

Value ModelBuilder::attention(const Value& q, const Value& k, const Value& v, const AttentionOptions& options,
                              const std::string& name) {
  if (!(options.scale > 0.0f) || !std::isfinite(options.scale)) {
    throw UsageError("ModelBuilder::attention '" + name + "': options.scale must be > 0 (usually 1/sqrt(head_dim)), got " +
                     std::to_string(options.scale));
  }
  auto s = scope(name);
  Value scores = mul(matmul(q, transpose(k, {0, 1, 3, 2}), "scores"), scalar_float32(options.scale));  // [B, H, T, S]
  // A finite fill, not -inf: a row whose keys are all masked stays free of NaN.
  // Made only when a mask uses it: an unread constant would be an unused initializer.
  const auto masked = [this] { return scalar_float32(std::numeric_limits<float>::lowest()); };
  if (!options.allowed.empty()) scores = where(options.allowed, scores, masked(), "allowed");
  if (options.causal) {
    // keep[i][j] = j <= i + (S - T): a lower triangle of ones [T, S] shifted by S - T (Trilu, opset 14).
    const Value t = shape_of(q, 2, 3, "queries");
    const Value s_len = shape_of(k, 2, 3, "keys");
    const Value ones = node("ConstantOfShape", {concat({t, s_len}, 0)},
                            {Attr::tensor("value", TensorData::float32({1}, {1.0f}))});
    const Value offset = squeeze(sub(s_len, t), {0});
    const Value keep = cast(node("Trilu", {ones, offset}, {{"upper", 0}}, "causal"), DType::kBool);
    scores = where(keep, scores, masked(), "causal");
  }
  return matmul(softmax(scores, -1), v, "context");
}

// ---- result -------------------------------------------------------------------------

void ModelBuilder::require_initializers_used() const {
  std::unordered_set<std::string> used;
  for (const auto& n : impl_->nodes) used.insert(n.inputs.begin(), n.inputs.end());
  for (const auto& r : impl_->outputs) used.insert(r.name);
  for (const auto& r : impl_->initializers) {
    if (!used.count(r.name)) {
      throw UsageError("ModelBuilder::build: initializer '" + r.name +
                       "' is not used by any node or graph output; an emitter made a weight or constant it never "
                       "read");
    }
  }
}

std::string ModelBuilder::build() const {
  if (impl_->outputs.empty()) throw UsageError("ModelBuilder::build: the graph has no output");
  for (const char* key : meta::kRequiredKeys) {
    bool found = false;
    for (const auto& kv : impl_->metadata) found = found || kv.first == key;
    if (!found) throw UsageError(std::string("ModelBuilder::build: metadata '") + key + "' is required");
  }
  require_initializers_used();
  ::onnx::ModelProto model;
  model.set_ir_version(detail::kIrVersion);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(detail::kOpsetVersion);
  model.set_producer_name(impl_->options.producer_name);
  model.set_producer_version(impl_->options.producer_version);
  model.set_model_version(impl_->options.model_version);
  if (!impl_->options.doc.empty()) model.set_doc_string(impl_->options.doc);
  for (const auto& [key, value] : impl_->metadata) {
    auto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }
  auto* graph = model.mutable_graph();
  graph->set_name(impl_->options.graph_name);
  if (!impl_->graph_doc.empty()) graph->set_doc_string(impl_->graph_doc);
  for (const auto& r : impl_->inputs) fill_value_info(graph->add_input(), r);
  for (const auto& r : impl_->outputs) fill_value_info(graph->add_output(), r);
  for (const auto& r : impl_->value_infos) fill_value_info(graph->add_value_info(), r);
  for (const auto& r : impl_->initializers) *graph->add_initializer() = detail::to_tensor_proto(r.data, r.name, r.doc);
  for (const auto& n : impl_->nodes) {
    auto* p = graph->add_node();
    p->set_op_type(n.op_type);
    p->set_name(n.name);
    for (const auto& in : n.inputs) p->add_input(in);
    for (const auto& out : n.outputs) p->add_output(out);
    for (const auto& a : n.attrs) *p->add_attribute() = to_proto(a);
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    throw UsageError("ModelBuilder::build: protobuf cannot serialize the model (over 2 GiB?)");
  }
  return bytes;
}

}  // namespace kmidi::onnx

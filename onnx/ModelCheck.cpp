#include "onnx/ModelCheck.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <climits>
#include <unordered_set>

#include "core/Errors.h"
#include "core/Files.h"
#include "onnx/Metadata.h"
#include "onnx/detail/ProtoConvert.h"

namespace kmidi::onnx {
namespace {

::onnx::ModelProto parse(std::string_view bytes, const std::string& origin) {
  if (bytes.size() >= static_cast<size_t>(INT_MAX)) {
    throw DataError(origin + ": " + std::to_string(bytes.size()) + " bytes; protobuf reads at most 2 GiB");
  }
  ::onnx::ModelProto model;
  if (bytes.empty() || !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw DataError(origin + ": not a serialized ONNX ModelProto (" + std::to_string(bytes.size()) + " bytes)");
  }
  return model;
}

/// onnx's messages span lines; kmidi prints the first line of an error, so fold them.
std::string one_line(const std::string& text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw CheckFailed(origin + ": " + one_line(what));
}

/// An initializer no node reads and no graph output names: onnxruntime warns
/// about it on every load, and it is a sign that the emitter lost a weight.
void check_initializers_used(const ::onnx::GraphProto& graph, const std::string& origin) {
  std::unordered_set<std::string> used;
  for (const auto& node : graph.node()) {
    for (const auto& in : node.input()) used.insert(in);
  }
  for (const auto& out : graph.output()) used.insert(out.name());
  for (const auto& t : graph.initializer()) {
    if (!used.count(t.name())) {
      fail(origin, "initializer '" + t.name() + "' is not used by any node or graph output; expected every "
                   "initializer to be read (remove it from the emitter)");
    }
  }
}

void check_conventions(const ::onnx::ModelProto& model, const std::string& origin) {
  if (model.ir_version() != detail::kIrVersion) {
    fail(origin, "IR version " + std::to_string(model.ir_version()) + "; expected " +
                     std::to_string(detail::kIrVersion));
  }
  for (const auto& opset : model.opset_import()) {
    if (!opset.domain().empty() && opset.domain() != "ai.onnx") {
      fail(origin, "imports operator domain '" + opset.domain() + "'; kmidi graphs use only ai.onnx");
    }
    if (opset.version() != detail::kOpsetVersion) {
      fail(origin, "ai.onnx opset " + std::to_string(opset.version()) + "; expected " +
                       std::to_string(detail::kOpsetVersion));
    }
  }
  std::unordered_set<std::string> keys;
  for (const auto& p : model.metadata_props()) {
    if (!meta::is_valid_key(p.key())) {
      fail(origin, "metadata key '" + p.key() + "' is outside the 'kmidi.' namespace");
    }
    if (!keys.insert(p.key()).second) fail(origin, "metadata key '" + p.key() + "' appears twice");
  }
  for (const char* key : meta::kRequiredKeys) {
    if (!keys.count(key)) fail(origin, std::string("metadata key '") + key + "' is missing");
  }
  // The checker already requires a name, an element type and a shape on every
  // graph input and output.
  const auto& graph = model.graph();
  std::unordered_set<std::string> names;
  for (int i = 0; i < graph.node_size(); ++i) {
    const auto& node = graph.node(i);
    if (node.name().empty()) {
      fail(origin, "node " + std::to_string(i) + " (" + node.op_type() + ") has no name");
    }
    if (!names.insert(node.name()).second) {
      fail(origin, "node name '" + node.name() + "' is used twice");
    }
  }
  check_initializers_used(graph, origin);
}

ValueSpec to_spec(const ::onnx::ValueInfoProto& v, const std::string& origin) {
  ValueSpec spec;
  spec.name = v.name();
  spec.doc = v.doc_string();
  const std::string where = origin + ": graph value '" + v.name() + "'";
  if (!v.type().has_tensor_type()) throw DataError(where + " is not a tensor");
  const auto& tt = v.type().tensor_type();
  spec.dtype = detail::from_proto_dtype(tt.elem_type(), where);
  spec.rank_known = tt.has_shape();
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value()) spec.shape.emplace_back(d.dim_value());
    else if (d.has_dim_param() && !d.dim_param().empty()) spec.shape.emplace_back(d.dim_param());
    else spec.shape.emplace_back();
  }
  return spec;
}

}  // namespace

void check_model(std::string_view bytes, const std::string& origin) {
  ::onnx::ModelProto model = parse(bytes, origin);
  try {
    ::onnx::checker::check_model(model);
  } catch (const ::onnx::checker::ValidationError& e) {
    fail(origin, std::string("onnx checker: ") + e.what());
  }
  try {
    // check_type: inferred and declared types must agree; error_mode 1: a node
    // whose inference fails is an error, not a silently unknown shape.
    const ::onnx::ShapeInferenceOptions options(/*check_type=*/true, /*error_mode=*/1,
                                                /*enable_data_propagation=*/true);
    ::onnx::shape_inference::InferShapes(model, ::onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::runtime_error& e) {  // InferenceError, and merge errors thrown as runtime_error
    fail(origin, std::string("shape inference: ") + e.what());
  }
  check_conventions(model, origin);
}

void check_model_file(const std::string& path) { check_model(files::read_all(path), path); }

std::optional<std::string> OnnxModelInfo::metadata_value(std::string_view key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::vector<std::string> OnnxModelInfo::input_names() const {
  std::vector<std::string> names;
  for (const auto& v : inputs) names.push_back(v.name);
  return names;
}

std::vector<std::string> OnnxModelInfo::output_names() const {
  std::vector<std::string> names;
  for (const auto& v : outputs) names.push_back(v.name);
  return names;
}

OnnxModelInfo parse_model_info(std::string_view bytes, const std::string& origin) {
  const ::onnx::ModelProto model = parse(bytes, origin);
  OnnxModelInfo info;
  info.ir_version = model.ir_version();
  for (const auto& opset : model.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") info.opset = opset.version();
  }
  info.producer_name = model.producer_name();
  info.producer_version = model.producer_version();
  info.doc = model.doc_string();
  const auto& graph = model.graph();
  info.graph_name = graph.name();
  // Graph inputs that are also initializers (allowed since IR 4) are weights, not inputs.
  std::unordered_set<std::string> initializers;
  for (const auto& t : graph.initializer()) {
    initializers.insert(t.name());
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    info.parameter_count += n;
  }
  for (const auto& v : graph.input()) {
    if (!initializers.count(v.name())) info.inputs.push_back(to_spec(v, origin));
  }
  for (const auto& v : graph.output()) info.outputs.push_back(to_spec(v, origin));
  for (const auto& p : model.metadata_props()) info.metadata.emplace_back(p.key(), p.value());
  info.node_count = static_cast<size_t>(graph.node_size());
  info.initializer_count = static_cast<size_t>(graph.initializer_size());
  return info;
}

OnnxModelInfo read_model_info(const std::string& path) { return parse_model_info(files::read_all(path), path); }

}  // namespace kmidi::onnx

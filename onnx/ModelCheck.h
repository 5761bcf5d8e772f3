#pragma once
// Checks a serialized ONNX model the way kmidi requires before it is written
// (onnx checker, strict shape inference, kmidi's conventions) and reads back
// its interface for tests and the nightly pipeline. No protobuf here.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "onnx/Types.h"

namespace kmidi::onnx {

/// Runs, in this order, and throws CheckFailed at the first failure with the
/// reason and, where the failure is in a node, the node's name and op type:
///  1. onnx::checker::check_model (graph well-formed, every node valid for its
///     op schema: known attributes, input counts, topological order, ...);
///  2. onnx::shape_inference::InferShapes with type checks, node errors thrown
///     and data propagation: the inferred types and shapes must agree with the
///     declared graph outputs;
///  3. kmidi's conventions: IR version 8, ai.onnx opset 17 and no other domain,
///     metadata keys in the "kmidi." namespace with kmidi.format_version and
///     kmidi.model_family present, every graph input and output with a tensor
///     type and a shape, every node with a unique non-empty name, every
///     initializer read by a node or named as a graph output.
/// `origin` names the model in messages (a path or "generator graph").
/// Throws DataError when `bytes` is not a serialized ModelProto.
void check_model(std::string_view bytes, const std::string& origin = "ONNX model");

/// check_model on a file's contents; the path names it in messages.
void check_model_file(const std::string& path);

/// A graph input or output as declared.
struct ValueSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  bool rank_known = true;  ///< false when the file declares no shape at all
  Shape shape;             ///< fixed, symbolic ("batch") or unknown dims
  std::string doc;
};

/// What a consumer sees of a model file.
struct OnnxModelInfo {
  int64_t ir_version = 0;
  int64_t opset = 0;  ///< version of the default (ai.onnx) domain
  std::string producer_name, producer_version, graph_name, doc;
  std::vector<ValueSpec> inputs, outputs;  ///< in graph order
  std::vector<std::pair<std::string, std::string>> metadata;  ///< metadata_props in file order
  size_t node_count = 0;
  size_t initializer_count = 0;
  int64_t parameter_count = 0;  ///< elements over all initializers

  /// The value of a metadata key, if present.
  std::optional<std::string> metadata_value(std::string_view key) const;
  std::vector<std::string> input_names() const;
  std::vector<std::string> output_names() const;
};

/// Parses serialized model bytes; throws DataError naming `origin` when they
/// are not a ModelProto or use element types kmidi does not know.
OnnxModelInfo parse_model_info(std::string_view bytes, const std::string& origin = "ONNX model");

/// parse_model_info on a file; throws DataError naming the path.
OnnxModelInfo read_model_info(const std::string& path);

}  // namespace kmidi::onnx

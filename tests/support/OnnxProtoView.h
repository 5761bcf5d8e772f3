#pragma once
// Test-only views of a serialized ONNX model read with the onnx protobuf
// library directly: an account independent of kmidi's checker. Link
// kmidi_onnx_proto_lib to use it.

#include <onnx/onnx_pb.h>

#include <string>
#include <unordered_set>
#include <vector>

namespace kmidi::test {

/// Names of the initializers that no node input and no graph output reads.
/// Throws std::runtime_error when `bytes` is not a ModelProto.
inline std::vector<std::string> unused_initializers(const std::string& bytes) {
  ::onnx::ModelProto model;
  if (!model.ParseFromString(bytes)) throw std::runtime_error("unused_initializers: not an ONNX ModelProto");
  std::unordered_set<std::string> read;
  for (const auto& node : model.graph().node()) read.insert(node.input().begin(), node.input().end());
  for (const auto& output : model.graph().output()) read.insert(output.name());
  std::vector<std::string> unused;
  for (const auto& t : model.graph().initializer()) {
    if (!read.count(t.name())) unused.push_back(t.name());
  }
  return unused;
}

}  // namespace kmidi::test

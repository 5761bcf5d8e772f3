#pragma once
// A task's GraphExport as a checked .onnx file, for the task tests. The
// format version first, the graph, then the graph's own metadata (the
// export pipeline's order), the onnx checker, and an atomic write.

#include <string>

#include "core/Files.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"
#include "train/Task.h"

namespace kmidi::test {

/// Builds `graph`, checks it (errors name `path`) and writes it to `path`.
inline void write_checked_graph(const train::GraphExport& graph, const std::string& path) {
  onnx::ModelBuilder b;
  b.set_metadata(onnx::meta::kFormatVersion, onnx::meta::kCurrentFormatVersion);
  graph.emit(b);
  for (const auto& [key, value] : graph.metadata) b.set_metadata(key, value);
  const std::string bytes = b.build();
  onnx::check_model(bytes, path);
  files::write_atomic(path, bytes);
}

}  // namespace kmidi::test

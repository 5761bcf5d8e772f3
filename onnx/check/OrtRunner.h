#pragma once
// Runs an ONNX file in onnxruntime (the CPU execution provider of
// onnxruntime-node, the runtime the engines use) in a child `node` process
// with a time limit: scripts/ort_run.js does the running, this side moves
// tensors as raw files.

#include <string>
#include <vector>

#include "datasets/Batch.h"

namespace kmidi::onnx {

/// Where node and onnxruntime-node are and how onnxruntime runs.
struct OrtOptions {
  /// onnxruntime's intra-op threads; 1 measures one core, 0 lets onnxruntime choose.
  int intra_op_threads = 1;
  /// Graph optimizations "all" (what the engines use); false runs the graph as written.
  bool optimize = true;
  /// The node process (and its children) is killed after this many seconds.
  double timeout_seconds = 300.0;
  /// The node executable; empty: $KMIDI_NODE, else `node` on PATH.
  std::string node;
  /// Folder holding onnxruntime-node; empty: $KMIDI_NODE_MODULES, else <repo>/node_modules.
  std::string node_modules;
  /// The runner script; empty: $KMIDI_ORT_SCRIPT, else <repo>/scripts/ort_run.js.
  std::string script;
};

/// Runs `model_path` once on `inputs` (CPU tensors of any layout; names must be
/// the graph's input names) and returns the outputs in the graph's output order.
/// Throws UsageError when node, onnxruntime-node or the script is missing
/// (a broken setup, never a skip), CheckFailed when onnxruntime refuses the
/// model or the run, DataError on a timeout or unreadable results.
data::NamedTensors run_onnxruntime(const std::string& model_path, const data::NamedTensors& inputs,
                                   const OrtOptions& options = {});

/// How many runs a latency measurement makes.
struct TimingOptions {
  int warmup_runs = 5;  ///< untimed runs first (allocations, caches)
  int timed_runs = 50;  ///< REQUIRES >= 1
};

/// Wall-clock latency of session.run in onnxruntime, in milliseconds.
struct OrtTiming {
  double median_ms = 0.0;
  double p90_ms = 0.0;  ///< 90th percentile, interpolated between ranks
  std::vector<double> runs_ms;  ///< every timed run, in order
};

/// Times `model_path` on `inputs`: warm-up runs, then timed runs, in one session.
OrtTiming time_onnxruntime(const std::string& model_path, const data::NamedTensors& inputs,
                           const TimingOptions& timing = {}, const OrtOptions& options = {});

}  // namespace kmidi::onnx

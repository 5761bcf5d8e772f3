#pragma once
// "The incremental graph must reproduce the full graph's logits token by
// token": runs both exported graphs in onnxruntime, the incremental one
// streaming (a prompt from an empty cache, then one token per run, each run's
// present_* tensors fed back as the next run's past_*), and compares.

#include <cstdint>
#include <string>

#include "datasets/Batch.h"
#include "onnx/check/OrtRunner.h"
#include "onnx/check/Parity.h"

namespace kmidi::onnx {

struct IncrementalCheckOptions {
  std::string sequence_input = "input_ids";  ///< [batch, sequence]; streamed along axis 1
  std::string logits_output = "logits";      ///< [batch, sequence, vocab] in both graphs
  /// Incremental graph: every input "<past_prefix>X" pairs with the output
  /// "<present_prefix>X"; its symbolic axis "past_sequence" grows by each run's tokens.
  std::string past_prefix = "past_";
  std::string present_prefix = "present_";
  /// Tokens of the first run (from an empty cache); then one token per run. >= 1.
  int64_t prompt_length = 4;
  Tolerance tolerance;
  OrtOptions ort;
};

/// Runs `full_path` on `inputs` (its inputs, e.g. input_ids [B, T] and
/// emotion [B, E]), then `incremental_path` token by token on the same
/// inputs (inputs other than the sequence input are passed whole on every
/// run; the first past tensors are empty: batch from the inputs, the
/// "past_sequence" axis 0, fixed axes as declared) and compares each run's
/// logits with the full graph's logits of the same positions. Throws
/// CheckFailed naming the first run (and its token positions) whose logits
/// differ, or when the incremental graph's interface does not pair past and
/// present tensors. Returns the comparison of all stitched logits.
ParityReport check_incremental_matches_full(const std::string& full_path, const std::string& incremental_path,
                                            const data::NamedTensors& inputs,
                                            const IncrementalCheckOptions& options = {});

}  // namespace kmidi::onnx

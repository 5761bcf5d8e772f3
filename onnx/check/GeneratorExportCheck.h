#pragma once
// The MIDI generator's checks across its graphs, ready to plug into
// train::GraphExport::extra_check (train/Task.h):
//   1. the incremental graph reproduces the full graph's logits token by
//      token (onnx/check/IncrementalCheck.h);
//   2. a consumer decodes ids with nothing but the main file: the tokenizer
//      read back from its metadata alone (onnx/check/TokenizerMetadata.h) is the
//      trained one and decodes the given ids to the same notes.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/Batch.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "onnx/check/IncrementalCheck.h"

namespace kmidi::onnx {

struct GeneratorCheckInputs {
  std::string full_suffix;                  ///< GraphExport::suffix of the full graph ("")
  std::string incremental_suffix = "incremental";
  data::NamedTensors inputs;                ///< input_ids [B, T] and emotion [B, E] for check 1
  std::vector<int32_t> decode_ids;          ///< e.g. generated ids, for check 2 (REQUIRED non-empty)
  IncrementalCheckOptions incremental;
};

/// Runs both checks on the candidate files by suffix. Throws CheckFailed
/// (incremental mismatch; a tokenizer or decoded notes that differ, naming the
/// first differing note), DataError (metadata missing or inconsistent, see
/// tokenizer_from_onnx), UsageError (a suffix absent from `candidates`).
void check_generator_graphs(const std::map<std::string, std::string>& candidates,
                            const tokenizer::Tokenizer& trained_with, const GeneratorCheckInputs& check);

/// check_generator_graphs bound to its arguments, for GraphExport::extra_check.
std::function<void(const std::map<std::string, std::string>&)> generator_extra_check(tokenizer::Tokenizer trained_with,
                                                                                     GeneratorCheckInputs check);

}  // namespace kmidi::onnx

#pragma once
// Autoregressive sampling for the MIDI generator with a KV cache.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/MidiGenerator.h"

namespace kmidi::models {

struct SamplingOptions {
  double temperature = 0.85;        ///< > 0; divides the logits
  int64_t top_k = 40;               ///< keep the k most likely tokens; 0 disables
  double top_p = 0.92;              ///< nucleus: smallest set with this much probability; 1 disables
  double repetition_penalty = 1.1;  ///< >= 1; CTRL-style penalty on tokens already in the sequence
  int64_t max_new_tokens = 256;
  std::vector<int64_t> stop_ids;    ///< generation ends after emitting one of these (e.g. EOS)
  std::vector<int64_t> banned_ids;  ///< never sampled (e.g. PAD, BOS, MASK)
  uint64_t seed = 0;
  /// Throws std::invalid_argument naming the first bad field.
  void validate() const;
};

/// Turns one row of logits [V] into sampling probabilities [V] (float32):
/// repetition penalty over `history`, banned ids, temperature, top-k, top-p.
at::Tensor sampling_probabilities(const at::Tensor& logits, const std::vector<int64_t>& history,
                                  const SamplingOptions& options);

/// Generates up to max_new_tokens after `prompt` (which must be non-empty, e.g.
/// [BOS]) for one emotion vector [E]. Returns prompt + generated ids. Uses the
/// KV cache: each new token costs one incremental step.
std::vector<int64_t> generate(MidiGenerator& model, const std::vector<int64_t>& prompt, const at::Tensor& emotion,
                              const SamplingOptions& options);

}  // namespace kmidi::models

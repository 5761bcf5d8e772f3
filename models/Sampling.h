#pragma once
// Autoregressive sampling for the MIDI generator with a KV cache, optionally
// constrained by the tokenizer's grammar and sharpened by classifier-free
// guidance.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "models/MidiGenerator.h"

namespace kmidi::tokenizer {
class Grammar;
}

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
  /// Classifier-free guidance scale G >= 0: logits = uncond + G * (cond - uncond),
  /// where uncond are the logits for the neutral (zero) emotion vector.
  /// 1 (default): the conditioned logits alone; 0: the neutral ones alone.
  double guidance = 1.0;
  /// When set, only ids the grammar allows next are sampled, so every piece
  /// decodes without a skipped token; the prompt must follow it too.
  std::shared_ptr<const tokenizer::Grammar> grammar;
  /// Throws std::invalid_argument naming the first bad field.
  void validate() const;
};

/// Turns one row of logits [V] into sampling probabilities [V] (float32):
/// repetition penalty over `history`, banned ids, ids outside `allowed`
/// (when given: allowed[id] != 0, size V), temperature, top-k, top-p.
/// Throws std::runtime_error when no id is left to sample.
at::Tensor sampling_probabilities(const at::Tensor& logits, const std::vector<int64_t>& history,
                                  const SamplingOptions& options, const std::vector<uint8_t>* allowed = nullptr);

/// The next-token logits of one piece under guidance. With 0 < G != 1 the
/// conditioned and the neutral row go through one batched forward per step,
/// each with its own KV cache rows; G = 1 runs only the conditioned row and
/// G = 0 only the neutral one.
class GuidedLogits {
 public:
  /// `emotion` [E]; `guidance` as SamplingOptions::guidance.
  GuidedLogits(MidiGenerator model, const at::Tensor& emotion, double guidance);
  /// Appends `ids` (the prompt, then one token per step) after the tokens
  /// seen so far and returns the logits [V] (float32, CPU) of the token after them.
  at::Tensor next(const std::vector<int64_t>& ids);

 private:
  MidiGenerator model_;
  at::Tensor emotion_rows_;  // [1 or 2, E]: conditioned, then neutral
  double guidance_;
  KVCache cache_;
};

/// Generates up to max_new_tokens after `prompt` (which must be non-empty, e.g.
/// [BOS]) for one emotion vector [E]. Returns prompt + generated ids. Uses the
/// KV cache: each new token costs one incremental step. With a grammar,
/// generation also ends when the grammar allows nothing more (after EOS);
/// a prompt the grammar refuses throws std::invalid_argument.
std::vector<int64_t> generate(MidiGenerator& model, const std::vector<int64_t>& prompt, const at::Tensor& emotion,
                              const SamplingOptions& options);

}  // namespace kmidi::models

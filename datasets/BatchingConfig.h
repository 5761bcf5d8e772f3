#pragma once
// `data.batching` of the token-sequence tasks (generator, emotion with
// tokens): how training items are grouped into micro-batches.

#include <cstdint>

#include "core/Config.h"

namespace kmidi::data {

struct BatchingConfig : config::Section {
  /// Token budget of one training micro-batch on one rank: items x the longest
  /// item's tokens (the padded batch tensor) stays within it; items are
  /// grouped by length (train/Sampler.h). 0: train.batch_size items, padded
  /// to the longest. Must be at least the longest row (data.max_length).
  /// Training only: evaluation keeps its fixed batches (train.eval_batch_size).
  /// Under DDP each rank reads one budget-sized micro-batch per micro-step.
  int64_t tokens_per_batch = 0;
  void visit(config::Visitor& v) override {
    v.field("tokens_per_batch", tokens_per_batch,
            config::Spec("token budget per training micro-batch and rank (items x longest row), grouping items of "
                         "similar length instead of padding train.batch_size items; 0 off")
                .non_negative());
  }
};

}  // namespace kmidi::data

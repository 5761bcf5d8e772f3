#pragma once
// The interface every model family's data implements. Datasets know nothing
// of training: a sampler chooses indices, the dataset builds the batch.

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/Batch.h"

namespace kmidi::data {

class Dataset {
 public:
  virtual ~Dataset();
  /// Number of items (sequences, excerpts, clips).
  virtual size_t size() const = 0;
  /// Builds one batch from item indices (padding as needed). Must be safe to
  /// call from a loader thread while the model runs.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const = 0;
  /// Whether batches carry targets (labelled data).
  virtual bool has_targets() const = 0;
  /// A stable identifier of item `index` (source file and offset), for
  /// prediction files and reports.
  virtual std::string item_id(size_t index) const = 0;
  /// Optional cost of an item (e.g. its length), for length-aware batching.
  virtual int64_t item_cost(size_t index) const { return 1; }
  /// Token budget of one training micro-batch (data.batching.tokens_per_batch):
  /// the sampler then groups items so that items x the longest item_cost()
  /// stays within it, instead of taking train.batch_size items. 0: off.
  virtual int64_t tokens_per_batch() const { return 0; }
  /// Called before any batch of training epoch `epoch` is built (never while
  /// one is being built). Data whose items change per epoch (random crops)
  /// follows it; the default ignores it.
  virtual void set_epoch(int64_t epoch) const { (void)epoch; }
};

}  // namespace kmidi::data

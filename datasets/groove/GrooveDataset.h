#pragma once
// Groove windows (GrooveCorpus.h) as batches for the groove humanizer.
//
// Inputs (what a quantized pattern tells; nothing of the performance):
//   hits   float32 [B, T, C]  1 where drum class c is struck on step t
//   tempo  float32 [B, 1]     the window's bpm / 200
//   player int64   [B]        only with a player list: 1 + the index of the
//                             window's player in it, 0 for "any player"
// Targets (labelled data only):
//   offsets     float32 [B, T, C]  onset − grid time in steps, [-0.5, 0.5]
//   velocities  float32 [B, T, C]  velocity / 127
//   mask        float32 [B, T, C]  1 where a hit is (the loss and metrics
//                                  count only these cells)
// T is the window length, C = kDrumClasses. Batch::units is the number of
// hits, whether or not targets are present.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/Dataset.h"
#include "datasets/groove/GrooveCorpus.h"

namespace kmidi::groove {

/// The `player` input's value for `name`: 1 + its index in `players`, or
/// nothing when the list does not hold it.
std::optional<int64_t> player_id(const std::vector<std::string>& players, const std::string& name);

class GrooveDataset final : public data::Dataset {
 public:
  /// `steps`: the window length every item is padded or cut to. With a
  /// non-empty `players`, batches carry the `player` input: with
  /// `player_known`, each item's player (DataError naming the window when it
  /// is not in the list; an item without a player gets 0), else 0 for all.
  GrooveDataset(std::vector<GrooveItem> items, int64_t steps, bool labelled, std::vector<std::string> players = {},
                bool player_known = true);
  size_t size() const override { return items_.size(); }
  data::Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_targets() const override { return labelled_; }
  std::string item_id(size_t index) const override { return items_.at(index).id(); }
  int64_t item_cost(size_t index) const override { return static_cast<int64_t>(items_.at(index).hits.size()); }
  const std::vector<GrooveItem>& items() const { return items_; }
  int64_t steps() const { return steps_; }

 private:
  std::vector<GrooveItem> items_;
  int64_t steps_;
  bool labelled_;
  std::vector<std::string> players_;
  std::vector<int64_t> player_index_;  ///< per item: the `player` input value
};

}  // namespace kmidi::groove

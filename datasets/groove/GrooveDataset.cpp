#include "datasets/groove/GrooveDataset.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/Errors.h"
#include "core/Strings.h"

namespace kmidi::groove {

std::optional<int64_t> player_id(const std::vector<std::string>& players, const std::string& name) {
  const auto it = std::find(players.begin(), players.end(), name);
  if (it == players.end()) return std::nullopt;
  return 1 + (it - players.begin());
}

GrooveDataset::GrooveDataset(std::vector<GrooveItem> items, int64_t steps, bool labelled,
                             std::vector<std::string> players, bool player_known)
    : items_(std::move(items)), steps_(steps), labelled_(labelled), players_(std::move(players)) {
  if (steps_ <= 0) throw UsageError("groove dataset: steps must be positive, got " + std::to_string(steps_));
  if (players_.empty()) return;
  player_index_.assign(items_.size(), 0);
  if (!player_known) return;
  for (size_t i = 0; i < items_.size(); ++i) {
    const std::string& player = items_[i].player;
    if (player.empty()) continue;
    const std::optional<int64_t> id = player_id(players_, player);
    if (!id) {
      throw DataError("groove window " + items_[i].id() + ": player '" + player +
                      "' is not one the model knows (" + strings::join(players_, ", ") + ")");
    }
    player_index_[i] = *id;
  }
}

data::Batch GrooveDataset::get_batch(const std::vector<int64_t>& indices) const {
  const auto b = static_cast<int64_t>(indices.size());
  const int64_t t = steps_, c = kDrumClasses;
  at::Tensor hits = torch::zeros({b, t, c});
  at::Tensor tempo = torch::empty({b, 1});
  at::Tensor offsets = torch::zeros({b, t, c});
  at::Tensor velocities = torch::zeros({b, t, c});
  auto h = hits.accessor<float, 3>();
  auto bpm = tempo.accessor<float, 2>();
  auto o = offsets.accessor<float, 3>();
  auto v = velocities.accessor<float, 3>();
  int64_t units = 0;
  for (int64_t i = 0; i < b; ++i) {
    const GrooveItem& item = items_.at(static_cast<size_t>(indices[static_cast<size_t>(i)]));
    bpm[i][0] = static_cast<float>(item.bpm / 200.0);
    for (const Hit& hit : item.hits) {
      if (hit.step < 0 || hit.step >= t) continue;  // a longer item cut to the window
      h[i][hit.step][hit.drum_class] = 1.0f;
      o[i][hit.step][hit.drum_class] = static_cast<float>(hit.offset_steps);
      v[i][hit.step][hit.drum_class] = static_cast<float>(hit.velocity) / 127.0f;
      ++units;
    }
  }
  data::Batch batch;
  batch.indices = indices;
  batch.inputs.set("hits", hits);
  batch.inputs.set("tempo", tempo);
  if (!players_.empty()) {
    at::Tensor player = torch::empty({b}, torch::kLong);
    int64_t* ids = player.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) ids[i] = player_index_.at(static_cast<size_t>(indices[static_cast<size_t>(i)]));
    batch.inputs.set("player", player);
  }
  if (labelled_) {
    batch.targets.set("offsets", offsets);
    batch.targets.set("velocities", velocities);
    batch.targets.set("mask", hits.clone());
  }
  batch.units = units;
  batch.throughput_units = units;
  return batch;
}

}  // namespace kmidi::groove

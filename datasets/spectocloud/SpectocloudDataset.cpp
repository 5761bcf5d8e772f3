#include "datasets/spectocloud/SpectocloudDataset.h"

#include <torch/torch.h>

#include "core/Errors.h"

namespace kmidi::spectocloud {

SpectocloudDataset::SpectocloudDataset(const std::string& cache_path, const std::string& split) {
  Cache cache = read_cache(cache_path, split);
  header_ = std::move(cache.header);
  items_ = std::move(cache.items);
}

SpectocloudDataset::SpectocloudDataset(CacheHeader header, CacheItems items)
    : header_(std::move(header)), items_(std::move(items)) {}

data::Batch SpectocloudDataset::get_batch(const std::vector<int64_t>& indices) const {
  for (int64_t i : indices) {
    if (i < 0 || i >= items_.size()) {
      throw UsageError("spectocloud dataset: item " + std::to_string(i) + " outside [0, " + std::to_string(items_.size()) + ")");
    }
  }
  const at::Tensor index = torch::tensor(indices, torch::kLong);
  data::Batch b;
  b.indices = indices;
  b.inputs.set("spectrogram", items_.spectrogram.index_select(0, index));
  b.inputs.set("emotion", items_.emotion.index_select(0, index));
  b.inputs.set("midi_features", items_.midi_features.index_select(0, index));
  b.targets.set("positions", items_.positions.index_select(0, index));
  b.targets.set("colors", items_.colors.index_select(0, index));
  b.targets.set("properties", items_.properties.index_select(0, index));
  b.units = static_cast<int64_t>(indices.size());
  b.throughput_units = b.units;
  return b;
}

}  // namespace kmidi::spectocloud

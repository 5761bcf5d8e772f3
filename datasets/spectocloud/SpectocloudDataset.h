#pragma once
// One split of a prepared spectocloud cache (SpectocloudCache.h) as a
// data::Dataset. The split is read into memory once (a few MB per hundred
// excerpts), so batches are built without touching the file and from any
// thread.
//
// Batch: inputs  spectrogram [B, M, T], emotion [B, 64], midi_features [B, 32];
//        targets positions [B, P, 3], colors [B, P, 4], properties [B, P, 3].
// Units: samples (Batch::units = B).

#include <memory>
#include <string>

#include "datasets/Dataset.h"
#include "datasets/spectocloud/SpectocloudCache.h"

namespace kmidi::spectocloud {

class SpectocloudDataset final : public data::Dataset {
 public:
  /// The rows of `split` in `cache_path`; throws DataError (read_cache).
  SpectocloudDataset(const std::string& cache_path, const std::string& split);
  SpectocloudDataset(CacheHeader header, CacheItems items);

  size_t size() const override { return static_cast<size_t>(items_.size()); }
  data::Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_targets() const override { return true; }
  std::string item_id(size_t index) const override { return items_.id.at(index); }

  const CacheHeader& header() const { return header_; }
  const CacheItems& items() const { return items_; }

 private:
  CacheHeader header_;
  CacheItems items_;
};

}  // namespace kmidi::spectocloud

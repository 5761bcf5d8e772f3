#pragma once
// Builds batches from lists of item indices, optionally one batch ahead on a
// background thread so that batch assembly overlaps the model's step. The
// batches and their order depend only on the index lists (and the dataset,
// which must be a deterministic function of the indices), never on timing.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "datasets/Batch.h"
#include "datasets/Dataset.h"

namespace kmidi::train {

class DataLoader {
 public:
  /// Yields dataset.get_batch(requests[i]) for i = 0, 1, ... With `prefetch`,
  /// a worker thread builds batch i + 1 while batch i is in use.
  DataLoader(std::shared_ptr<const data::Dataset> dataset, std::vector<std::vector<int64_t>> requests,
             bool prefetch);
  /// Stops and joins the worker (a batch being built is finished first).
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// The next batch, or nullopt at the end. Rethrows what get_batch threw,
  /// prefixed with the batch number.
  std::optional<data::Batch> next();
  size_t size() const { return requests_.size(); }

 private:
  data::Batch build(size_t index) const;
  void work();

  std::shared_ptr<const data::Dataset> dataset_;
  std::vector<std::vector<int64_t>> requests_;
  bool prefetch_;
  size_t next_to_yield_ = 0;

  // Worker state, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<data::Batch> ready_;
  std::exception_ptr error_;
  size_t next_to_build_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace kmidi::train

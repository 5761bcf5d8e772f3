#include "train/DataLoader.h"

#include <torch/torch.h>

#include "core/Errors.h"

namespace kmidi::train {
namespace {
constexpr size_t kAhead = 1;  // batches built beyond the one in use
}

DataLoader::DataLoader(std::shared_ptr<const data::Dataset> dataset, std::vector<std::vector<int64_t>> requests,
                       bool prefetch)
    : dataset_(std::move(dataset)), requests_(std::move(requests)), prefetch_(prefetch) {
  if (prefetch_ && !requests_.empty()) worker_ = std::thread([this] { work(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

data::Batch DataLoader::build(size_t index) const {
  // Batches are data, never part of the autograd graph.
  torch::NoGradGuard no_grad;
  try {
    return dataset_->get_batch(requests_[index]);
  } catch (const DataError& e) {
    throw DataError("batch " + std::to_string(index) + ": " + e.what());
  }
}

void DataLoader::work() {
  for (;;) {
    size_t index = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || ready_.size() < kAhead; });
      if (stop_ || next_to_build_ >= requests_.size()) return;
      index = next_to_build_++;
    }
    try {
      data::Batch batch = build(index);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      stop_ = true;
    }
    cv_.notify_all();
  }
}

std::optional<data::Batch> DataLoader::next() {
  if (next_to_yield_ >= requests_.size()) return std::nullopt;
  if (!prefetch_) return build(next_to_yield_++);
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !ready_.empty() || error_; });
  if (ready_.empty()) std::rethrow_exception(error_);
  data::Batch batch = std::move(ready_.front());
  ready_.pop_front();
  ++next_to_yield_;
  lock.unlock();
  cv_.notify_all();
  return batch;
}

}  // namespace kmidi::train

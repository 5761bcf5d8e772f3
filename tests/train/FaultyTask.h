#pragma once
// TEST ONLY: a task wrapper that injects the faults the run-health checks
// must catch (a slow or stuck forward, a slow or stuck batch, non-finite
// losses) into a real task, and records which items each training forward saw.

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/Config.h"
#include "tests/train/GrooveFixture.h"
#include "train/Task.h"

namespace kmidi::test {

/// What to break; forwards and batches are counted from 1, 0 is never.
struct FaultConfig : config::Section {
  int64_t nan_at_forward = 0;     ///< training forwards from this one return a NaN loss...
  int64_t nan_forwards = 1;       ///< ...for this many forwards
  int64_t sleep_at_forward = 0;   ///< this training forward sleeps sleep_s first
  double sleep_s = 0.0;
  int64_t sleep_at_batch = 0;     ///< this training batch (get_batch call) sleeps batch_sleep_s; -1: every batch
  double batch_sleep_s = 0.0;
  void visit(config::Visitor& v) override {
    v.field("nan_at_forward", nan_at_forward);
    v.field("nan_forwards", nan_forwards);
    v.field("sleep_at_forward", sleep_at_forward);
    v.field("sleep_s", sleep_s);
    v.field("sleep_at_batch", sleep_at_batch);
    v.field("batch_sleep_s", batch_sleep_s);
  }
};

/// The fixture's sections plus `fault`.
struct FaultyGrooveConfig : config::Section {
  GrooveTaskConfig groove;
  FaultConfig fault;
  void visit(config::Visitor& v) override {
    groove.visit(v);
    v.section("fault", fault);
  }
};

inline void sleep_seconds(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

class SlowDataset final : public data::Dataset {
 public:
  SlowDataset(std::shared_ptr<const data::Dataset> inner, const FaultConfig& fault) : inner_(std::move(inner)), fault_(fault) {}
  size_t size() const override { return inner_->size(); }
  data::Batch get_batch(const std::vector<int64_t>& indices) const override {
    const int64_t n = ++calls_;
    if (fault_.sleep_at_batch == -1 || n == fault_.sleep_at_batch) sleep_seconds(fault_.batch_sleep_s);
    return inner_->get_batch(indices);
  }
  bool has_targets() const override { return inner_->has_targets(); }
  std::string item_id(size_t index) const override { return inner_->item_id(index); }
  int64_t item_cost(size_t index) const override { return inner_->item_cost(index); }
  void set_epoch(int64_t epoch) const override { inner_->set_epoch(epoch); }

 private:
  std::shared_ptr<const data::Dataset> inner_;
  FaultConfig fault_;
  mutable std::atomic<int64_t> calls_{0};
};

class FaultyTask final : public train::Task {
 public:
  FaultyTask(std::unique_ptr<train::Task> inner, const FaultConfig& fault) : inner_(std::move(inner)), fault_(fault) {
    if (auto train = inner_->dataset(train::Split::kTrain)) train_ = std::make_shared<SlowDataset>(train, fault_);
  }
  torch::nn::Module& model() override { return inner_->model(); }
  std::shared_ptr<const data::Dataset> dataset(train::Split split) override {
    return split == train::Split::kTrain ? train_ : inner_->dataset(split);
  }
  train::ForwardOutput forward(const data::Batch& batch, bool training) override {
    if (!training) return inner_->forward(batch, training);
    const int64_t n = ++forwards_;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      forward_indices_.push_back(batch.indices);
    }
    if (n == fault_.sleep_at_forward) sleep_seconds(fault_.sleep_s);
    train::ForwardOutput out = inner_->forward(batch, training);
    if (fault_.nan_at_forward > 0 && n >= fault_.nan_at_forward && n < fault_.nan_at_forward + fault_.nan_forwards) {
      out.loss_sum = out.loss_sum * std::numeric_limits<float>::quiet_NaN();
    }
    return out;
  }
  train::MetricValues finalize(const train::MetricValues& sums, train::Split split) const override {
    return inner_->finalize(sums, split);
  }
  data::NamedTensors predict(const data::Batch& batch) override { return inner_->predict(batch); }
  std::map<std::string, std::string> artifacts() const override { return inner_->artifacts(); }
  void check_artifacts(const std::map<std::string, std::string>& saved) const override { inner_->check_artifacts(saved); }
  bool applies_weight_decay(const std::string& name, const at::Tensor& p) const override {
    return inner_->applies_weight_decay(name, p);
  }
  std::string throughput_unit() const override { return inner_->throughput_unit(); }

  /// The item indices of training forward n (1-based).
  std::vector<int64_t> forward_indices(size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    return forward_indices_.at(n - 1);
  }

 private:
  std::unique_ptr<train::Task> inner_;
  FaultConfig fault_;
  std::shared_ptr<const data::Dataset> train_;
  std::atomic<int64_t> forwards_{0};
  std::mutex mutex_;
  std::vector<std::vector<int64_t>> forward_indices_;
};

/// A registry holding the fixture with faults, as "groove_fixture".
inline const train::TaskRegistry& faulty_registry() {
  static train::TaskRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] {
    registry.add<FaultyGrooveConfig>("groove_fixture", "test fixture with injected faults",
                                     [](FaultyGrooveConfig& c, const train::TaskContext&) {
                                       return std::make_unique<FaultyTask>(std::make_unique<GrooveTask>(c.groove), c.fault);
                                     });
  });
  return registry;
}

}  // namespace kmidi::test

#include "train/DataLoader.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/Errors.h"

namespace kmidi::train {
namespace {

/// Items are their own index; counts calls; fails on request.
class CountingDataset final : public data::Dataset {
 public:
  explicit CountingDataset(size_t n, int64_t fail_at = -1, int delay_ms = 0) : n_(n), fail_at_(fail_at), delay_ms_(delay_ms) {}
  size_t size() const override { return n_; }
  data::Batch get_batch(const std::vector<int64_t>& indices) const override {
    const int call = calls.fetch_add(1);
    if (delay_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    if (call == fail_at_) throw DataError("item " + std::to_string(indices[0]) + " is broken");
    data::Batch b;
    b.indices = indices;
    b.inputs.set("x", torch::tensor(indices));
    b.units = static_cast<int64_t>(indices.size());
    return b;
  }
  bool has_targets() const override { return false; }
  std::string item_id(size_t i) const override { return std::to_string(i); }
  mutable std::atomic<int> calls{0};

 private:
  size_t n_;
  int64_t fail_at_;
  int delay_ms_;
};

std::vector<std::vector<int64_t>> requests() { return {{4, 1}, {0}, {3, 2, 5}, {7}}; }

TEST(DataLoader, YieldsTheRequestedBatchesInOrder) {
  for (bool prefetch : {false, true}) {
    auto ds = std::make_shared<CountingDataset>(8);
    DataLoader loader(ds, requests(), prefetch);
    const auto want = requests();
    for (const auto& r : want) {
      auto b = loader.next();
      ASSERT_TRUE(b.has_value());
      EXPECT_EQ(b->indices, r);
      EXPECT_TRUE(torch::equal(b->inputs.at("x"), torch::tensor(r)));
    }
    EXPECT_FALSE(loader.next().has_value());
    EXPECT_EQ(ds->calls.load(), 4);
  }
}

TEST(DataLoader, PrefetchesOneBatchAhead) {
  auto ds = std::make_shared<CountingDataset>(8);
  DataLoader loader(ds, requests(), true);
  ASSERT_TRUE(loader.next().has_value());
  for (int i = 0; i < 200 && ds->calls.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(ds->calls.load(), 2);  // batch 1 built while batch 0 is in use, and no further
}

TEST(DataLoader, ErrorsReachTheConsumerWithTheBatchNumber) {
  for (bool prefetch : {false, true}) {
    auto ds = std::make_shared<CountingDataset>(8, 2);
    DataLoader loader(ds, requests(), prefetch);
    EXPECT_TRUE(loader.next().has_value());
    EXPECT_TRUE(loader.next().has_value());
    try {
      loader.next();
      FAIL();
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("batch 2: item 3 is broken"), std::string::npos) << e.what();
    }
  }
}

TEST(DataLoader, DestroyingMidwayStopsTheWorker) {
  auto ds = std::make_shared<CountingDataset>(1000, -1, 5);
  std::vector<std::vector<int64_t>> many;
  for (int64_t i = 0; i < 1000; ++i) many.push_back({i});
  const auto start = std::chrono::steady_clock::now();
  {
    DataLoader loader(ds, many, true);
    loader.next();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_LE(ds->calls.load(), 3);
}

}  // namespace
}  // namespace kmidi::train

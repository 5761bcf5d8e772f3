// Token-budget batching (train/Sampler.h, data.batching.tokens_per_batch):
// budgets hold, every item is read once per epoch, orders are seeded and
// resumable, ranks share steps, and padding waste is what a hand count says.

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "core/Errors.h"
#include "train/Sampler.h"

namespace kmidi::train {
namespace {

/// Lengths spread like real clips: many short, a long tail, a few ties.
std::vector<int64_t> clip_lengths(int64_t n, uint64_t seed) {
  SplitMix64 g(seed);
  std::vector<int64_t> costs;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t base = 20 + static_cast<int64_t>(g.below(200));
    costs.push_back(g.below(5) == 0 ? std::min<int64_t>(512, base * 3) : base);
  }
  return costs;
}

SamplerOptions budget_options(int64_t tokens, int64_t micro_steps, int rank, int world) {
  SamplerOptions o;
  o.tokens_per_batch = tokens;
  o.micro_steps = micro_steps;
  o.rank = rank;
  o.world_size = world;
  o.seed = 42;
  o.global_batch = 7;  // ignored with a budget: not a multiple of anything here
  return o;
}

int64_t padded_tokens(const std::vector<int64_t>& batch, const std::vector<int64_t>& costs) {
  int64_t longest = 0;
  for (int64_t i : batch) longest = std::max(longest, costs[static_cast<size_t>(i)]);
  return longest * static_cast<int64_t>(batch.size());
}

TEST(TokenBudget, PaddingWasteMatchesAHandCount) {
  const std::vector<int64_t> costs{10, 8, 8, 3, 5};
  // {0, 1}: 2 x 10 cells for 18 tokens; {2, 3, 4}: 3 x 8 cells for 16 tokens.
  EXPECT_DOUBLE_EQ(padding_waste({{0, 1}, {2, 3, 4}}, costs), 1.0 - 34.0 / 44.0);
  EXPECT_DOUBLE_EQ(padding_waste({{1, 2}}, costs), 0.0);
  EXPECT_DOUBLE_EQ(padding_waste({{3}, {0}}, costs), 0.0);
  EXPECT_DOUBLE_EQ(padding_waste({}, costs), 0.0);
}

TEST(TokenBudget, PackingCutsWhereTheNextItemWouldOverflow) {
  const std::vector<int64_t> costs{100, 90, 60, 50, 50, 10};
  // Budget 200: {100, 90} = 2 x 100; adding 60 would make 3 x 100 = 300.
  // {60, 50, 50} = 3 x 60 = 180; adding 10 would make 4 x 60 = 240.
  const auto batches = pack_by_tokens({0, 1, 2, 3, 4, 5}, costs, 200);
  const std::vector<std::vector<int64_t>> expected{{0, 1}, {2, 3, 4}, {5}};
  EXPECT_EQ(batches, expected);
  try {
    pack_by_tokens({0}, costs, 99);
    FAIL() << "an item longer than the budget must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("tokens_per_batch 99 is smaller than item 0's 100 tokens"), std::string::npos)
        << e.what();
  }
}

TEST(TokenBudget, BalancedCutsPadLessThanGreedyCutsWithAsManyBatches) {
  // Budget 20 over 10, 6, 6, 6, 5, 5: greedy cuts {10, 6} {6, 6, 5} {5} use
  // 20 + 18 + 5 = 43 cells for 38 tokens; {10} {6, 6, 6} {5, 5} use 38.
  const std::vector<int64_t> costs{10, 6, 6, 6, 5, 5};
  const auto batches = pack_by_tokens({0, 1, 2, 3, 4, 5}, costs, 20);
  const std::vector<std::vector<int64_t>> expected{{0}, {1, 2, 3}, {4, 5}};
  EXPECT_EQ(batches, expected);
  EXPECT_DOUBLE_EQ(padding_waste(batches, costs), 0.0);
  EXPECT_THROW(pack_by_tokens({5, 0}, costs, 20), std::logic_error) << "ascending order is refused";
  // On spread lengths: never more batches or padding than greedy cutting.
  const auto lengths = clip_lengths(800, 11);
  std::vector<int64_t> order(800);
  for (int64_t i = 0; i < 800; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return lengths[static_cast<size_t>(a)] > lengths[static_cast<size_t>(b)];
  });
  std::vector<std::vector<int64_t>> greedy;
  for (int64_t i : order) {
    if (greedy.empty() || lengths[static_cast<size_t>(greedy.back()[0])] * static_cast<int64_t>(greedy.back().size() + 1) > 3000) {
      greedy.emplace_back();
    }
    greedy.back().push_back(i);
  }
  const auto balanced = pack_by_tokens(order, lengths, 3000);
  EXPECT_EQ(balanced.size(), greedy.size());
  EXPECT_LT(padding_waste(balanced, lengths), padding_waste(greedy, lengths));
  for (const auto& b : balanced) EXPECT_LE(padded_tokens(b, lengths), 3000);
}

TEST(TokenBudget, NoMicroBatchExceedsTheBudgetAndEveryItemIsReadOncePerEpoch) {
  const auto costs = clip_lengths(1000, 3);
  const TrainSampler sampler(1000, budget_options(2048, 1, 0, 1), costs);
  ASSERT_TRUE(sampler.token_budget());
  for (int64_t epoch : {0, 1, 5}) {
    const auto steps = sampler.epoch_steps(epoch);
    ASSERT_EQ(static_cast<int64_t>(steps.size()), sampler.steps_per_epoch());
    std::map<int64_t, int> seen;
    for (const auto& step : steps) {
      ASSERT_EQ(step.size(), 1u);
      ASSERT_FALSE(step[0].empty());
      EXPECT_LE(padded_tokens(step[0], costs), 2048);
      for (int64_t i : step[0]) ++seen[i];
    }
    ASSERT_EQ(seen.size(), 1000u) << "epoch " << epoch;
    for (const auto& [item, count] : seen) ASSERT_EQ(count, 1) << "item " << item << " epoch " << epoch;
  }
}

TEST(TokenBudget, LengthGroupingKeepsPaddingUnderFivePercentWhereFixedBatchesWasteMore) {
  const auto costs = clip_lengths(1000, 3);
  const TrainSampler sampler(1000, budget_options(4096, 1, 0, 1), costs);
  std::vector<std::vector<int64_t>> micro;
  for (const auto& step : sampler.epoch_steps(0)) micro.push_back(step[0]);
  SamplerOptions fixed;
  fixed.global_batch = 16;
  fixed.seed = 42;
  const double fixed_waste = padding_waste(TrainSampler(1000, fixed, costs).epoch_batches(0), costs);
  EXPECT_LT(padding_waste(micro, costs), 0.05);
  EXPECT_GT(fixed_waste, 0.3) << "random batches of mixed lengths pad heavily";
}

TEST(TokenBudget, OrdersAreSeededPerEpochAndResumeIsAPureFunctionOfThePosition) {
  const auto costs = clip_lengths(300, 9);
  const TrainSampler a(300, budget_options(1024, 1, 0, 1), costs);
  const TrainSampler b(300, budget_options(1024, 1, 0, 1), costs);
  EXPECT_EQ(a.epoch_steps(2), b.epoch_steps(2));
  EXPECT_NE(a.epoch_steps(2), a.epoch_steps(3));
  // Every epoch packs the same number of micro-batches (the step count is fixed).
  for (int64_t epoch = 0; epoch < 6; ++epoch) {
    EXPECT_EQ(static_cast<int64_t>(a.epoch_steps(epoch).size()), a.steps_per_epoch());
  }
  // Another seed gives another order.
  SamplerOptions other = budget_options(1024, 1, 0, 1);
  other.seed = 43;
  EXPECT_NE(TrainSampler(300, other, costs).epoch_steps(2), a.epoch_steps(2));
}

TEST(TokenBudget, RanksShareEachStepAndTheStepDoesNotDependOnHowItSplits) {
  const auto costs = clip_lengths(500, 5);
  // 4 micro-batches per step: 2 ranks x 2 accumulation, 4 ranks x 1, 1 rank x 4.
  const TrainSampler one(500, budget_options(1500, 4, 0, 1), costs);
  const auto steps = one.epoch_steps(1);
  for (const auto& step : steps) ASSERT_EQ(step.size(), 4u);
  for (auto [world, micro] : {std::pair<int, int64_t>{2, 2}, {4, 1}}) {
    for (size_t j = 0; j < steps.size(); ++j) {
      std::multiset<int64_t> step_items, rank_items;
      for (const auto& m : steps[j]) step_items.insert(m.begin(), m.end());
      for (int r = 0; r < world; ++r) {
        const TrainSampler ranked(500, budget_options(1500, micro, r, world), costs);
        ASSERT_EQ(ranked.steps_per_epoch(), one.steps_per_epoch());
        const auto share = ranked.rank_share(ranked.epoch_steps(1)[j]);
        ASSERT_EQ(static_cast<int64_t>(share.size()), micro);
        for (int64_t m = 0; m < micro; ++m) {
          // Micro-batch k = m * world + r of the step.
          EXPECT_EQ(share[static_cast<size_t>(m)], steps[j][static_cast<size_t>(m * world + r)]);
          rank_items.insert(share[static_cast<size_t>(m)].begin(), share[static_cast<size_t>(m)].end());
        }
      }
      EXPECT_EQ(step_items, rank_items) << "world " << world << " step " << j;
    }
  }
}

TEST(TokenBudget, ALastShortStepIsCompletedFromTheEpochsStartOrDropped) {
  const std::vector<int64_t> costs(10, 100);  // budget 200: 5 micro-batches of 2 items
  const TrainSampler wrap(10, budget_options(200, 2, 0, 1), costs);
  ASSERT_EQ(wrap.steps_per_epoch(), 3);
  const auto steps = wrap.epoch_steps(0);
  EXPECT_EQ(steps[2][1], steps[0][0]) << "the sixth micro-batch repeats the first";
  std::set<int64_t> items;
  for (const auto& step : steps) {
    for (const auto& m : step) items.insert(m.begin(), m.end());
  }
  EXPECT_EQ(items.size(), 10u);

  SamplerOptions drop = budget_options(200, 2, 0, 1);
  drop.drop_last = true;
  EXPECT_EQ(TrainSampler(10, drop, costs).steps_per_epoch(), 2);
}

TEST(TokenBudget, ConfigurationErrorsNameTheSetting) {
  const std::vector<int64_t> costs{10, 600, 20};
  auto expect_usage_error = [&](const SamplerOptions& o, const std::vector<int64_t>& c, const std::string& text) {
    try {
      TrainSampler s(3, o, c);
      FAIL() << "expected an error containing: " << text;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  expect_usage_error(budget_options(512, 1, 0, 1), costs, "tokens_per_batch 512 is smaller than item 1's 600 tokens");
  expect_usage_error(budget_options(1024, 1, 0, 1), {10, 20}, "needs one cost per item; got 2 costs for 3 items");
  SamplerOptions both = budget_options(1024, 1, 0, 1);
  both.bucket_batches = 4;
  expect_usage_error(both, costs, "set train.bucket_batches to 0");
  SamplerOptions drop = budget_options(1024, 4, 0, 2);
  drop.drop_last = true;
  expect_usage_error(drop, costs, "fewer than one step's 8 (world size x grad_accumulation)");
}

}  // namespace
}  // namespace kmidi::train

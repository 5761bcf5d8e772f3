#include "train/Sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/Errors.h"

namespace kmidi::train {
namespace {

SamplerOptions options(int64_t batch, int64_t micro_steps, int rank, int world) {
  SamplerOptions o;
  o.global_batch = batch;
  o.micro_steps = micro_steps;
  o.rank = rank;
  o.world_size = world;
  o.seed = 42;
  return o;
}

TEST(Sampler, PermutationIsAPermutationAndSeeded) {
  const auto a = seeded_permutation(1000, 7), b = seeded_permutation(1000, 7), c = seeded_permutation(1000, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
}

TEST(Sampler, BoundedDrawsAreUniform) {
  // 60000 draws below 6: each face near 10000 (chi-square, 5 dof, p < 0.001 -> 20.5).
  SplitMix64 g(123);
  std::vector<int> counts(6);
  for (int i = 0; i < 60000; ++i) ++counts[g.below(6)];
  double chi2 = 0;
  for (int c : counts) chi2 += (c - 10000.0) * (c - 10000.0) / 10000.0;
  EXPECT_LT(chi2, 20.5);
}

TEST(Sampler, RanksGetDisjointShardsThatUnionToTheSingleRankBatch) {
  const int64_t n = 897, batch = 32;
  for (int world : {2, 4}) {
    for (int64_t accum : {int64_t{1}, int64_t{2}}) {
      const TrainSampler single(n, options(batch, 1, 0, 1));
      std::vector<TrainSampler> ranks;
      for (int r = 0; r < world; ++r) ranks.emplace_back(n, options(batch, accum, r, world));
      for (int64_t epoch : {int64_t{0}, int64_t{3}}) {
        const auto global = single.epoch_batches(epoch);
        for (int r = 0; r < world; ++r) {
          EXPECT_EQ(ranks[static_cast<size_t>(r)].epoch_batches(epoch), global) << "the plan is world-size independent";
          EXPECT_EQ(ranks[static_cast<size_t>(r)].steps_per_epoch(), single.steps_per_epoch()) << "equal step counts";
        }
        for (const auto& step : global) {
          std::multiset<int64_t> from_ranks;
          for (int r = 0; r < world; ++r) {
            const auto micro = ranks[static_cast<size_t>(r)].rank_micro_batches(step);
            ASSERT_EQ(static_cast<int64_t>(micro.size()), accum);
            for (const auto& m : micro) {
              ASSERT_EQ(static_cast<int64_t>(m.size()), batch / (world * accum));
              from_ranks.insert(m.begin(), m.end());
            }
          }
          EXPECT_EQ(from_ranks, std::multiset<int64_t>(step.begin(), step.end()));
        }
      }
    }
  }
}

TEST(Sampler, EpochCoversEveryItemAndWrapsTheLastBatch) {
  const int64_t n = 100, batch = 32;
  const TrainSampler s(n, options(batch, 1, 0, 1));
  EXPECT_EQ(s.steps_per_epoch(), 4);  // ceil(100 / 32)
  const auto batches = s.epoch_batches(0);
  std::map<int64_t, int> seen;
  for (const auto& b : batches) {
    EXPECT_EQ(b.size(), 32u);
    for (int64_t i : b) ++seen[i];
  }
  EXPECT_EQ(seen.size(), 100u);  // every item at least once
  int twice = 0;
  for (const auto& [item, count] : seen) twice += count == 2;
  EXPECT_EQ(twice, 28);  // 128 - 100 padded by wrapping to the epoch's start

  SamplerOptions drop = options(batch, 1, 0, 1);
  drop.drop_last = true;
  const TrainSampler d(n, drop);
  EXPECT_EQ(d.steps_per_epoch(), 3);
  std::set<int64_t> unique;
  for (const auto& b : d.epoch_batches(0)) unique.insert(b.begin(), b.end());
  EXPECT_EQ(unique.size(), 96u);  // no duplicates with drop_last
}

TEST(Sampler, ReshufflesEveryEpochDeterministically) {
  const TrainSampler s(500, options(50, 1, 0, 1));
  EXPECT_EQ(s.epoch_batches(1), TrainSampler(500, options(50, 1, 0, 1)).epoch_batches(1));
  EXPECT_NE(s.epoch_batches(0), s.epoch_batches(1));
  SamplerOptions seeded = options(50, 1, 0, 1);
  seeded.seed = 43;
  EXPECT_NE(TrainSampler(500, seeded).epoch_batches(0), s.epoch_batches(0));

  SamplerOptions ordered = options(50, 1, 0, 1);
  ordered.shuffle = false;
  const auto plain = TrainSampler(500, ordered).epoch_batches(2);
  for (int64_t i = 0; i < 500; ++i) EXPECT_EQ(plain[static_cast<size_t>(i / 50)][static_cast<size_t>(i % 50)], i);
}

TEST(Sampler, ResumePositionContinuesTheSameSequence) {
  // A run that stops after step 5 of epoch 2 and resumes at (2, 5) reads
  // exactly the batches an uninterrupted run reads next.
  const TrainSampler s(300, options(20, 1, 0, 1));
  const auto epoch = s.epoch_batches(2);
  const TrainSampler restarted(300, options(20, 1, 0, 1));
  const SamplerPosition position{2, 5};
  const auto again = restarted.epoch_batches(position.epoch);
  for (size_t j = static_cast<size_t>(position.step_in_epoch); j < epoch.size(); ++j) EXPECT_EQ(again[j], epoch[j]);
}

TEST(Sampler, BucketingGroupsSimilarCosts) {
  std::vector<int64_t> costs(400);
  for (int64_t i = 0; i < 400; ++i) costs[static_cast<size_t>(i)] = (i * 37) % 101;
  SamplerOptions o = options(20, 1, 0, 1);
  o.bucket_batches = 20;  // one window = the whole epoch
  const TrainSampler s(400, o, costs);
  const auto batches = s.epoch_batches(0);
  std::multiset<int64_t> all;
  double spread = 0;
  for (const auto& b : batches) {
    int64_t lo = 1000, hi = -1;
    for (int64_t i : b) {
      all.insert(i);
      lo = std::min(lo, costs[static_cast<size_t>(i)]);
      hi = std::max(hi, costs[static_cast<size_t>(i)]);
    }
    spread += static_cast<double>(hi - lo);
  }
  EXPECT_EQ(all.size(), 400u);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 400u);
  EXPECT_LT(spread / static_cast<double>(batches.size()), 10.0);  // unsorted batches spread ~95
  EXPECT_NE(batches.front(), TrainSampler(400, o, costs).epoch_batches(1).front());
}

TEST(Sampler, EvaluationReadsEveryItemOnce) {
  for (int world : {1, 2, 3, 4}) {
    std::multiset<int64_t> seen;
    for (int r = 0; r < world; ++r) {
      for (const auto& b : evaluation_batches(129, 16, r, world)) {
        EXPECT_LE(b.size(), 16u);
        seen.insert(b.begin(), b.end());
      }
    }
    EXPECT_EQ(seen.size(), 129u) << "world " << world;
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 129u) << "no duplicates, world " << world;
  }
}

TEST(Sampler, ErrorsNameTheSettings) {
  try {
    TrainSampler(100, options(30, 2, 0, 4));
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("train.batch_size 30 must be a multiple of world size 4 x train.grad_accumulation 2"),
              std::string::npos);
  }
  SamplerOptions drop = options(64, 1, 0, 1);
  drop.drop_last = true;
  try {
    TrainSampler(10, drop);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one batch"), std::string::npos);
  }
}

}  // namespace
}  // namespace kmidi::train

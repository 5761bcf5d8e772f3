#include "train/Sampler.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/Errors.h"
#include "core/SplitMix64.h"

namespace kmidi::train {

uint64_t SplitMix64::next() { return random::splitmix64_finalise(state_ += random::kSplitMixGolden); }

uint64_t SplitMix64::below(uint64_t bound) {
  // Lemire, "Fast Random Integer Generation in an Interval" (2019).
  uint64_t x = next();
  __uint128_t m = static_cast<__uint128_t>(x) * bound;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      x = next();
      m = static_cast<__uint128_t>(x) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  SplitMix64 g(a);
  uint64_t h = g.next() ^ (b * 0xD6E8FEB86659FD93ull);
  SplitMix64 g2(h);
  h = g2.next() ^ (c * 0x9E3779B97F4A7C15ull);
  SplitMix64 g3(h);
  return g3.next();
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  SplitMix64 g(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(g.below(static_cast<uint64_t>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

TrainSampler::TrainSampler(int64_t dataset_size, SamplerOptions options, std::vector<int64_t> item_costs)
    : size_(dataset_size), options_(options), costs_(std::move(item_costs)) {
  const int64_t ranks_x_steps = static_cast<int64_t>(options_.world_size) * options_.micro_steps;
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    throw UsageError("sampler: rank " + std::to_string(options_.rank) + " is outside world size " +
                     std::to_string(options_.world_size));
  }
  // With a token budget, train.batch_size plays no part.
  if (options_.tokens_per_batch == 0 &&
      (options_.micro_steps < 1 || options_.global_batch < 1 || options_.global_batch % ranks_x_steps != 0)) {
    throw UsageError("train.batch_size " + std::to_string(options_.global_batch) +
                     " must be a multiple of world size " + std::to_string(options_.world_size) +
                     " x train.grad_accumulation " + std::to_string(options_.micro_steps) + " = " +
                     std::to_string(ranks_x_steps));
  }
  if (size_ <= 0) throw DataError("the train split has no items: nothing to train on");
  if (options_.tokens_per_batch > 0) {
    init_token_budget();
    return;
  }
  micro_ = options_.global_batch / ranks_x_steps;
  steps_per_epoch_ = options_.drop_last ? size_ / options_.global_batch
                                        : (size_ + options_.global_batch - 1) / options_.global_batch;
  if (steps_per_epoch_ == 0) {
    throw UsageError("train.drop_last is on but the training data has " + std::to_string(size_) +
                     " items, fewer than one batch of train.batch_size " + std::to_string(options_.global_batch));
  }
  if (options_.bucket_batches > 0 && static_cast<int64_t>(costs_.size()) != size_) {
    throw UsageError("train.bucket_batches needs one cost per item; got " + std::to_string(costs_.size()) +
                     " costs for " + std::to_string(size_) + " items");
  }
}

void TrainSampler::init_token_budget() {
  if (options_.micro_steps < 1) throw UsageError("train.grad_accumulation must be at least 1");
  if (static_cast<int64_t>(costs_.size()) != size_) {
    throw UsageError("data.batching.tokens_per_batch needs one cost per item; got " + std::to_string(costs_.size()) +
                     " costs for " + std::to_string(size_) + " items");
  }
  if (options_.bucket_batches > 0) {
    throw UsageError("train.bucket_batches is " + std::to_string(options_.bucket_batches) +
                     " but data.batching.tokens_per_batch is set: the token budget already groups items by length; "
                     "set train.bucket_batches to 0");
  }
  // Every epoch packs the same sorted costs, so this count holds for all.
  std::vector<int64_t> sorted(static_cast<size_t>(size_));
  std::iota(sorted.begin(), sorted.end(), int64_t{0});
  std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t a, int64_t b) {
    return costs_[static_cast<size_t>(a)] > costs_[static_cast<size_t>(b)];
  });
  const auto micro_batches = static_cast<int64_t>(pack_by_tokens(sorted, costs_, options_.tokens_per_batch).size());
  const int64_t per_step = micro_batches_per_step();
  steps_per_epoch_ = options_.drop_last ? micro_batches / per_step : (micro_batches + per_step - 1) / per_step;
  if (steps_per_epoch_ == 0) {
    throw UsageError("train.drop_last is on but the training data packs into " + std::to_string(micro_batches) +
                     " micro-batches of data.batching.tokens_per_batch " + std::to_string(options_.tokens_per_batch) +
                     " tokens, fewer than one step's " + std::to_string(per_step) + " (world size x grad_accumulation)");
  }
}

int64_t TrainSampler::micro_batches_per_step() const {
  return static_cast<int64_t>(options_.world_size) * options_.micro_steps;
}

std::vector<std::vector<int64_t>> TrainSampler::budget_micro_batches(int64_t epoch) const {
  const uint64_t epoch_seed = mix_seed(options_.seed, static_cast<uint64_t>(epoch), 0x5A4D);
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = seeded_permutation(size_, epoch_seed);
  } else {
    order.resize(static_cast<size_t>(size_));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  // Longest first; equal costs keep the epoch's random order.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return costs_[static_cast<size_t>(a)] > costs_[static_cast<size_t>(b)];
  });
  std::vector<std::vector<int64_t>> micro = pack_by_tokens(order, costs_, options_.tokens_per_batch);
  if (options_.shuffle) {
    SplitMix64 g(mix_seed(epoch_seed, 0x70CE45));
    for (auto i = static_cast<int64_t>(micro.size()) - 1; i > 0; --i) {
      const auto k = static_cast<int64_t>(g.below(static_cast<uint64_t>(i + 1)));
      std::swap(micro[static_cast<size_t>(i)], micro[static_cast<size_t>(k)]);
    }
  }
  return micro;
}

std::vector<std::vector<std::vector<int64_t>>> TrainSampler::epoch_steps(int64_t epoch) const {
  const int64_t per_step = micro_batches_per_step();
  std::vector<std::vector<std::vector<int64_t>>> steps(static_cast<size_t>(steps_per_epoch_));
  if (!token_budget()) {
    const auto batches = epoch_batches(epoch);
    for (size_t j = 0; j < batches.size(); ++j) {
      for (int64_t k = 0; k < per_step; ++k) {
        steps[j].emplace_back(batches[j].begin() + k * micro_, batches[j].begin() + (k + 1) * micro_);
      }
    }
    return steps;
  }
  const auto micro = budget_micro_batches(epoch);
  for (int64_t j = 0; j < steps_per_epoch_; ++j) {
    for (int64_t k = 0; k < per_step; ++k) {
      // Past the end: the epoch's first micro-batches complete the last step.
      steps[static_cast<size_t>(j)].push_back(micro[static_cast<size_t>((j * per_step + k) % static_cast<int64_t>(micro.size()))]);
    }
  }
  return steps;
}

std::vector<std::vector<int64_t>> TrainSampler::rank_share(const std::vector<std::vector<int64_t>>& step) const {
  if (static_cast<int64_t>(step.size()) != micro_batches_per_step()) {
    throw std::logic_error("rank_share: got " + std::to_string(step.size()) + " micro-batches, expected " +
                           std::to_string(micro_batches_per_step()));
  }
  std::vector<std::vector<int64_t>> out;
  for (int64_t m = 0; m < options_.micro_steps; ++m) out.push_back(step[static_cast<size_t>(m * options_.world_size + options_.rank)]);
  return out;
}

std::vector<std::vector<int64_t>> TrainSampler::epoch_batches(int64_t epoch) const {
  if (token_budget()) throw std::logic_error("epoch_batches: the sampler batches by token budget; use epoch_steps");
  const uint64_t epoch_seed = mix_seed(options_.seed, static_cast<uint64_t>(epoch), 0x5A4D);
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = seeded_permutation(size_, epoch_seed);
  } else {
    order.resize(static_cast<size_t>(size_));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  const int64_t B = options_.global_batch;
  const int64_t needed = steps_per_epoch_ * B;
  std::vector<int64_t> items(static_cast<size_t>(needed));
  for (int64_t i = 0; i < needed; ++i) items[static_cast<size_t>(i)] = order[static_cast<size_t>(i % size_)];

  std::vector<std::vector<int64_t>> batches(static_cast<size_t>(steps_per_epoch_));
  if (options_.bucket_batches > 0) {
    // Sort each window by cost (longest first), cut it into batches, then
    // shuffle the batches of the whole epoch so that costs do not trend.
    const int64_t window = options_.bucket_batches * B;
    for (int64_t start = 0; start < needed; start += window) {
      const auto first = items.begin() + start;
      const auto last = items.begin() + std::min(needed, start + window);
      std::stable_sort(first, last, [&](int64_t a, int64_t b) {
        return costs_[static_cast<size_t>(a)] > costs_[static_cast<size_t>(b)];
      });
    }
  }
  for (int64_t j = 0; j < steps_per_epoch_; ++j) {
    batches[static_cast<size_t>(j)].assign(items.begin() + j * B, items.begin() + (j + 1) * B);
  }
  if (options_.bucket_batches > 0 && options_.shuffle) {
    SplitMix64 g(mix_seed(epoch_seed, 0xB0C4E7));
    for (int64_t i = steps_per_epoch_ - 1; i > 0; --i) {
      const auto k = static_cast<int64_t>(g.below(static_cast<uint64_t>(i + 1)));
      std::swap(batches[static_cast<size_t>(i)], batches[static_cast<size_t>(k)]);
    }
  }
  return batches;
}

std::vector<std::vector<int64_t>> TrainSampler::rank_micro_batches(const std::vector<int64_t>& global_batch) const {
  if (static_cast<int64_t>(global_batch.size()) != options_.global_batch) {
    throw std::logic_error("rank_micro_batches: got " + std::to_string(global_batch.size()) + " items, expected " +
                           std::to_string(options_.global_batch));
  }
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(options_.micro_steps));
  for (int64_t m = 0; m < options_.micro_steps; ++m) {
    const int64_t begin = (m * options_.world_size + options_.rank) * micro_;
    out[static_cast<size_t>(m)].assign(global_batch.begin() + begin, global_batch.begin() + begin + micro_);
  }
  return out;
}

namespace {

/// Coordinate descent on the cuts of a descending cost sequence: each cut
/// between two neighbouring batches moves to where their padded sizes sum
/// least within the budget, until no cut moves (or a pass limit). The batch
/// count stays; the padding never grows.
void balance_cuts(std::vector<size_t>& starts, const std::vector<int64_t>& cost, int64_t budget) {
  const auto cells = [&](size_t begin, size_t end) { return static_cast<int64_t>(end - begin) * cost[begin]; };
  bool moved = true;
  for (int pass = 0; moved && pass < 32; ++pass) {
    moved = false;
    for (size_t k = 0; k + 2 < starts.size(); ++k) {
      const size_t begin = starts[k], end = starts[k + 2];
      size_t best = starts[k + 1];
      int64_t best_cells = cells(begin, best) + cells(best, end);
      for (size_t cut = begin + 1; cut < end && cells(begin, cut) <= budget; ++cut) {
        if (cells(cut, end) > budget) continue;
        const int64_t total = cells(begin, cut) + cells(cut, end);
        if (total < best_cells) {
          best = cut;
          best_cells = total;
        }
      }
      if (best != starts[k + 1]) {
        starts[k + 1] = best;
        moved = true;
      }
    }
  }
}

}  // namespace

std::vector<std::vector<int64_t>> pack_by_tokens(const std::vector<int64_t>& items, const std::vector<int64_t>& costs,
                                                 int64_t tokens_per_batch) {
  std::vector<int64_t> cost;  // in `items` order, at least 1
  for (int64_t item : items) {
    cost.push_back(std::max<int64_t>(1, costs[static_cast<size_t>(item)]));
    if (cost.back() > tokens_per_batch) {
      throw UsageError("data.batching.tokens_per_batch " + std::to_string(tokens_per_batch) + " is smaller than item " +
                       std::to_string(item) + "'s " + std::to_string(cost.back()) +
                       " tokens; raise it to at least the longest row (data.max_length)");
    }
    if (cost.size() > 1 && cost.back() > cost[cost.size() - 2]) {
      throw std::logic_error("pack_by_tokens: items must come in descending cost order");
    }
  }
  // Greedy cuts give the fewest batches; balancing them then lowers the padding.
  std::vector<size_t> starts;
  for (size_t i = 0; i < cost.size(); ++i) {
    if (starts.empty() || static_cast<int64_t>(i - starts.back() + 1) * cost[starts.back()] > tokens_per_batch) {
      starts.push_back(i);
    }
  }
  starts.push_back(cost.size());
  balance_cuts(starts, cost, tokens_per_batch);
  std::vector<std::vector<int64_t>> batches;
  for (size_t k = 0; k + 1 < starts.size(); ++k) {
    batches.emplace_back(items.begin() + static_cast<std::ptrdiff_t>(starts[k]),
                         items.begin() + static_cast<std::ptrdiff_t>(starts[k + 1]));
  }
  return batches;
}

double padding_waste(const std::vector<std::vector<int64_t>>& batches, const std::vector<int64_t>& costs) {
  double real = 0, cells = 0;
  for (const auto& batch : batches) {
    int64_t longest = 0;
    for (int64_t item : batch) {
      const int64_t cost = costs[static_cast<size_t>(item)];
      real += static_cast<double>(cost);
      longest = std::max(longest, cost);
    }
    cells += static_cast<double>(longest) * static_cast<double>(batch.size());
  }
  return cells > 0 ? 1.0 - real / cells : 0.0;
}

std::vector<std::vector<int64_t>> evaluation_batches(int64_t dataset_size, int64_t batch_size, int rank,
                                                     int world_size) {
  if (batch_size < 1) throw UsageError("evaluation batch size must be positive, got " + std::to_string(batch_size));
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw UsageError("evaluation: rank " + std::to_string(rank) + " is outside world size " + std::to_string(world_size));
  }
  const int64_t begin = dataset_size * rank / world_size;
  const int64_t end = dataset_size * (rank + 1) / world_size;
  std::vector<std::vector<int64_t>> batches;
  for (int64_t i = begin; i < end; i += batch_size) {
    std::vector<int64_t> b;
    for (int64_t k = i; k < std::min(end, i + batch_size); ++k) b.push_back(k);
    batches.push_back(std::move(b));
  }
  return batches;
}

}  // namespace kmidi::train

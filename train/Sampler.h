#pragma once
// Which items each rank reads at each step.
//
// Training: every epoch has one seeded permutation of the items (or their
// natural order when shuffle is off), cut into global batches of
// `global_batch` items. Optimizer step j of the epoch uses global batch j;
// rank r's micro-step m reads the contiguous slice
//   [(m * world_size + r) * micro, (m * world_size + r + 1) * micro),
//   micro = global_batch / (world_size * micro_steps).
// So each rank reads a disjoint shard, every rank takes the same number of
// steps, and the items of a step do not depend on the world size or on the
// accumulation: 2 ranks x half a batch see exactly what 1 rank x a full batch sees.
//
// An epoch has ceil(N / global_batch) steps; the last batch is completed by
// wrapping around to the start of the epoch's order (some items are seen
// twice that epoch), or dropped with drop_last (floor(N / global_batch) steps).
//
// Token-budget batching (tokens_per_batch > 0, from data.batching): the
// epoch's seeded permutation is stably sorted by item cost (its length in
// tokens), longest first, and cut into as few micro-batches as fit the
// budget (padded size: items x the longest item's cost), the cuts then moved
// to where they pad least (pack_by_tokens). The
// micro-batches are then shuffled (seeded by the epoch) and taken K =
// world_size x micro_steps per optimizer step: micro-batch k of a step goes
// to rank k % world_size at micro-step k / world_size. So each rank gets one
// budget-sized share per micro-step, and a step's items depend on K, not on
// how K splits into ranks and accumulation. The sorted costs, hence the
// number of micro-batches, are the same every epoch; a last step short of K
// micro-batches is completed from the epoch's first ones (drop_last drops it).
//
// The position to resume from is (epoch, steps done in the epoch): it holds
// for any world size. Evaluation reads every item exactly once across ranks.
//
// Torch-free: the permutation comes from a fixed generator (splitmix64 with
// unbiased bounded draws), so the order is the same on every platform and
// standard library.

#include <cstdint>
#include <vector>

namespace kmidi::train {

struct SamplerOptions {
  int64_t global_batch = 1;  ///< items per optimizer step over all ranks and micro-steps
  int64_t micro_steps = 1;   ///< gradient accumulation
  int rank = 0;
  int world_size = 1;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  /// Sort by item cost within windows of this many global batches, then
  /// shuffle the batches (less padding for variable-length items); 0: off.
  int64_t bucket_batches = 0;
  /// Token budget of one micro-batch: items x the longest item's cost; 0:
  /// fixed micro-batches of global_batch / (world_size x micro_steps) items.
  int64_t tokens_per_batch = 0;
};

/// Where a training run stands in its data.
struct SamplerPosition {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;  ///< optimizer steps already taken in `epoch`
};

class TrainSampler {
 public:
  /// `item_costs` (size `dataset_size`) is needed only for bucketing and
  /// token budgets. Throws UsageError when the batch does not split over ranks
  /// and micro-steps, when the data cannot fill one batch with drop_last, or
  /// when an item alone exceeds the token budget.
  TrainSampler(int64_t dataset_size, SamplerOptions options, std::vector<int64_t> item_costs = {});

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  /// Items per micro-batch with fixed batches; 0 with a token budget.
  int64_t micro_batch_size() const { return micro_; }
  const SamplerOptions& options() const { return options_; }
  bool token_budget() const { return options_.tokens_per_batch > 0; }
  /// Micro-batches per optimizer step over all ranks: world_size x micro_steps.
  int64_t micro_batches_per_step() const;

  /// The micro-batches of every step of `epoch`, in step order:
  /// steps_per_epoch() lists of micro_batches_per_step() item lists. With
  /// fixed batches, micro-batch k is the k-th slice of epoch_batches()'s step.
  std::vector<std::vector<std::vector<int64_t>>> epoch_steps(int64_t epoch) const;

  /// This rank's micro-batches (micro_steps lists) of one step of epoch_steps().
  std::vector<std::vector<int64_t>> rank_share(const std::vector<std::vector<int64_t>>& step) const;

  /// The global batches of `epoch`, in step order: steps_per_epoch() lists of
  /// global_batch item indices (fixed batches only).
  std::vector<std::vector<int64_t>> epoch_batches(int64_t epoch) const;

  /// This rank's micro-batches (micro_steps lists) of one global batch.
  std::vector<std::vector<int64_t>> rank_micro_batches(const std::vector<int64_t>& global_batch) const;

 private:
  void init_token_budget();
  /// The epoch's token-budget micro-batches, shuffled, before grouping into steps.
  std::vector<std::vector<int64_t>> budget_micro_batches(int64_t epoch) const;

  int64_t size_;
  SamplerOptions options_;
  std::vector<int64_t> costs_;
  int64_t steps_per_epoch_ = 0, micro_ = 0;
};

/// Evaluation order: items 0..N-1 split into contiguous per-rank shards of
/// nearly equal size (rank r gets [r*N/W, (r+1)*N/W)), then into batches.
/// Every item is read exactly once over all ranks; ranks may take different
/// numbers of batches (evaluation has no collective inside its loop).
std::vector<std::vector<int64_t>> evaluation_batches(int64_t dataset_size, int64_t batch_size, int rank,
                                                     int world_size);

/// Cuts `items`, in descending cost order, into consecutive groups whose size
/// x largest (first) cost stays within `tokens_per_batch`: as few groups as
/// greedy cutting gives, with the cuts then moved to lower the padding. An
/// item of cost 0 counts as 1. Throws UsageError when one item alone exceeds
/// the budget (std::logic_error when the order is not descending).
std::vector<std::vector<int64_t>> pack_by_tokens(const std::vector<int64_t>& items, const std::vector<int64_t>& costs,
                                                 int64_t tokens_per_batch);

/// Fraction of a batch tensor's cells that are padding: 1 - sum of the items'
/// costs / sum over batches of (items x longest cost). 0 for no batches.
double padding_waste(const std::vector<std::vector<int64_t>>& batches, const std::vector<int64_t>& costs);

/// A small, fully specified generator (splitmix64) for orders that must be
/// identical everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  /// Uniform in [0, bound), without modulo bias (Lemire's method).
  uint64_t below(uint64_t bound);

 private:
  uint64_t state_;
};

/// A seeded permutation of 0..n-1 (Fisher-Yates).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

/// Mixes several values into one seed.
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

}  // namespace kmidi::train

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
};

/// Where a training run stands in its data.
struct SamplerPosition {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;  ///< optimizer steps already taken in `epoch`
};

class TrainSampler {
 public:
  /// `item_costs` (size `dataset_size`) is needed only for bucketing. Throws
  /// UsageError when the batch does not split over ranks and micro-steps, or
  /// when the data cannot fill one batch with drop_last.
  TrainSampler(int64_t dataset_size, SamplerOptions options, std::vector<int64_t> item_costs = {});

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t micro_batch_size() const { return micro_; }
  const SamplerOptions& options() const { return options_; }

  /// The global batches of `epoch`, in step order: steps_per_epoch() lists of
  /// global_batch item indices.
  std::vector<std::vector<int64_t>> epoch_batches(int64_t epoch) const;

  /// This rank's micro-batches (micro_steps lists) of one global batch.
  std::vector<std::vector<int64_t>> rank_micro_batches(const std::vector<int64_t>& global_batch) const;

 private:
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

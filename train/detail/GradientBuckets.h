#pragma once
// Data-parallel gradient synchronisation that overlaps with backward.
// Private to train/; the trainer sees GradientSynchronizer.
//
// Design: the parameters that require grad are laid out, in reverse
// registration order (roughly the order in which backward produces their
// gradients), in flat buckets of about bucket_mb, one dtype per bucket. A
// post-hook on each parameter's gradient accumulator fires once .grad holds
// this backward's contribution; it copies .grad into the parameter's slice of
// its bucket. When a bucket's last slice arrives the bucket is all-reduced
// asynchronously while backward goes on. Buckets are launched strictly in
// index order (a ready bucket waits for earlier ones), so every rank issues
// the same collectives in the same order. finish() fills what backward did
// not produce, launches the rest, waits, and makes each .grad a view of its
// slice (a copy only for non-contiguous parameters). From then on backward
// accumulates into the buckets themselves, and neither the copy in nor the
// copy out is paid, as long as gradients are zeroed in place (the trainer's
// optimizers do); a .grad reset to undefined is copied in again.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/Distributed.h"

namespace kmidi::train::detail {

class Collectives;

/// One bucket's layout, for logs and tests.
struct BucketLayout {
  std::vector<std::string> parameters;  ///< names, in the order they sit in the bucket
  int64_t numel = 0;
};

class BucketedSynchronizer final : public GradientSynchronizer {
 public:
  BucketedSynchronizer(std::shared_ptr<Collectives> collectives, torch::nn::Module& module, double bucket_mb,
                       bool find_unused_parameters);
  /// Removes the hooks: later backward passes no longer communicate.
  ~BucketedSynchronizer() override;

  void set_enabled(bool enabled) override;
  void finish() override;

  std::vector<BucketLayout> layout() const;
  /// How many buckets the last finished step had launched while backward was
  /// still running (the rest were launched by finish()): the measure of overlap.
  size_t buckets_launched_during_last_backward() const { return launched_during_last_backward_; }
  /// How many parameters' .grad is a view of their bucket slice right now (of
  /// parameter_count()): after a step, all of them unless some are non-contiguous.
  size_t gradients_in_buckets() const;
  int64_t bucket_cap_bytes() const { return cap_bytes_; }
  size_t parameter_count() const;

  struct Core;         // shared with the hooks; defined in the .cpp
  struct HookHandles;  // the accumulators' pointer type changes between LibTorch versions

 private:
  std::shared_ptr<Core> core_;
  size_t launched_during_last_backward_ = 0;
  int64_t cap_bytes_ = 0;
  std::unique_ptr<HookHandles> hooks_;
};

/// Splits parameters (given in registration order, with their sizes in
/// bytes and a dtype key) into buckets of at most `cap_bytes` (a larger
/// parameter gets a bucket of its own), walking them in reverse. Returns
/// per bucket the parameters' indices, in bucket order. Exposed for tests.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<int64_t>& bytes, const std::vector<int>& dtype_keys,
                                              int64_t cap_bytes);

}  // namespace kmidi::train::detail

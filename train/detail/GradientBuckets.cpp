#include "train/detail/GradientBuckets.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "core/Errors.h"
#include "core/Strings.h"
#include "train/detail/Collectives.h"

namespace kmidi::train::detail {

std::vector<std::vector<size_t>> plan_buckets(const std::vector<int64_t>& bytes, const std::vector<int>& dtype_keys,
                                              int64_t cap_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t k = bytes.size(); k-- > 0;) {
    const bool fits = !buckets.empty() && filled + bytes[k] <= cap_bytes &&
                      dtype_keys[buckets.back().front()] == dtype_keys[k];
    if (!fits) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(k);
    filled += bytes[k];
  }
  return buckets;
}

struct BucketedSynchronizer::Core {
  struct Slot {
    std::string name;
    at::Tensor parameter;
    size_t bucket = 0;
    int64_t offset = 0;
    at::Tensor view;             ///< the parameter's slice of its bucket, shaped like it
    bool grad_is_view = false;  ///< .grad may live in the bucket (contiguous, same device)
  };
  struct Bucket {
    at::Tensor flat;             ///< [numel] on the collectives' device
    std::vector<size_t> slots;   ///< indices into `slots`
    size_t pending = 0;          ///< slices still missing in this step
    c10::intrusive_ptr<c10d::Work> work;
  };

  std::shared_ptr<Collectives> collectives;
  bool find_unused = false;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;

  std::mutex mutex;
  bool enabled = true;
  std::vector<char> ready;  ///< slice filled for the synchronised backward
  std::vector<char> used;   ///< got a gradient since the last finish(), in any backward
  size_t next_launch = 0;   ///< buckets before this one have been launched

  /// Whether .grad already is the parameter's slice: backward accumulated
  /// straight into the bucket and there is nothing to copy.
  bool grad_in_bucket(size_t i, const at::Tensor& gradient) const {
    const Slot& s = slots[i];
    return s.grad_is_view && gradient.defined() && !gradient.is_sparse() &&
           gradient.data_ptr() == s.view.data_ptr() && gradient.sizes() == s.view.sizes() &&
           gradient.strides() == s.view.strides();
  }

  void fill(size_t i, const at::Tensor& gradient) {
    at::NoGradGuard no_grad;
    if (gradient.defined()) {
      if (gradient.is_sparse()) {
        throw UsageError("parameter '" + slots[i].name +
                         "' has a sparse gradient; gradient synchronisation supports dense gradients only");
      }
      if (!grad_in_bucket(i, gradient)) slots[i].view.copy_(gradient);
    } else {
      slots[i].view.zero_();
    }
    ready[i] = 1;
    --buckets[slots[i].bucket].pending;
  }

  /// Launches every complete bucket from next_launch on, in order.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch];
      b.work = collectives->all_reduce(b.flat);
      ++next_launch;
    }
  }

  /// Called by a parameter's hook once its .grad holds this backward's contribution.
  void on_gradient(size_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    used[i] = 1;
    if (!enabled) return;  // an accumulation micro-step: .grad keeps accumulating locally
    if (ready[i]) {
      throw UsageError("parameter '" + slots[i].name +
                       "' received a second gradient in one synchronised step; call set_enabled(false) "
                       "before every backward pass of a step but the last");
    }
    fill(i, slots[i].parameter.grad());
    if (buckets[slots[i].bucket].pending == 0) launch_ready();
  }

  void reset() {
    std::fill(ready.begin(), ready.end(), 0);
    std::fill(used.begin(), used.end(), 0);
    for (auto& b : buckets) {
      b.pending = b.slots.size();
      b.work.reset();
    }
    next_launch = 0;
  }
};

/// The accumulators hold the hooks; whatever pointer grad_accumulator()
/// returns (shared_ptr, intrusive_ptr in later LibTorch) keeps them alive.
struct BucketedSynchronizer::HookHandles {
  using Accumulator = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));
  std::vector<std::pair<Accumulator, uintptr_t>> entries;
};

namespace {

/// Runs after a parameter's AccumulateGrad node, when .grad is up to date.
class GradientReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  GradientReadyHook(std::weak_ptr<BucketedSynchronizer::Core> core, size_t index)
      : core_(std::move(core)), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (auto core = core_.lock()) core->on_gradient(index_);
    return outputs;
  }

 private:
  std::weak_ptr<BucketedSynchronizer::Core> core_;
  size_t index_;
};

std::string megabytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

}  // namespace

BucketedSynchronizer::BucketedSynchronizer(std::shared_ptr<Collectives> collectives, torch::nn::Module& module,
                                           double bucket_mb, bool find_unused_parameters)
    : core_(std::make_shared<Core>()), hooks_(std::make_unique<HookHandles>()) {
  Core& core = *core_;
  core.collectives = std::move(collectives);
  core.find_unused = find_unused_parameters;

  std::vector<int64_t> bytes;
  std::vector<int> dtypes;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    const at::Tensor& p = item.value();
    if (!p.requires_grad()) continue;  // frozen: never gets a gradient, never communicated
    Core::Slot slot;
    slot.name = item.key();
    slot.parameter = p;
    core.slots.push_back(std::move(slot));
    bytes.push_back(p.numel() * static_cast<int64_t>(p.element_size()));
    dtypes.push_back(static_cast<int>(p.scalar_type()));
  }
  const auto cap = std::max<int64_t>(std::llround(bucket_mb * 1024.0 * 1024.0), 1);
  cap_bytes_ = cap;
  const auto plan = plan_buckets(bytes, dtypes, cap);
  const auto options = at::TensorOptions().device(core.collectives->comm_device());
  for (const auto& members : plan) {
    Core::Bucket bucket;
    int64_t numel = 0;
    for (const size_t i : members) {
      core.slots[i].bucket = core.buckets.size();
      core.slots[i].offset = numel;
      numel += core.slots[i].parameter.numel();
    }
    bucket.flat = at::zeros({numel}, options.dtype(core.slots[members.front()].parameter.scalar_type()));
    for (const size_t i : members) {
      auto& slot = core.slots[i];
      slot.view = bucket.flat.narrow(0, slot.offset, slot.parameter.numel()).view(slot.parameter.sizes());
      slot.grad_is_view = slot.parameter.is_contiguous() && slot.parameter.device() == bucket.flat.device();
    }
    bucket.slots = members;
    core.buckets.push_back(std::move(bucket));
  }
  core.ready.assign(core.slots.size(), 0);
  core.used.assign(core.slots.size(), 0);
  core.reset();

  for (size_t i = 0; i < core.slots.size(); ++i) {
    const at::Tensor& p = core.slots[i].parameter;
    auto accumulator = torch::autograd::impl::grad_accumulator(p);
    if (!accumulator) {
      throw UsageError("parameter '" + core.slots[i].name +
                       "' is not a leaf tensor; gradient synchronisation needs leaf parameters");
    }
    const uintptr_t key = accumulator->add_post_hook(std::make_unique<GradientReadyHook>(core_, i));
    hooks_->entries.emplace_back(std::move(accumulator), key);
  }
  int64_t total = 0;
  for (const auto b : bytes) total += b;
  spdlog::debug("gradient synchronisation: {} parameters, {} in {} bucket(s) of at most {}", core.slots.size(),
                megabytes(total), core.buckets.size(), megabytes(cap));
}

BucketedSynchronizer::~BucketedSynchronizer() {
  for (auto& [accumulator, key] : hooks_->entries) accumulator->del_post_hook(key);
}

void BucketedSynchronizer::set_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(core_->mutex);
  if (!enabled && core_->enabled &&
      std::find(core_->ready.begin(), core_->ready.end(), 1) != core_->ready.end()) {
    throw UsageError("set_enabled(false) after a synchronised backward pass whose finish() was not called");
  }
  core_->enabled = enabled;
}

void BucketedSynchronizer::finish() {
  Core& core = *core_;
  std::lock_guard<std::mutex> lock(core.mutex);
  if (!core.enabled) return;
  launched_during_last_backward_ = core.next_launch;

  // Parameters the synchronised backward did not reach: a gradient from an
  // earlier micro-step of this step is still the right contribution;
  // otherwise the parameter was not used on this rank.
  std::vector<std::string> missing;
  for (size_t i = 0; i < core.slots.size(); ++i) {
    if (core.ready[i]) continue;
    if (core.used[i]) {
      core.fill(i, core.slots[i].parameter.grad());
    } else if (core.find_unused) {
      core.fill(i, at::Tensor());
    } else {
      missing.push_back(core.slots[i].name);
    }
  }
  if (!missing.empty()) {
    const size_t count = missing.size();
    if (missing.size() > 10) missing.resize(10);
    core.reset();
    throw UsageError(std::to_string(count) + " parameter(s) got no gradient in this step on rank " +
                     std::to_string(core.collectives->rank()) + ": " + strings::join(missing, ", ") +
                     (count > missing.size() ? ", ..." : "") +
                     "; set distributed.find_unused_parameters: true when the model does not use every "
                     "parameter in every step, or freeze them (requires_grad false)");
  }
  core.launch_ready();

  // With unused parameters allowed, learn which ones no rank used: their
  // gradient stays as it was (undefined), exactly as in a single process.
  at::Tensor used_anywhere;
  c10::intrusive_ptr<c10d::Work> used_work;
  if (core.find_unused) {
    used_anywhere = at::empty({static_cast<int64_t>(core.slots.size())}, at::kInt);
    auto* flags = used_anywhere.data_ptr<int32_t>();
    for (size_t i = 0; i < core.slots.size(); ++i) flags[i] = core.used[i] ? 1 : 0;
    used_anywhere = used_anywhere.to(core.collectives->comm_device());
    used_work = core.collectives->all_reduce(used_anywhere);
  }

  for (size_t b = 0; b < core.buckets.size(); ++b) {
    auto& bucket = core.buckets[b];
    core.collectives->wait(bucket.work, "gradient bucket " + std::to_string(b) + " (" +
                                            std::to_string(bucket.slots.size()) + " parameters)");
  }
  if (used_work) {
    core.collectives->wait(used_work, "the unused-parameter flags");
    used_anywhere = used_anywhere.cpu();
  }

  // The sums become .grad without a copy where they can: the gradient stays a
  // view of its bucket, so the next backward accumulates straight into it (as
  // long as .grad is zeroed in place rather than reset).
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < core.slots.size(); ++i) {
    if (used_anywhere.defined() && used_anywhere.data_ptr<int32_t>()[i] == 0) continue;
    auto& slot = core.slots[i];
    at::Tensor& grad = slot.parameter.mutable_grad();
    if (core.grad_in_bucket(i, grad)) continue;
    if (slot.grad_is_view) {
      grad = slot.view;
    } else if (grad.defined()) {
      grad.copy_(slot.view);
    } else {
      grad = slot.view.to(slot.parameter.device(), /*non_blocking=*/false, /*copy=*/true);
    }
  }
  core.reset();
}

size_t BucketedSynchronizer::gradients_in_buckets() const {
  std::lock_guard<std::mutex> lock(core_->mutex);
  size_t count = 0;
  for (size_t i = 0; i < core_->slots.size(); ++i) {
    if (core_->grad_in_bucket(i, core_->slots[i].parameter.grad())) ++count;
  }
  return count;
}

size_t BucketedSynchronizer::parameter_count() const { return core_->slots.size(); }

std::vector<BucketLayout> BucketedSynchronizer::layout() const {
  std::vector<BucketLayout> result;
  for (const auto& bucket : core_->buckets) {
    BucketLayout layout;
    layout.numel = bucket.flat.numel();
    for (const size_t i : bucket.slots) layout.parameters.push_back(core_->slots[i].name);
    result.push_back(std::move(layout));
  }
  return result;
}

}  // namespace kmidi::train::detail

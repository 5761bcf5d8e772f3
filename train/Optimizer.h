#pragma once
// AdamW with every configured field honoured, and global-norm gradient
// clipping that needs no device-to-host copy.
//
// The update follows torch.optim.AdamW (PyTorch 1.13, single-tensor path):
//   p    *= 1 - lr * weight_decay                  (decayed parameters only)
//   m     = beta1 * m + (1 - beta1) * g
//   v     = beta2 * v + (1 - beta2) * g^2
//   vmax  = max(vmax, v)                            (amsgrad)
//   p    -= lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps)
// with t counted per parameter; a parameter without a gradient is left
// alone (no decay, no step), as in PyTorch.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "train/TrainConfig.h"

namespace kmidi::train {

using NamedTensorList = std::vector<std::pair<std::string, at::Tensor>>;

struct NamedParameter {
  std::string name;
  at::Tensor tensor;
  bool decay = true;  ///< whether weight decay applies
};

class AdamW {
 public:
  /// Throws UsageError for out-of-range options (naming train.optimizer.*).
  AdamW(std::vector<NamedParameter> parameters, const OptimizerConfig& config);

  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  /// Zeroes gradients in place (keeps their memory for the next backward).
  void zero_grad();
  void step();

  /// Optimizer state as named tensors: "<param>.exp_avg", "<param>.exp_avg_sq",
  /// "<param>.max_exp_avg_sq" (amsgrad) and "<param>.step" (int64 []), for
  /// parameters that have taken a step.
  NamedTensorList state() const;
  /// Restores state(); throws DataError naming a parameter whose saved state
  /// is unknown to the model or has the wrong shape.
  void load_state(const NamedTensorList& state);

  const std::vector<NamedParameter>& parameters() const { return params_; }

 private:
  struct Slot {
    int64_t step = 0;
    at::Tensor exp_avg, exp_avg_sq, max_exp_avg_sq, denom;  // denom: reused scratch
  };
  std::vector<NamedParameter> params_;
  std::vector<Slot> slots_;
  double lr_, beta1_, beta2_, eps_, weight_decay_;
  bool amsgrad_;
};

/// The global L2 norm of the gradients ([] tensor on their device); when
/// max_norm > 0, scales them so that the norm is at most max_norm
/// (coefficient min(1, max_norm / (norm + 1e-6)), as torch's clip_grad_norm_).
/// No host synchronisation. Parameters without a gradient are skipped.
at::Tensor clip_gradients(const std::vector<NamedParameter>& parameters, double max_norm);

}  // namespace kmidi::train

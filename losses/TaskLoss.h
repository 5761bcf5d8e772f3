#pragma once
// Task-aware losses. Each output head declares its task in config and the loss
// follows from it; a loss that does not fit the task, or targets that do not
// fit the loss (float targets into cross-entropy, class ids out of range,
// shape mismatch), is an error naming the head, never a silent wrong objective.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <utility>
#include <vector>

#include "core/Config.h"
#include "datasets/Batch.h"

namespace kmidi::losses {

/// One output head's objective.
struct HeadConfig : config::Section {
  std::string name;    ///< REQUIRED: the model output this head scores
  std::string target;  ///< target tensor name; default: same as `name`
  std::string task;    ///< REQUIRED: classification | multi_label | regression | point_set
  std::string loss;    ///< default by task: cross_entropy | bce | mse | chamfer
  double weight = 1.0;
  double label_smoothing = 0.0;       ///< cross_entropy only, in [0, 1)
  /// classification: one per class; each position's loss is multiplied by
  /// its target class's weight (no renormalisation by the weights' sum, so
  /// the trainer's per-unit mean stays a mean over units)
  std::vector<double> class_weights;
  double focal_gamma = 2.0;           ///< focal only
  double huber_delta = 1.0;           ///< huber only
  int64_t num_classes = 0;            ///< classification / multi_label: REQUIRED, >= 2
  /// Optional target tensor (1 = counts) masking padded positions; it covers
  /// the target's leading dimensions (e.g. [B, T] for targets [B, T]). Masked
  /// positions may hold any value (e.g. -100): they neither count nor are
  /// range-checked.
  std::string mask;
  void visit(config::Visitor& v) override;
  /// The target tensor's name (explicit or the head's).
  const std::string& target_name() const { return target.empty() ? name : target; }
};

struct TaskLossConfig : config::Section {
  std::vector<HeadConfig> heads;
  std::string weighting = "fixed";  ///< fixed | uncertainty (learned per-head log variance)
  void visit(config::Visitor& v) override;
};

/// Per-sample losses and per-head sums of one batch.
struct LossResult {
  at::Tensor per_sample;  ///< [B] weighted total per sample (differentiable)
  std::vector<std::pair<std::string, at::Tensor>> head_sums;  ///< detached Σ over the batch per head
};

/// Per-sample loss of one head [B]; outputs and targets as the head's task expects.
at::Tensor head_loss_per_sample(const HeadConfig& head, const at::Tensor& output, const at::Tensor& target,
                                const at::Tensor& mask);

/// Checks that a batch's targets fit every head's loss. Call at start-up with
/// the first batch of each split. Throws kmidi::UsageError naming the head.
void validate_targets(const TaskLossConfig& config, const data::NamedTensors& outputs,
                      const data::NamedTensors& targets);

class TaskLossImpl : public torch::nn::Module {
 public:
  explicit TaskLossImpl(TaskLossConfig config);
  LossResult forward(const data::NamedTensors& outputs, const data::NamedTensors& targets);
  const TaskLossConfig& config() const { return config_; }
  /// Learned log variances, one per head (uncertainty weighting only).
  at::Tensor log_vars;

 private:
  TaskLossConfig config_;
};
TORCH_MODULE(TaskLoss);

}  // namespace kmidi::losses

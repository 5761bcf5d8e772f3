#include "losses/TaskLoss.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "core/Errors.h"
#include "core/Strings.h"
#include "losses/Chamfer.h"

namespace kmidi::losses {
namespace {

const std::map<std::string, std::vector<std::string>>& losses_by_task() {
  static const std::map<std::string, std::vector<std::string>> table = {
      {"classification", {"cross_entropy", "focal"}},
      {"multi_label", {"bce", "focal"}},
      {"regression", {"mse", "huber", "l1"}},
      {"point_set", {"chamfer"}},
  };
  return table;
}

std::string shape_text(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

std::string head_label(const HeadConfig& h) { return "head '" + h.name + "' (" + h.task + ", " + h.loss + ")"; }

/// Mean over every dimension but the batch, counting only mask == 1 entries.
at::Tensor masked_sample_mean(const at::Tensor& values, const at::Tensor& mask) {
  if (values.dim() == 1) return mask.defined() ? values * mask.to(values.scalar_type()) : values;
  const at::Tensor flat = values.flatten(1);
  if (!mask.defined()) return flat.mean(1);
  at::Tensor m = mask.to(values.scalar_type());
  while (m.dim() < values.dim()) m = m.unsqueeze(-1);
  m = m.expand_as(values).flatten(1);
  return (flat * m).sum(1) / m.sum(1).clamp_min(1.0);
}

}  // namespace

void HeadConfig::visit(config::Visitor& v) {
  v.field("name", name, config::Spec("model output scored by this head").required());
  v.field("target", target, config::Spec("target tensor name (default: the head's name)"));
  v.field("task", task,
          config::Spec("what the head predicts").required().one_of({"classification", "multi_label", "regression", "point_set"}));
  if (v.reading() && loss.empty()) {
    if (task == "classification") loss = "cross_entropy";
    else if (task == "multi_label") loss = "bce";
    else if (task == "regression") loss = "mse";
    else if (task == "point_set") loss = "chamfer";
  }
  v.field("loss", loss, config::Spec("loss function; must fit the task")
                            .one_of({"cross_entropy", "focal", "bce", "mse", "huber", "l1", "chamfer"}));
  v.field("weight", weight, config::Spec("weight in the sum over heads").non_negative());
  v.field("label_smoothing", label_smoothing, config::Spec("cross_entropy only").min(0.0).less_than(1.0));
  v.field("class_weights", class_weights, config::Spec("classification: one non-negative weight per class").non_negative());
  v.field("focal_gamma", focal_gamma, config::Spec("focal loss focusing parameter").non_negative());
  v.field("huber_delta", huber_delta, config::Spec("huber transition point").positive());
  v.field("num_classes", num_classes, config::Spec("classification / multi_label: number of classes").non_negative());
  v.field("mask", mask, config::Spec("target tensor masking padded positions (1 = counts)"));
  if (!v.reading()) return;
  const auto& allowed = losses_by_task().at(task);
  v.check(std::find(allowed.begin(), allowed.end(), loss) != allowed.end(), "loss",
          "'" + loss + "' does not fit task '" + task + "'; expected one of " + strings::join(allowed, ", "));
  const bool classes = task == "classification" || task == "multi_label";
  v.check(!classes || num_classes >= 2, "num_classes", "must be at least 2 for task '" + task + "'");
  v.check(classes || num_classes == 0, "num_classes", "only applies to classification and multi_label heads");
  v.check(class_weights.empty() || (classes && static_cast<int64_t>(class_weights.size()) == num_classes),
          "class_weights", "needs exactly num_classes (" + std::to_string(num_classes) + ") values on a classification head");
  v.check(label_smoothing == 0.0 || loss == "cross_entropy", "label_smoothing", "only applies to loss cross_entropy");
}

void TaskLossConfig::visit(config::Visitor& v) {
  v.list("heads", heads, config::Spec("one entry per model output").required());
  v.field("weighting", weighting,
          config::Spec("fixed weights, or learned per-head uncertainty (Kendall et al. 2018)").one_of({"fixed", "uncertainty"}));
  if (!v.reading()) return;
  v.check(!heads.empty(), "heads", "needs at least one head");
  for (size_t i = 0; i < heads.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      v.check(heads[i].name != heads[j].name, "heads", "head name '" + heads[i].name + "' appears twice");
    }
  }
}

at::Tensor head_loss_per_sample(const HeadConfig& h, const at::Tensor& output, const at::Tensor& target,
                                const at::Tensor& mask) {
  if (h.loss == "cross_entropy" || (h.loss == "focal" && h.task == "classification")) {
    // output [B, C] or [B, T, C]; target [B] or [B, T] class ids.
    const at::Tensor log_probs = torch::log_softmax(output.to(torch::kFloat), -1);
    at::Tensor ids = target.to(torch::kLong);
    // Padded positions may hold any id (e.g. -100 or PAD): they are masked
    // out below, but gather needs a valid index.
    if (mask.defined()) {
      at::Tensor counts = mask.to(torch::kBool);
      while (counts.dim() < ids.dim()) counts = counts.unsqueeze(-1);
      ids = torch::where(counts, ids, torch::zeros_like(ids));
    }
    const at::Tensor picked = log_probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1);
    at::Tensor loss;
    if (h.loss == "cross_entropy") {
      loss = -picked;
      if (h.label_smoothing > 0) loss = (1.0 - h.label_smoothing) * loss - h.label_smoothing * log_probs.mean(-1);
    } else {
      loss = -torch::pow(1.0 - picked.exp(), h.focal_gamma) * picked;
    }
    if (!h.class_weights.empty()) {
      const at::Tensor w = torch::tensor(h.class_weights, torch::kDouble).to(loss.device(), torch::kFloat);
      loss = loss * w.index_select(0, ids.flatten()).view(ids.sizes());
    }
    return masked_sample_mean(loss, mask);
  }
  if (h.loss == "bce" || h.loss == "focal") {
    const at::Tensor x = output.to(torch::kFloat), y = target.to(torch::kFloat);
    at::Tensor loss = torch::binary_cross_entropy_with_logits(x, y, {}, {}, at::Reduction::None);
    if (h.loss == "focal") {
      const at::Tensor p = torch::sigmoid(x);
      const at::Tensor p_t = p * y + (1 - p) * (1 - y);
      loss = torch::pow(1.0 - p_t, h.focal_gamma) * loss;
    }
    return masked_sample_mean(loss, mask);
  }
  if (h.loss == "mse" || h.loss == "l1" || h.loss == "huber") {
    const at::Tensor diff = output.to(torch::kFloat) - target.to(torch::kFloat);
    at::Tensor loss;
    if (h.loss == "mse") loss = diff.pow(2);
    else if (h.loss == "l1") loss = diff.abs();
    else loss = torch::huber_loss(output.to(torch::kFloat), target.to(torch::kFloat), at::Reduction::None, h.huber_delta);
    return masked_sample_mean(loss, mask);
  }
  if (h.loss == "chamfer") return chamfer_distance(output.to(torch::kFloat), target.to(torch::kFloat));
  throw UsageError(head_label(h) + ": unsupported loss");
}

void validate_targets(const TaskLossConfig& config, const data::NamedTensors& outputs,
                      const data::NamedTensors& targets) {
  for (const HeadConfig& h : config.heads) {
    const std::string who = head_label(h);
    if (!outputs.contains(h.name)) {
      throw UsageError(who + ": the model has no output '" + h.name + "'; outputs are " +
                       strings::join(outputs.names(), ", "));
    }
    if (!targets.contains(h.target_name())) {
      throw UsageError(who + ": the data has no target '" + h.target_name() + "'; targets are " +
                       strings::join(targets.names(), ", "));
    }
    const at::Tensor& out = outputs.at(h.name);
    const at::Tensor& tgt = targets.at(h.target_name());
    const bool integer_target = !at::isFloatingType(tgt.scalar_type()) && tgt.scalar_type() != at::kBool;
    if (h.task == "classification") {
      if (!integer_target) {
        throw UsageError(who + ": needs integer class ids as targets, got " + std::string(c10::toString(tgt.scalar_type())) +
                         " targets (regression targets belong on a regression head)");
      }
      if (out.dim() != tgt.dim() + 1 || out.sizes().slice(0, tgt.dim()) != tgt.sizes() || out.size(-1) != h.num_classes) {
        throw UsageError(who + ": output " + shape_text(out) + " and target " + shape_text(tgt) +
                         " do not fit: expected output [..., " + std::to_string(h.num_classes) + "] over target [...]");
      }
      // Only counted positions must hold valid ids; padding may hold anything.
      const at::Tensor counted =
          !h.mask.empty() && targets.contains(h.mask) && targets.at(h.mask).sizes() == tgt.sizes()
              ? tgt.masked_select(targets.at(h.mask).to(torch::kBool))
              : tgt;
      if (counted.numel() > 0) {
        const int64_t lo = counted.min().item<int64_t>(), hi = counted.max().item<int64_t>();
        if (lo < 0 || hi >= h.num_classes) {
          throw UsageError(who + ": class id " + std::to_string(lo < 0 ? lo : hi) + " is out of range [0, " +
                           std::to_string(h.num_classes) + ")");
        }
      }
    } else if (h.task == "multi_label") {
      if (out.sizes() != tgt.sizes() || out.size(-1) != h.num_classes) {
        throw UsageError(who + ": output " + shape_text(out) + " and target " + shape_text(tgt) +
                         " must have the same shape ending in num_classes " + std::to_string(h.num_classes));
      }
      if (tgt.numel() > 0 && (tgt.to(torch::kFloat).min().item<double>() < 0 || tgt.to(torch::kFloat).max().item<double>() > 1)) {
        throw UsageError(who + ": multi-label targets must lie in [0, 1]");
      }
    } else if (h.task == "regression") {
      if (integer_target || tgt.scalar_type() == at::kBool) {
        throw UsageError(who + ": needs floating-point targets, got " + std::string(c10::toString(tgt.scalar_type())) +
                         " (class ids belong on a classification head)");
      }
      if (out.sizes() != tgt.sizes()) {
        throw UsageError(who + ": output " + shape_text(out) + " and target " + shape_text(tgt) + " differ in shape");
      }
    } else if (h.task == "point_set") {
      if (out.dim() != 3 || tgt.dim() != 3 || out.size(0) != tgt.size(0) || out.size(2) != tgt.size(2)) {
        throw UsageError(who + ": expected output [B, N, D] and target [B, M, D], got " + shape_text(out) + " and " +
                         shape_text(tgt));
      }
    }
    if (!h.mask.empty() && !targets.contains(h.mask)) {
      throw UsageError(who + ": mask '" + h.mask + "' is not among the targets (" + strings::join(targets.names(), ", ") + ")");
    }
    if (!h.mask.empty()) {
      const at::Tensor& m = targets.at(h.mask);
      const bool fits = m.dim() <= tgt.dim() && m.sizes() == tgt.sizes().slice(0, m.dim());
      if (!fits) {
        throw UsageError(who + ": mask '" + h.mask + "' " + shape_text(m) + " does not cover the leading dimensions of target " +
                         shape_text(tgt));
      }
    }
  }
}

TaskLossImpl::TaskLossImpl(TaskLossConfig config) : config_(std::move(config)) {
  if (config_.weighting == "uncertainty") {
    log_vars = register_parameter("log_vars", torch::zeros({static_cast<int64_t>(config_.heads.size())}));
  }
}

LossResult TaskLossImpl::forward(const data::NamedTensors& outputs, const data::NamedTensors& targets) {
  LossResult result;
  for (size_t i = 0; i < config_.heads.size(); ++i) {
    const HeadConfig& h = config_.heads[i];
    const at::Tensor mask = h.mask.empty() ? at::Tensor() : targets.at(h.mask);
    const at::Tensor per_sample = head_loss_per_sample(h, outputs.at(h.name), targets.at(h.target_name()), mask);
    result.head_sums.emplace_back(h.name, per_sample.detach().sum());
    at::Tensor term;
    if (log_vars.defined()) {
      // s = log σ²: regression-like heads 0.5·e^{-s}·L + 0.5·s, likelihood heads e^{-s}·L + 0.5·s.
      const at::Tensor s = log_vars[static_cast<int64_t>(i)];
      const double scale = (h.task == "regression" || h.task == "point_set") ? 0.5 : 1.0;
      term = h.weight * (scale * torch::exp(-s) * per_sample + 0.5 * s);
    } else {
      term = h.weight * per_sample;
    }
    result.per_sample = result.per_sample.defined() ? result.per_sample + term : term;
  }
  return result;
}

}  // namespace kmidi::losses

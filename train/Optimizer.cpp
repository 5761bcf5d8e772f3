#include "train/Optimizer.h"

#include <torch/torch.h>

#include <cmath>
#include <map>

#include "core/Errors.h"

namespace kmidi::train {

AdamW::AdamW(std::vector<NamedParameter> parameters, const OptimizerConfig& config)
    : params_(std::move(parameters)),
      lr_(config.lr),
      eps_(config.eps),
      weight_decay_(config.weight_decay),
      amsgrad_(config.amsgrad) {
  if (config.betas.size() != 2) {
    throw UsageError("train.optimizer.betas: expected 2 values, got " + std::to_string(config.betas.size()));
  }
  beta1_ = config.betas[0];
  beta2_ = config.betas[1];
  if (!(beta1_ >= 0 && beta1_ < 1) || !(beta2_ >= 0 && beta2_ < 1)) {
    throw UsageError("train.optimizer.betas: each must be in [0, 1), got [" + std::to_string(beta1_) + ", " +
                     std::to_string(beta2_) + "]");
  }
  if (!(eps_ > 0)) throw UsageError("train.optimizer.eps: must be > 0, got " + std::to_string(eps_));
  if (!(lr_ > 0)) throw UsageError("train.optimizer.lr: must be > 0, got " + std::to_string(lr_));
  if (!(weight_decay_ >= 0)) {
    throw UsageError("train.optimizer.weight_decay: must be >= 0, got " + std::to_string(weight_decay_));
  }
  slots_.resize(params_.size());
}

void AdamW::zero_grad() {
  for (auto& p : params_) {
    at::Tensor& g = p.tensor.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

void AdamW::step() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].tensor;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    Slot& s = slots_[i];
    if (s.step == 0 && !s.exp_avg.defined()) {
      s.exp_avg = torch::zeros_like(p, at::MemoryFormat::Preserve);
      s.exp_avg_sq = torch::zeros_like(p, at::MemoryFormat::Preserve);
      if (amsgrad_) s.max_exp_avg_sq = torch::zeros_like(p, at::MemoryFormat::Preserve);
    }
    if (!s.denom.defined()) s.denom = torch::empty_like(p, at::MemoryFormat::Preserve);
    ++s.step;
    if (params_[i].decay && weight_decay_ != 0) p.mul_(1.0 - lr_ * weight_decay_);
    s.exp_avg.mul_(beta1_).add_(g, 1.0 - beta1_);
    s.exp_avg_sq.mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
    const double bias_correction1 = 1.0 - std::pow(beta1_, static_cast<double>(s.step));
    const double bias_correction2 = 1.0 - std::pow(beta2_, static_cast<double>(s.step));
    const double step_size = lr_ / bias_correction1;
    const double bias_correction2_sqrt = std::sqrt(bias_correction2);
    if (amsgrad_) {
      at::maximum_out(s.max_exp_avg_sq, s.max_exp_avg_sq, s.exp_avg_sq);
      at::sqrt_out(s.denom, s.max_exp_avg_sq);
    } else {
      at::sqrt_out(s.denom, s.exp_avg_sq);
    }
    s.denom.div_(bias_correction2_sqrt).add_(eps_);
    p.addcdiv_(s.exp_avg, s.denom, -step_size);
  }
}

NamedTensorList AdamW::state() const {
  NamedTensorList out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.step == 0) continue;
    const std::string& n = params_[i].name;
    out.emplace_back(n + ".exp_avg", s.exp_avg);
    out.emplace_back(n + ".exp_avg_sq", s.exp_avg_sq);
    if (amsgrad_) out.emplace_back(n + ".max_exp_avg_sq", s.max_exp_avg_sq);
    out.emplace_back(n + ".step", torch::tensor(s.step, torch::kInt64));
  }
  return out;
}

void AdamW::load_state(const NamedTensorList& state) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) index[params_[i].name] = i;
  const char* kinds[] = {".exp_avg_sq", ".max_exp_avg_sq", ".exp_avg", ".step"};
  std::vector<Slot> loaded(params_.size());
  for (const auto& [key, tensor] : state) {
    std::string param, kind;
    for (const char* k : kinds) {
      const std::string suffix(k);
      if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
        param = key.substr(0, key.size() - suffix.size());
        kind = suffix;
        break;
      }
    }
    const auto it = index.find(param);
    if (kind.empty() || it == index.end()) {
      throw DataError("optimizer state '" + key + "' belongs to no parameter of the model");
    }
    const at::Tensor& p = params_[it->second].tensor;
    Slot& s = loaded[it->second];
    if (kind == ".step") {
      s.step = tensor.item<int64_t>();
      continue;
    }
    if (tensor.sizes() != p.sizes()) {
      throw DataError("optimizer state '" + key + "' has shape " + c10::str(tensor.sizes()) + ", parameter '" +
                      param + "' has " + c10::str(p.sizes()));
    }
    at::Tensor copy = torch::empty_like(p, at::MemoryFormat::Preserve);
    copy.copy_(tensor);
    if (kind == ".exp_avg") s.exp_avg = copy;
    else if (kind == ".exp_avg_sq") s.exp_avg_sq = copy;
    else s.max_exp_avg_sq = copy;
  }
  for (size_t i = 0; i < loaded.size(); ++i) {
    Slot& s = loaded[i];
    if (s.step == 0) {
      s = Slot{};
      continue;
    }
    if (!s.exp_avg.defined() || !s.exp_avg_sq.defined() || (amsgrad_ && !s.max_exp_avg_sq.defined())) {
      throw DataError("optimizer state of parameter '" + params_[i].name + "' is incomplete" +
                      (amsgrad_ && !s.max_exp_avg_sq.defined() ? " (no max_exp_avg_sq: was the run trained without amsgrad?)" : ""));
    }
    if (!amsgrad_) s.max_exp_avg_sq = at::Tensor();
  }
  slots_ = std::move(loaded);
}

at::Tensor clip_gradients(const std::vector<NamedParameter>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  grads.reserve(parameters.size());
  for (const auto& p : parameters) {
    if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
  }
  if (grads.empty()) return torch::zeros({}, torch::kFloat32);
  const std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  const at::Tensor total = torch::stack(norms).to(torch::kFloat32).norm(2);
  if (max_norm > 0) {
    // min(1, max_norm / (norm + 1e-6)) as a tensor: no host synchronisation.
    const at::Tensor coefficient = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (auto& g : grads) g.mul_(coefficient.to(g.scalar_type()));
  }
  return total;
}

}  // namespace kmidi::train

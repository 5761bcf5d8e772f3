#include "train/Ema.h"

#include <torch/torch.h>

#include <map>

#include "core/Errors.h"

namespace kmidi::train {

Ema::Ema(const std::vector<NamedParameter>& parameters, double decay) : params_(parameters), decay_(decay) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params_) average_.push_back(p.tensor.detach().clone());
}

void Ema::update() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) average_[i].mul_(decay_).add_(params_[i].tensor, 1.0 - decay_);
}

NamedTensorList Ema::state() const {
  NamedTensorList out;
  for (size_t i = 0; i < params_.size(); ++i) out.emplace_back(params_[i].name, average_[i]);
  return out;
}

void Ema::load_state(const NamedTensorList& state) {
  torch::NoGradGuard no_grad;
  std::map<std::string, const at::Tensor*> saved;
  for (const auto& [name, t] : state) saved[name] = &t;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto it = saved.find(params_[i].name);
    if (it == saved.end()) throw DataError("EMA state has no average for parameter '" + params_[i].name + "'");
    if (it->second->sizes() != average_[i].sizes()) {
      throw DataError("EMA average of '" + params_[i].name + "' has shape " + c10::str(it->second->sizes()) +
                      ", the parameter has " + c10::str(average_[i].sizes()));
    }
    average_[i].copy_(*it->second);
    saved.erase(it);
  }
  if (!saved.empty()) throw DataError("EMA state names '" + saved.begin()->first + "', which the model does not have");
}

Ema::Scope::Scope(Ema& ema) : ema_(ema) {
  torch::NoGradGuard no_grad;
  if (ema_.backup_.size() != ema_.params_.size()) {
    ema_.backup_.clear();
    for (const auto& p : ema_.params_) ema_.backup_.push_back(torch::empty_like(p.tensor));
  }
  for (size_t i = 0; i < ema_.params_.size(); ++i) {
    ema_.backup_[i].copy_(ema_.params_[i].tensor);
    ema_.params_[i].tensor.copy_(ema_.average_[i]);
  }
}

Ema::Scope::~Scope() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < ema_.params_.size(); ++i) ema_.params_[i].tensor.copy_(ema_.backup_[i]);
}

}  // namespace kmidi::train

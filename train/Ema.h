#pragma once
// Exponential moving average of a model's parameters:
//   average = decay * average + (1 - decay) * parameter   after each optimizer step.
// Buffers (e.g. running statistics) are not averaged: evaluation uses the
// model's current ones.

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "train/Optimizer.h"

namespace kmidi::train {

class Ema {
 public:
  /// Starts the average at the parameters' current values.
  Ema(const std::vector<NamedParameter>& parameters, double decay);

  void update();
  double decay() const { return decay_; }

  /// The averages by parameter name.
  NamedTensorList state() const;
  /// Restores state(); throws DataError on a missing or unknown name or a shape mismatch.
  void load_state(const NamedTensorList& state);

  /// Puts the averages into the model's parameters until destroyed, then
  /// restores the trained values exactly.
  class Scope {
   public:
    explicit Scope(Ema& ema);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Ema& ema_;
  };

 private:
  std::vector<NamedParameter> params_;
  std::vector<at::Tensor> average_, backup_;
  double decay_;
};

}  // namespace kmidi::train

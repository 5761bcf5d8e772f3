#include "train/EarlyStopping.h"

#include <cmath>
#include <cstdio>

#include "core/Errors.h"

namespace kmidi::train {

EarlyStopping::EarlyStopping(const EarlyStoppingConfig& config) : config_(config) {
  if (config_.mode != "min" && config_.mode != "max") {
    throw UsageError("train.early_stopping.mode: expected min or max, got '" + config_.mode + "'");
  }
}

EarlyStopping::Decision EarlyStopping::update(int64_t step, double value) {
  Decision d;
  if (std::isfinite(value)) {
    if (!state_.has_best) {
      d.improved = true;
    } else if (config_.mode == "min") {
      d.improved = value < state_.best - config_.min_delta;
    } else {
      d.improved = value > state_.best + config_.min_delta;
    }
  }
  if (d.improved) {
    state_.has_best = true;
    state_.best = value;
    state_.best_step = step;
    state_.bad_evaluations = 0;
  } else {
    ++state_.bad_evaluations;
  }
  d.stop = config_.patience > 0 && state_.bad_evaluations >= config_.patience && step >= config_.min_steps;
  return d;
}

std::string EarlyStopping::reason() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "no improvement of validation %s (mode %s, min_delta %g) over %.6g (step %lld) in %lld evaluations",
                config_.monitor.c_str(), config_.mode.c_str(), config_.min_delta, state_.best,
                static_cast<long long>(state_.best_step), static_cast<long long>(state_.bad_evaluations));
  return buf;
}

}  // namespace kmidi::train

#pragma once
// Learning rate as a function of the optimizer step. Stateless: a resumed run
// recomputes it from the step count, so it needs no saved state beyond the step.

#include <cstdint>
#include <string>

#include "train/TrainConfig.h"

namespace kmidi::train {

class LrSchedule {
 public:
  /// `total_steps` is the run's number of optimizer steps. Throws UsageError
  /// when warmup does not fit (naming train.schedule.warmup_steps).
  LrSchedule(const ScheduleConfig& config, double peak_lr, int64_t total_steps);

  /// The learning rate of the update that follows `steps_done` updates
  /// (0 for the first update).
  ///   warmup (s < W):  peak * (s + 1) / W
  ///   then, with p = (s - W) / (total - W) in [0, 1):
  ///   constant: peak;  linear: peak * (r + (1 - r)(1 - p));
  ///   cosine: peak * (r + (1 - r)(1 + cos(pi p)) / 2),  r = min_lr_ratio
  double lr(int64_t steps_done) const;

  int64_t total_steps() const { return total_; }
  /// e.g. "cosine, warmup 100, min_lr_ratio 0.1, 5000 steps" for logs and checkpoints.
  std::string describe() const;

 private:
  enum class Kind { kConstant, kLinear, kCosine };
  Kind kind_;
  double peak_, min_ratio_;
  int64_t warmup_, total_;
};

}  // namespace kmidi::train

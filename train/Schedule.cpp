#include "train/Schedule.h"

#include <cmath>
#include <cstdio>

#include "core/Errors.h"

namespace kmidi::train {

LrSchedule::LrSchedule(const ScheduleConfig& config, double peak_lr, int64_t total_steps)
    : peak_(peak_lr), min_ratio_(config.min_lr_ratio), warmup_(config.warmup_steps), total_(total_steps) {
  if (config.name == "constant") kind_ = Kind::kConstant;
  else if (config.name == "linear") kind_ = Kind::kLinear;
  else if (config.name == "cosine") kind_ = Kind::kCosine;
  else throw UsageError("train.schedule.name: unknown schedule '" + config.name + "'; expected constant, linear or cosine");
  if (total_steps <= 0) throw UsageError("learning-rate schedule: the run has no steps (" + std::to_string(total_steps) + ")");
  if (warmup_ > total_steps) {
    throw UsageError("train.schedule.warmup_steps (" + std::to_string(warmup_) + ") exceeds the run's " +
                     std::to_string(total_steps) + " steps");
  }
}

double LrSchedule::lr(int64_t steps_done) const {
  const int64_t s = steps_done < 0 ? 0 : steps_done;
  if (s < warmup_) return peak_ * static_cast<double>(s + 1) / static_cast<double>(warmup_);
  if (kind_ == Kind::kConstant || total_ == warmup_) return peak_;
  double p = static_cast<double>(s - warmup_) / static_cast<double>(total_ - warmup_);
  if (p > 1.0) p = 1.0;  // steps past the end (a run extended without a new schedule) stay at the floor
  const double shape = kind_ == Kind::kLinear ? 1.0 - p : 0.5 * (1.0 + std::cos(M_PI * p));
  return peak_ * (min_ratio_ + (1.0 - min_ratio_) * shape);
}

std::string LrSchedule::describe() const {
  const char* names[] = {"constant", "linear", "cosine"};
  std::string text = names[static_cast<int>(kind_)];
  text += ", warmup " + std::to_string(warmup_);
  if (kind_ != Kind::kConstant) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", min_ratio_);
    text += std::string(", min_lr_ratio ") + buf;
  }
  return text + ", " + std::to_string(total_) + " steps";
}

}  // namespace kmidi::train

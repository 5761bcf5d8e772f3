#pragma once
// Tracks the best value of the monitored validation metric and decides when
// training has stalled. Its state travels in checkpoints.

#include <cstdint>
#include <string>

#include "train/TrainConfig.h"

namespace kmidi::train {

struct EarlyStoppingState {
  bool has_best = false;
  double best = 0.0;
  int64_t best_step = -1;
  int64_t bad_evaluations = 0;  ///< evaluations since the last improvement
};

class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStoppingConfig& config);

  struct Decision {
    bool improved = false;  ///< a new best (the first evaluation always is)
    bool stop = false;      ///< patience exhausted and min_steps reached
  };
  /// Records the monitored value at `step`. A non-finite value never improves.
  Decision update(int64_t step, double value);

  const EarlyStoppingState& state() const { return state_; }
  void restore(const EarlyStoppingState& state) { state_ = state; }
  const EarlyStoppingConfig& config() const { return config_; }
  /// e.g. "no improvement of validation loss over 0.81 (step 400) in 3 evaluations".
  std::string reason() const;

 private:
  EarlyStoppingConfig config_;
  EarlyStoppingState state_;
};

}  // namespace kmidi::train

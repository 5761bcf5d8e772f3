#include "train/EarlyStopping.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace kmidi::train {
namespace {

/// Feeds `values` at steps 100, 200, ...; returns the step of the first stop, or -1.
int64_t stop_step(const EarlyStoppingConfig& c, const std::vector<double>& values) {
  EarlyStopping es(c);
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t step = static_cast<int64_t>(i + 1) * 100;
    if (es.update(step, values[i]).stop) return step;
  }
  return -1;
}

TEST(EarlyStopping, StopsAfterPatienceEvaluationsWithoutImprovement) {
  EarlyStoppingConfig c;
  c.patience = 2;
  // best 0.9 at step 200; 0.95 and 0.91 do not improve -> stop at step 400.
  EXPECT_EQ(stop_step(c, {1.0, 0.9, 0.95, 0.91, 0.5}), 400);
  // An improvement resets the count.
  EXPECT_EQ(stop_step(c, {1.0, 0.9, 0.95, 0.8, 0.85, 0.81, 0.7}), 600);
}

TEST(EarlyStopping, MinDeltaModeAndMinSteps) {
  EarlyStoppingConfig c;
  c.patience = 2;
  c.min_delta = 0.05;
  // 0.96 and 0.955 are within min_delta of 1.0: no improvement; 0.94 would be one.
  EXPECT_EQ(stop_step(c, {1.0, 0.96, 0.955, 0.1}), 300);
  EXPECT_EQ(stop_step(c, {1.0, 0.96, 0.94, 0.93, 0.92}), 500);
  c.min_delta = 0.0;
  c.mode = "max";
  EXPECT_EQ(stop_step(c, {0.5, 0.6, 0.55, 0.58, 0.9}), 400);
  c.min_steps = 700;
  // Patience runs out at step 400 but stopping waits until step 700.
  EXPECT_EQ(stop_step(c, {0.5, 0.6, 0.55, 0.58, 0.57, 0.56, 0.59, 0.1}), 700);
}

TEST(EarlyStopping, TracksBestAndNeverImprovesOnNan) {
  EarlyStoppingConfig c;  // patience 0: never stops, still tracks the best
  EarlyStopping es(c);
  EXPECT_TRUE(es.update(10, 3.0).improved);
  EXPECT_FALSE(es.update(20, std::nan("")).improved);
  EXPECT_TRUE(es.update(30, 2.0).improved);
  EXPECT_FALSE(es.update(40, 2.5).stop);
  EXPECT_EQ(es.state().best, 2.0);
  EXPECT_EQ(es.state().best_step, 30);
  EXPECT_EQ(es.state().bad_evaluations, 1);
  EarlyStopping restored(c);
  restored.restore(es.state());
  EXPECT_FALSE(restored.update(50, 2.0).improved);  // equal is not better
  EXPECT_EQ(restored.state().bad_evaluations, 2);
}

}  // namespace
}  // namespace kmidi::train

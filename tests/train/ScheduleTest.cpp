#include "train/Schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/Errors.h"

namespace kmidi::train {
namespace {

ScheduleConfig schedule(const std::string& name, int64_t warmup, double min_ratio) {
  ScheduleConfig c;
  c.name = name;
  c.warmup_steps = warmup;
  c.min_lr_ratio = min_ratio;
  return c;
}

TEST(Schedule, WarmupIsLinearFromLrOverWarmup) {
  const LrSchedule s(schedule("cosine", 4, 0.0), 1e-3, 100);
  EXPECT_DOUBLE_EQ(s.lr(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.lr(1), 0.50e-3);
  EXPECT_DOUBLE_EQ(s.lr(3), 1.00e-3);
}

TEST(Schedule, ConstantHoldsPeakAfterWarmup) {
  const LrSchedule s(schedule("constant", 10, 0.5), 2e-4, 50);
  EXPECT_DOUBLE_EQ(s.lr(4), 2e-4 * 5 / 10);
  EXPECT_DOUBLE_EQ(s.lr(10), 2e-4);
  EXPECT_DOUBLE_EQ(s.lr(49), 2e-4);  // min_lr_ratio does not apply to constant
}

TEST(Schedule, LinearDecayHandComputed) {
  // peak 1e-3, warmup 10, total 110, min ratio 0.1: p = (s - 10) / 100.
  const LrSchedule s(schedule("linear", 10, 0.1), 1e-3, 110);
  EXPECT_DOUBLE_EQ(s.lr(10), 1e-3);                            // p = 0
  EXPECT_NEAR(s.lr(60), 1e-3 * (0.1 + 0.9 * 0.5), 1e-15);      // p = 0.5 -> 5.5e-4
  EXPECT_NEAR(s.lr(109), 1e-3 * (0.1 + 0.9 * 0.01), 1e-15);    // p = 0.99 -> 1.09e-4
  EXPECT_NEAR(s.lr(500), 1e-4, 1e-15);                         // past the end: the floor
}

TEST(Schedule, CosineDecayHandComputed) {
  // no warmup, total 100, min ratio 0: lr = peak * (1 + cos(pi s / 100)) / 2.
  const LrSchedule s(schedule("cosine", 0, 0.0), 1.0, 100);
  EXPECT_DOUBLE_EQ(s.lr(0), 1.0);
  EXPECT_NEAR(s.lr(25), (1 + std::cos(M_PI / 4)) / 2, 1e-15);  // 0.853553...
  EXPECT_NEAR(s.lr(50), 0.5, 1e-15);
  EXPECT_NEAR(s.lr(75), (1 + std::cos(3 * M_PI / 4)) / 2, 1e-15);  // 0.146446...
  // With a floor of 0.2: 0.2 + 0.8 * 0.5 at the middle.
  const LrSchedule f(schedule("cosine", 20, 0.2), 3e-4, 120);
  EXPECT_NEAR(f.lr(70), 3e-4 * (0.2 + 0.8 * 0.5), 1e-18);
}

TEST(Schedule, RejectsWarmupLongerThanRunAndUnknownName) {
  try {
    LrSchedule(schedule("cosine", 200, 0.0), 1e-3, 100);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("warmup_steps (200) exceeds the run's 100 steps"), std::string::npos);
  }
  try {
    LrSchedule(schedule("cosin", 0, 0.0), 1e-3, 100);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown schedule 'cosin'"), std::string::npos);
  }
}

}  // namespace
}  // namespace kmidi::train

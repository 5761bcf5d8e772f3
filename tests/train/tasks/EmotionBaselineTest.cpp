#include "train/tasks/EmotionBaseline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <stdexcept>

namespace kmidi::train {
namespace {

/// Clips whose feature 5 is the valence sign and feature 90 the arousal sign
/// (scaled unlike each other, with noise on a dozen others): a baseline that
/// standardises, labels signs and picks quadrants right scores 1.
std::vector<data::EmotionClip> sign_clips(int per_quadrant, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<data::EmotionClip> clips;
  for (int q = 0; q < 4; ++q) {
    const auto signs = data::quadrant_signs(q);
    for (int i = 0; i < per_quadrant; ++i) {
      data::EmotionClip c;
      c.id = "q" + std::to_string(q) + "_" + std::to_string(i);
      c.quadrant = q;
      for (size_t f = 0; f < 12; ++f) c.features[f] = 0.3f * noise(rng);  // the others stay constant 0
      c.features[5] = 0.01f * (signs[0] + 0.2f * noise(rng));
      c.features[90] = 50.0f * (signs[1] + 0.2f * noise(rng));
      c.features[100] = 2.0f;  // constant: left unscaled, no division by zero
      clips.push_back(c);
    }
  }
  return clips;
}

TEST(EmotionBaselineTest, SeparableSignsScorePerfectlyOnUnseenClips) {
  const auto train = sign_clips(30, 1), validation = sign_clips(10, 2), test = sign_clips(10, 3);
  const EmotionBaseline baseline(train, &validation);
  const auto m = baseline.metrics(test);
  EXPECT_DOUBLE_EQ(m.at("baseline_quadrant_accuracy"), 1.0);
  EXPECT_DOUBLE_EQ(m.at("baseline_arousal_accuracy"), 1.0);
  EXPECT_DOUBLE_EQ(m.at("baseline_valence_accuracy"), 1.0);
  for (double l2 : baseline.l2()) {
    EXPECT_NE(std::find(EmotionBaseline::kL2Grid.begin(), EmotionBaseline::kL2Grid.end(), l2),
              EmotionBaseline::kL2Grid.end());
  }
  // Without validation data the default strength is used.
  const EmotionBaseline fixed(train, nullptr);
  for (double l2 : fixed.l2()) EXPECT_EQ(l2, EmotionBaseline::kDefaultL2);
}

TEST(EmotionBaselineTest, ShuffledLabelsScoreNearChance) {
  auto train = sign_clips(30, 1), test = sign_clips(25, 3);
  std::mt19937 rng(9);
  for (auto& c : train) c.quadrant = static_cast<int64_t>(rng() % 4);  // labels unrelated to features
  const EmotionBaseline baseline(train, nullptr);
  EXPECT_LT(baseline.metrics(test).at("baseline_quadrant_accuracy"), 0.5);
}

TEST(EmotionBaselineTest, RefusesUnlabelledClips) {
  auto train = sign_clips(3, 1);
  train[2].quadrant = -1;
  EXPECT_THROW(EmotionBaseline(train, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace kmidi::train

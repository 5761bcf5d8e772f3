#include "models/Sampling.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace kmidi::models {
namespace {

TEST(Sampling, ProbabilitiesFollowHandComputation) {
  // logits [2, 1, 0, -1, -3]; token 0 and 3 already played; penalty 2:
  // 2 → 1 (positive: divided), -1 → -2 (negative: multiplied).
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.repetition_penalty = 2.0;
  const auto probs = sampling_probabilities(torch::tensor({2.0f, 1.0f, 0.0f, -1.0f, -3.0f}), {0, 3, 3}, o);
  const std::vector<double> logits = {1.0, 1.0, 0.0, -2.0, -3.0};
  double z = 0;
  for (double l : logits) z += std::exp(l);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(probs[i].item<double>(), std::exp(logits[i]) / z, 1e-6);
}

TEST(Sampling, TopKTopPAndBannedIds) {
  SamplingOptions o;
  o.temperature = 0.5;
  o.top_k = 3;
  o.top_p = 1.0;
  o.repetition_penalty = 1.0;
  o.banned_ids = {0};
  // After banning id 0 the top 3 are ids 1, 2, 3; temperature 0.5 doubles logits.
  const auto probs = sampling_probabilities(torch::tensor({9.0f, 3.0f, 2.0f, 1.0f, 0.5f}), {}, o);
  const double z = std::exp(6.0) + std::exp(4.0) + std::exp(2.0);
  EXPECT_EQ(probs[0].item<double>(), 0.0);
  EXPECT_NEAR(probs[1].item<double>(), std::exp(6.0) / z, 1e-6);
  EXPECT_NEAR(probs[3].item<double>(), std::exp(2.0) / z, 1e-6);
  EXPECT_EQ(probs[4].item<double>(), 0.0);

  // Nucleus 0.7 over [0.5, 0.3, 0.2]: 0.5 alone is below 0.7, so ids 0 and 1 stay.
  o = SamplingOptions{};
  o.temperature = 1.0;
  o.top_k = 0;
  o.repetition_penalty = 1.0;
  o.top_p = 0.7;
  const auto nucleus = sampling_probabilities(torch::log(torch::tensor({0.2f, 0.5f, 0.3f})), {}, o);
  EXPECT_NEAR(nucleus[1].item<double>(), 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(nucleus[2].item<double>(), 0.3 / 0.8, 1e-6);
  EXPECT_EQ(nucleus[0].item<double>(), 0.0);
}

TEST(Sampling, GenerateIsSeededAndStops) {
  torch::manual_seed(3);
  MidiGeneratorOptions mo;
  mo.vocab_size = 50;
  mo.d_model = 16;
  mo.n_layers = 1;
  mo.n_heads = 2;
  mo.d_ff = 32;
  mo.dropout = 0.0;
  MidiGenerator model(mo);
  SamplingOptions o;
  o.max_new_tokens = 40;
  o.seed = 11;
  o.banned_ids = {0};
  const auto emotion = torch::zeros({64});
  const auto a = generate(model, {1}, emotion, o);
  const auto b = generate(model, {1}, emotion, o);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 41u);
  EXPECT_EQ(a[0], 1);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_NE(a[i], 0);
  o.seed = 12;
  EXPECT_NE(generate(model, {1}, emotion, o), a);
  // Stop on the first sampled token whatever it is: stop ids = every id.
  for (int64_t i = 0; i < 50; ++i) o.stop_ids.push_back(i);
  EXPECT_EQ(generate(model, {1, 2}, emotion, o).size(), 3u);
}

TEST(Sampling, InvalidOptions) {
  SamplingOptions o;
  o.temperature = 0;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = SamplingOptions{};
  o.top_p = 1.5;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = SamplingOptions{};
  o.repetition_penalty = 0.5;
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

}  // namespace
}  // namespace kmidi::models

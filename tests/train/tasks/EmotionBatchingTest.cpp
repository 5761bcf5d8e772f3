// data.batching on the emotion task with token inputs, on the real prepared
// EMOPIA: the clips' own token lengths batched by a token budget against
// fixed batches, and the settings' errors.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "core/Config.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "train/Sampler.h"
#include "train/tasks/EmotionTask.h"

namespace kmidi::train {
namespace {

EmotionTaskConfig token_config(const std::string& inputs, int64_t max_length, int64_t tokens_per_batch) {
  const std::string yaml = "data:\n  prepared: " + test::emopia_prepared_dir() + "\n  midi_root: " +
                           test::emopia_midi_root() + "\n  inputs: " + inputs + "\n  max_length: " +
                           std::to_string(max_length) + "\n  batching: {tokens_per_batch: " +
                           std::to_string(tokens_per_batch) + "}\n"
                           "model: {hidden: 32, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 48}\n"
                           "loss:\n  heads:\n"
                           "    - {name: quadrant, task: classification, num_classes: 4}\n";
  auto doc = config::Document::load_string(yaml, "emotion.yaml", "/");
  EmotionTaskConfig c;
  doc.read_into(c);
  return c;
}

TEST(EmotionTokenBudget, PadsUnderFivePercentOfEmopiasRealLengths) {
  // configs/emotion.yaml's shape with token inputs: 32 clips of up to 512
  // tokens per batch today, the same 16,384-token tensor as a budget.
  torch::manual_seed(3);
  EmotionTask task(token_config("tokens", 512, 32 * 512), TaskContext{});
  const auto train = task.dataset(Split::kTrain);
  ASSERT_EQ(train->tokens_per_batch(), 32 * 512);
  EXPECT_EQ(task.dataset(Split::kValidation)->tokens_per_batch(), 0) << "evaluation keeps its fixed batches";

  std::vector<int64_t> costs;
  for (size_t i = 0; i < train->size(); ++i) costs.push_back(train->item_cost(i));
  SamplerOptions budget;
  budget.tokens_per_batch = 32 * 512;
  budget.seed = 1234;
  const TrainSampler by_tokens(static_cast<int64_t>(costs.size()), budget, costs);
  std::vector<std::vector<int64_t>> micro;
  for (const auto& step : by_tokens.epoch_steps(0)) micro.push_back(step[0]);
  SamplerOptions fixed;
  fixed.global_batch = 32;
  fixed.seed = 1234;
  const auto fixed_batches = TrainSampler(static_cast<int64_t>(costs.size()), fixed, costs).epoch_batches(0);

  const double budget_waste = padding_waste(micro, costs), fixed_waste = padding_waste(fixed_batches, costs);
  std::printf("EMOPIA train (%zu clips): token budget 16384: %zu batches, padding %.2f%%; fixed batches of 32: "
              "%zu batches, padding %.2f%%\n",
              costs.size(), micro.size(), 100 * budget_waste, fixed_batches.size(), 100 * fixed_waste);
  EXPECT_LT(budget_waste, 0.05);
  EXPECT_LT(budget_waste, fixed_waste);
  // The budget holds for the batches the dataset really builds.
  for (const auto& b : micro) {
    EXPECT_LE(train->get_batch(b).inputs.at("input_ids").numel(), 32 * 512);
  }
}

TEST(EmotionTokenBudget, NeedsTokenInputsAndRoomForTheLongestClip) {
  auto expect_error = [](const std::string& inputs, int64_t max_length, int64_t budget, const std::string& text) {
    try {
      token_config(inputs, max_length, budget);
      FAIL() << "expected: " << text;
    } catch (const config::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  expect_error("features", 512, 4096, "tokens_per_batch needs token inputs (inputs: tokens or both)");
  expect_error("tokens", 512, 300, "tokens_per_batch 300 is smaller than max_length 512");
}

}  // namespace
}  // namespace kmidi::train

// Groove windows as tensors: hits, targets and masks at the right cells.

#include "datasets/groove/GrooveDataset.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/Errors.h"

namespace kmidi::groove {
namespace {

std::vector<GrooveItem> two_items() {
  GrooveItem a;
  a.source = "a";
  a.bpm = 100.0;
  a.hits = {Hit{0, 0, 0.25, 37.5, 127, 0}, Hit{0, 2, -0.1, -15.0, 64, 1}, Hit{31, 8, 0.5, 75.0, 1, 2}};
  GrooveItem b;
  b.source = "b";
  b.first_step = 16;
  b.bpm = 200.0;
  b.hits = {Hit{5, 1, -0.5, -37.5, 90, 3}, Hit{40, 1, 0.0, 0.0, 90, 4}};  // step 40 lies beyond a 32-step window
  return {a, b};
}

TEST(GrooveDataset, BatchesPutHitsTargetsAndMasksInTheirCells) {
  const GrooveDataset data(two_items(), 32, true);
  EXPECT_EQ(data.item_id(1), "b@16");
  const data::Batch batch = data.get_batch({1, 0});
  EXPECT_EQ(batch.units, 4);
  const at::Tensor hits = batch.inputs.at("hits");
  ASSERT_EQ(hits.sizes(), (std::vector<int64_t>{2, 32, 9}));
  EXPECT_EQ(hits.sum().item<double>(), 4.0);
  EXPECT_EQ(hits[1][0][0].item<float>(), 1.0f);
  EXPECT_EQ(hits[1][31][8].item<float>(), 1.0f);
  EXPECT_EQ(hits[0][5][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(batch.inputs.at("tempo")[0][0].item<float>(), 1.0f);   // 200 bpm / 200
  EXPECT_FLOAT_EQ(batch.inputs.at("tempo")[1][0].item<float>(), 0.5f);
  const at::Tensor offsets = batch.targets.at("offsets"), velocities = batch.targets.at("velocities");
  EXPECT_FLOAT_EQ(offsets[1][0][0].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(offsets[1][0][2].item<float>(), -0.1f);
  EXPECT_FLOAT_EQ(offsets[0][5][1].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(velocities[1][0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(velocities[1][31][8].item<float>(), 1.0f / 127.0f);
  EXPECT_TRUE(torch::equal(batch.targets.at("mask"), hits));
  // Cells without a hit carry zeros.
  EXPECT_EQ((offsets * (1 - hits)).abs().sum().item<double>(), 0.0);
  EXPECT_EQ((velocities * (1 - hits)).abs().sum().item<double>(), 0.0);
}

TEST(GrooveDataset, UnlabelledBatchesHaveInputsAndUnitsOnly) {
  const GrooveDataset data(two_items(), 32, false);
  EXPECT_FALSE(data.has_targets());
  const data::Batch batch = data.get_batch({0});
  EXPECT_FALSE(batch.has_targets());
  EXPECT_EQ(batch.units, 3);
  EXPECT_EQ(batch.inputs.names(), (std::vector<std::string>{"hits", "tempo"}));
}

TEST(GrooveDataset, PlayerInputIsOnePlusTheIndexInThePlayerList) {
  auto items = two_items();
  items[0].player = "drummer7";
  items[1].player = "drummer1";
  const GrooveDataset data(items, 32, true, {"drummer1", "drummer7"});
  const data::Batch batch = data.get_batch({0, 1, 0});
  EXPECT_EQ(batch.inputs.names(), (std::vector<std::string>{"hits", "tempo", "player"}));
  const at::Tensor player = batch.inputs.at("player");
  EXPECT_EQ(player.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(player, torch::tensor({2, 1, 2}, torch::kLong)));
  // Unknown player (0) for every window when the player is not to be used,
  // and for a window that has none.
  const GrooveDataset hidden(items, 32, true, {"drummer1", "drummer7"}, false);
  EXPECT_TRUE(torch::equal(hidden.get_batch({0, 1}).inputs.at("player"), torch::zeros({2}, torch::kLong)));
  items[1].player.clear();
  const GrooveDataset partly(items, 32, true, {"drummer1", "drummer7"});
  EXPECT_TRUE(torch::equal(partly.get_batch({0, 1}).inputs.at("player"), torch::tensor({2, 0}, torch::kLong)));
}

TEST(GrooveDataset, PlayerOutsideTheListIsAnErrorNamingTheWindow) {
  auto items = two_items();
  items[1].player = "drummer3";
  try {
    GrooveDataset data(items, 32, true, {"drummer1", "drummer7"});
    FAIL() << "no error";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("groove window b@16: player 'drummer3' is not one the model knows (drummer1, drummer7)"),
              std::string::npos)
        << what;
  }
}

}  // namespace
}  // namespace kmidi::groove

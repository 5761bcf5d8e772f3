// Output contracts of the spectocloud, emotion and groove models: names,
// order, shapes and value ranges; any number of frames or steps; masking.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "models/EmotionModel.h"
#include "models/GrooveModel.h"
#include "models/Spectocloud.h"

namespace kmidi::models {
namespace {

bool in_range(const at::Tensor& t, double lo, double hi) {
  return t.min().item<double>() >= lo && t.max().item<double>() <= hi;
}

TEST(Spectocloud, OutputContractAtAnyNumberOfFrames) {
  torch::manual_seed(0);
  Spectocloud model(SpectocloudOptions{});
  model->eval();
  EXPECT_EQ(std::string(SpectocloudImpl::kOutputNames[0]), "positions");
  EXPECT_EQ(std::string(SpectocloudImpl::kOutputNames[1]), "colors");
  EXPECT_EQ(std::string(SpectocloudImpl::kOutputNames[2]), "properties");
  for (int64_t frames : {1, 7, 64, 173}) {
    const auto [positions, colors, properties] =
        model->forward(torch::randn({2, 128, frames}), torch::randn({2, 64}), torch::rand({2, 32}));
    EXPECT_EQ(positions.sizes(), (std::vector<int64_t>{2, 1200, 3})) << frames;
    EXPECT_EQ(colors.sizes(), (std::vector<int64_t>{2, 1200, 4}));
    EXPECT_EQ(properties.sizes(), (std::vector<int64_t>{2, 1200, 3}));
    EXPECT_TRUE(in_range(positions, -1, 1));
    EXPECT_TRUE(in_range(colors, 0, 1));
    EXPECT_TRUE(in_range(properties, 0, 1));
  }
}

TEST(Spectocloud, EachInputMatters) {
  torch::manual_seed(1);
  Spectocloud model(SpectocloudOptions{});
  model->eval();
  const auto spec = torch::randn({1, 128, 64}), emotion = torch::randn({1, 64}), midi = torch::rand({1, 32});
  const auto base = std::get<0>(model->forward(spec, emotion, midi));
  EXPECT_GT((std::get<0>(model->forward(spec * 2, emotion, midi)) - base).abs().max().item<double>(), 1e-5);
  EXPECT_GT((std::get<0>(model->forward(spec, emotion + 1, midi)) - base).abs().max().item<double>(), 1e-5);
  EXPECT_GT((std::get<0>(model->forward(spec, emotion, midi + 1)) - base).abs().max().item<double>(), 1e-5);
  // Time matters: reversing the frames moves the cloud.
  EXPECT_GT((std::get<0>(model->forward(spec.flip(2), emotion, midi)) - base).abs().max().item<double>(), 1e-5);
}

TEST(Spectocloud, RejectsWrongInputShapes) {
  Spectocloud model(SpectocloudOptions{});
  EXPECT_THROW(model->forward(torch::randn({1, 64, 10}), torch::randn({1, 64}), torch::rand({1, 32})), c10::Error);
  EXPECT_THROW(model->forward(torch::randn({1, 128, 10}), torch::randn({1, 63}), torch::rand({1, 32})), c10::Error);
  SpectocloudOptions bad;
  bad.n_heads = 5;
  EXPECT_THROW(Spectocloud m(bad), std::invalid_argument);
}

EmotionModelOptions emotion_options(bool tokens, bool features) {
  EmotionModelOptions o;
  o.use_tokens = tokens;
  o.use_features = features;
  o.vocab_size = 50;
  o.feature_dim = 10;
  o.encoder.d_model = 32;
  o.encoder.d_ff = 64;
  o.encoder.n_layers = 1;
  o.dropout = 0.0;
  o.encoder.dropout = 0.0;
  return o;
}

TEST(EmotionModel, OutputsAndPaddingInvariance) {
  torch::manual_seed(2);
  EmotionModel model(emotion_options(true, true));
  model->eval();
  const auto ids = torch::randint(1, 50, {1, 12}, torch::kLong);
  const auto feats = torch::randn({1, 10});
  const auto [va, quadrant] = model->forward(ids, torch::ones({1, 12}, torch::kLong), feats);
  EXPECT_EQ(va.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(quadrant.sizes(), (std::vector<int64_t>{1, 4}));
  EXPECT_TRUE(in_range(va, -1, 1));
  // Right padding masked out gives the same prediction.
  const auto padded_ids = torch::cat({ids, torch::zeros({1, 5}, torch::kLong)}, 1);
  const auto mask = torch::cat({torch::ones({1, 12}, torch::kLong), torch::zeros({1, 5}, torch::kLong)}, 1);
  const auto [va2, q2] = model->forward(padded_ids, mask, feats);
  EXPECT_LT((va2 - va).abs().max().item<double>(), 1e-5);
  EXPECT_LT((q2 - quadrant).abs().max().item<double>(), 1e-5);
}

TEST(EmotionModel, FeatureStatisticsAreBuffersThatStandardise) {
  EmotionModel model(emotion_options(false, true));
  model->eval();
  const auto feats = torch::randn({3, 10}) * 5 + 2;
  const auto [va, q] = model->forward({}, {}, feats);
  model->set_feature_statistics(torch::full({10}, 2.0), torch::full({10}, 5.0));
  const auto [va_std, q_std] = model->forward({}, {}, feats);
  EmotionModel reference(emotion_options(false, true));
  reference->eval();
  std::stringstream buffer;
  torch::save(model, buffer);
  torch::load(reference, buffer);
  const auto [va_ref, q_ref] = reference->forward({}, {}, feats);
  EXPECT_LT((va_ref - va_std).abs().max().item<double>(), 1e-6) << "statistics must be saved with the model";
  EXPECT_GT((va_std - va).abs().max().item<double>(), 1e-5);
  std::set<std::string> buffers;
  for (const auto& b : model->named_buffers()) buffers.insert(b.key());
  EXPECT_EQ(buffers, (std::set<std::string>{"feature_mean", "feature_std"}));
}

TEST(EmotionModel, InvalidOptions) {
  EXPECT_THROW(EmotionModel m(emotion_options(false, false)), std::invalid_argument);
  auto o = emotion_options(true, false);
  o.vocab_size = 0;
  EXPECT_THROW(EmotionModel m(o), std::invalid_argument);
}

/// A one-layer groove encoder, 32 wide.
GrooveModelOptions one_layer_groove() {
  GrooveModelOptions o;
  o.encoder.d_model = 32;
  o.encoder.d_ff = 64;
  o.encoder.n_layers = 1;
  return o;
}

TEST(GrooveModel, OutputsInRangeAtAnyLength) {
  torch::manual_seed(3);
  GrooveModelOptions o;
  o.num_styles = 5;
  o.encoder.d_model = 32;
  o.encoder.d_ff = 64;
  GrooveModel model(o);
  model->eval();
  for (int64_t steps : {16, 32, 77}) {
    const auto hits = (torch::rand({2, steps, 9}) > 0.7).to(torch::kFloat);
    const auto [offsets, velocities, style] = model->forward(hits, torch::full({2, 1}, 0.6));
    EXPECT_EQ(offsets.sizes(), (std::vector<int64_t>{2, steps, 9}));
    EXPECT_TRUE(in_range(offsets, -0.5, 0.5));
    EXPECT_TRUE(in_range(velocities, 0, 1));
    EXPECT_EQ(style.sizes(), (std::vector<int64_t>{2, 5}));
  }
  GrooveModelOptions no_style = o;
  no_style.num_styles = 0;
  GrooveModel plain(no_style);
  EXPECT_FALSE(std::get<2>(plain->forward(torch::zeros({1, 16, 9}), torch::full({1, 1}, 0.5))).defined());
  EXPECT_THROW(plain->forward(torch::zeros({1, 16, 8}), torch::full({1, 1}, 0.5)), c10::Error);
}

TEST(GrooveModel, BarPositionEmbeddingRepeatsEveryBar) {
  torch::manual_seed(5);
  GrooveModelOptions o = one_layer_groove();
  o.bar_steps = 16;
  GrooveModel model(o);
  model->eval();
  ASSERT_TRUE(model->bar_position);
  EXPECT_EQ(model->bar_position->weight.sizes(), (std::vector<int64_t>{16, 32}));
  bool named = false;
  for (const auto& p : model->named_parameters()) named |= p.key() == "bar_position.weight";
  EXPECT_TRUE(named);
  // Without the embedding (zeroed), the model cannot tell bar positions apart:
  // an empty pattern gives the same output at every step. With it, steps 16
  // apart agree and steps within a bar differ.
  torch::NoGradGuard no_grad;
  const auto [offsets, velocities, style] = model->forward(torch::zeros({1, 48, 9}), torch::full({1, 1}, 0.5));
  EXPECT_TRUE(torch::allclose(offsets[0][3], offsets[0][19], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(offsets[0][3], offsets[0][35], 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(offsets[0][3], offsets[0][4], 1e-5, 1e-6));
  model->bar_position->weight.zero_();
  const auto [flat, v2, s2] = model->forward(torch::zeros({1, 48, 9}), torch::full({1, 1}, 0.5));
  EXPECT_TRUE(torch::allclose(flat[0][3], flat[0][4], 1e-5, 1e-6));
}

TEST(GrooveModel, PlayerEmbeddingConditionsEveryStepAndZeroIsAnyPlayer) {
  torch::manual_seed(6);
  GrooveModelOptions o = one_layer_groove();
  o.num_players = 3;
  GrooveModel model(o);
  model->eval();
  EXPECT_EQ(model->player_embedding->weight.sizes(), (std::vector<int64_t>{4, 32}));
  torch::NoGradGuard no_grad;
  const auto hits = (torch::rand({3, 16, 9}) > 0.7).to(torch::kFloat);
  const auto tempo = torch::full({3, 1}, 0.6);
  const auto any = std::get<0>(model->forward(hits, tempo));
  const auto zero = std::get<0>(model->forward(hits, tempo, torch::zeros({3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(any, zero));  // no player given = player 0
  const auto mixed = std::get<0>(model->forward(hits, tempo, torch::tensor({0, 2, 3}, torch::kLong)));
  EXPECT_TRUE(torch::allclose(mixed[0], any[0], 1e-6, 1e-7));
  EXPECT_FALSE(torch::allclose(mixed[1], any[1], 1e-4, 1e-5));
  // Row b's output depends on row b's player only.
  const auto alone = std::get<0>(model->forward(hits.slice(0, 2, 3), tempo.slice(0, 2, 3), torch::tensor({3}, torch::kLong)));
  EXPECT_TRUE(torch::allclose(alone[0], mixed[2], 1e-5, 1e-6));
  EXPECT_THROW(model->forward(hits, tempo, torch::tensor({0, 1, 4}, torch::kLong)), c10::Error);
  EXPECT_THROW(model->forward(hits, tempo, torch::tensor({0, 1}, torch::kLong)), c10::Error);
  GrooveModelOptions none = o;
  none.num_players = 0;
  GrooveModel plain(none);
  EXPECT_FALSE(plain->player_embedding);
  EXPECT_THROW(plain->forward(hits, tempo, torch::zeros({3}, torch::kLong)), c10::Error);
}

}  // namespace
}  // namespace kmidi::models

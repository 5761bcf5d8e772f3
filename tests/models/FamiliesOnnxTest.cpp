// Spectocloud, emotion and groove graphs against their LibTorch models in
// onnxruntime, at several batch sizes and lengths.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/Files.h"
#include "onnx/check/Parity.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"
#include "models/EmotionModel.h"
#include "models/GrooveModel.h"
#include "models/Spectocloud.h"
#include "tests/support/OnnxProtoView.h"
#include "tests/support/TestSupport.h"

namespace kmidi::models {
namespace {

template <class Emit>
std::string export_to(const std::string& name, Emit emit) {
  onnx::ModelBuilder b;
  b.set_metadata(onnx::meta::kFormatVersion, onnx::meta::kCurrentFormatVersion);
  emit(b);
  const std::string bytes = b.build();
  // onnxruntime warns on every load about an initializer nothing reads.
  EXPECT_EQ(test::unused_initializers(bytes), std::vector<std::string>{}) << name;
  onnx::check_model(bytes, name);
  const std::string path = test::scratch_dir(name) + "/" + name + ".onnx";
  files::write_atomic(path, bytes);
  return path;
}

TEST(FamiliesOnnx, SpectocloudMatchesLibTorch) {
  torch::manual_seed(10);
  SpectocloudOptions o;
  o.dropout = 0.1;
  Spectocloud model(o);
  model->eval();
  const std::string path = export_to("spectocloud", [&](onnx::ModelBuilder& b) { emit_spectocloud(b, *model); });
  EXPECT_EQ(onnx::read_model_info(path).output_names(), (std::vector<std::string>{"positions", "colors", "properties"}));
  torch::NoGradGuard no_grad;
  for (auto [batch, frames] : std::vector<std::pair<int64_t, int64_t>>{{1, 64}, {2, 1}, {3, 33}}) {
    data::NamedTensors in, ref;
    in.set("spectrogram", torch::randn({batch, 128, frames}));
    in.set("emotion", torch::rand({batch, 64}) * 2 - 1);
    in.set("midi_features", torch::rand({batch, 32}));
    const auto [p, c, q] = model->forward(in.at("spectrogram"), in.at("emotion"), in.at("midi_features"));
    ref.set("positions", p);
    ref.set("colors", c);
    ref.set("properties", q);
    onnx::onnxruntime_parity(path, in, ref).require_passed("spectocloud frames " + std::to_string(frames));
  }
}

class EmotionOnnx : public ::testing::TestWithParam<std::pair<bool, bool>> {};

TEST_P(EmotionOnnx, MatchesLibTorchWithProbabilities) {
  torch::manual_seed(11);
  EmotionModelOptions o;
  o.use_tokens = GetParam().first;
  o.use_features = GetParam().second;
  o.vocab_size = 40;
  o.feature_dim = 12;
  o.encoder.d_model = 32;
  o.encoder.d_ff = 48;
  o.encoder.n_layers = 2;
  EmotionModel model(o);
  if (o.use_features) model->set_feature_statistics(torch::randn({12}), torch::rand({12}) + 0.5);
  model->eval();
  const std::string path = export_to("emotion", [&](onnx::ModelBuilder& b) { emit_emotion_model(b, *model); });
  torch::NoGradGuard no_grad;
  for (auto [batch, seq] : std::vector<std::pair<int64_t, int64_t>>{{1, 5}, {3, 20}}) {
    data::NamedTensors in, ref;
    at::Tensor ids, mask, feats;
    if (o.use_tokens) {
      ids = torch::randint(0, 40, {batch, seq}, torch::kLong);
      mask = torch::ones({batch, seq}, torch::kLong);
      if (batch > 1) mask[1].narrow(0, seq / 2, seq - seq / 2).zero_();  // a right-padded row
      in.set("input_ids", ids);
      in.set("attention_mask", mask);
    }
    if (o.use_features) {
      feats = torch::randn({batch, 12});
      in.set("features", feats);
    }
    const auto [va, logits] = model->forward(ids, mask, feats);
    ref.set("valence_arousal", va);
    ref.set("quadrant", torch::softmax(logits, -1));
    onnx::onnxruntime_parity(path, in, ref).require_passed("emotion batch " + std::to_string(batch));
  }
}

INSTANTIATE_TEST_SUITE_P(Inputs, EmotionOnnx,
                         ::testing::Values(std::make_pair(true, true), std::make_pair(true, false),
                                           std::make_pair(false, true)),
                         [](const auto& info) {
                           return std::string(info.param.first ? "tokens" : "") +
                                  (info.param.second ? "features" : "");
                         });

// (bar_steps, num_players)
class GrooveOnnx : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

TEST_P(GrooveOnnx, MatchesLibTorch) {
  torch::manual_seed(12);
  GrooveModelOptions o;
  o.num_styles = 6;
  o.bar_steps = GetParam().first;
  o.num_players = GetParam().second;
  o.encoder.d_model = 32;
  o.encoder.d_ff = 48;
  GrooveModel model(o);
  model->eval();
  const std::string name = "groove" + std::to_string(o.bar_steps) + "_" + std::to_string(o.num_players);
  const std::string path = export_to(name, [&](onnx::ModelBuilder& b) { emit_groove_model(b, *model); });
  torch::NoGradGuard no_grad;
  for (auto [batch, steps] : std::vector<std::pair<int64_t, int64_t>>{{1, 32}, {4, 16}, {2, 37}}) {
    data::NamedTensors in, ref;
    in.set("hits", (torch::rand({batch, steps, 9}) > 0.6).to(torch::kFloat));
    in.set("tempo", torch::rand({batch, 1}));
    at::Tensor player;
    if (o.num_players > 0) {
      player = torch::randint(0, o.num_players + 1, {batch}, torch::kLong);
      in.set("player", player);
    }
    const auto [offsets, velocities, style] = model->forward(in.at("hits"), in.at("tempo"), player);
    ref.set("offsets", offsets);
    ref.set("velocities", velocities);
    ref.set("style", torch::softmax(style, -1));
    onnx::onnxruntime_parity(path, in, ref).require_passed(name + " steps " + std::to_string(steps));
  }
}

INSTANTIATE_TEST_SUITE_P(BarStepsAndPlayers, GrooveOnnx,
                         ::testing::Values(std::pair<int64_t, int64_t>{0, 0}, std::pair<int64_t, int64_t>{16, 0},
                                           std::pair<int64_t, int64_t>{16, 4}),
                         [](const auto& info) {
                           return "bar" + std::to_string(info.param.first) + "_players" +
                                  std::to_string(info.param.second);
                         });

}  // namespace
}  // namespace kmidi::models

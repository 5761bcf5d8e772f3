#include "models/MidiGenerator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

namespace kmidi::models {
namespace {

MidiGeneratorOptions small_options(Conditioning c) {
  MidiGeneratorOptions o;
  o.vocab_size = 97;
  o.d_model = 32;
  o.n_layers = 2;
  o.n_heads = 4;
  o.d_ff = 64;
  o.dropout = 0.0;
  o.conditioning = c;
  o.condition_tokens = 3;
  return o;
}

class GeneratorTest : public ::testing::TestWithParam<Conditioning> {
 protected:
  void SetUp() override { torch::manual_seed(7); }
};

TEST_P(GeneratorTest, CachedStepsEqualFullForward) {
  MidiGenerator model(small_options(GetParam()));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, 97, {2, 23}, torch::kLong);
  const auto emotion = torch::randn({2, 64});
  const auto full = model->forward(ids, emotion);
  KVCache cache;
  std::vector<at::Tensor> pieces;
  // Uneven chunks: a prompt of 5, then one token at a time, then a chunk of 7.
  pieces.push_back(model->forward_cached(ids.narrow(1, 0, 5), emotion, cache));
  for (int64_t t = 5; t < 16; ++t) pieces.push_back(model->forward_cached(ids.narrow(1, t, 1), emotion, cache));
  pieces.push_back(model->forward_cached(ids.narrow(1, 16, 7), emotion, cache));
  EXPECT_EQ(cache.length(), 23);
  const auto stitched = torch::cat(pieces, 1);
  EXPECT_LT((stitched - full).abs().max().item<double>(), 1e-5);
}

TEST_P(GeneratorTest, IsCausal) {
  MidiGenerator model(small_options(GetParam()));
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 97, {1, 12}, torch::kLong);
  const auto emotion = torch::randn({1, 64});
  const auto before = model->forward(ids, emotion);
  ids[0][8] = (ids[0][8].item<int64_t>() + 1) % 97;
  const auto after = model->forward(ids, emotion);
  EXPECT_LT((after.narrow(1, 0, 8) - before.narrow(1, 0, 8)).abs().max().item<double>(), 1e-6);
  EXPECT_GT((after.narrow(1, 8, 4) - before.narrow(1, 8, 4)).abs().max().item<double>(), 1e-4);
}

TEST_P(GeneratorTest, EmotionChangesTheOutput) {
  MidiGenerator model(small_options(GetParam()));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, 97, {1, 6}, torch::kLong);
  const auto a = model->forward(ids, torch::zeros({1, 64}));
  const auto b = model->forward(ids, torch::ones({1, 64}));
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-4);
}

TEST_P(GeneratorTest, PaddingIsMaskedAndPositionsAreRelative) {
  // Rotary attention depends on relative positions only, and prefix or memory
  // keys carry none: the real tokens of a left-padded row, with the padding
  // masked, must give the same logits as the unpadded row.
  MidiGenerator model(small_options(GetParam()));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(1, 97, {1, 9}, torch::kLong);
  const auto emotion = torch::randn({1, 64});
  const auto plain = model->forward(ids, emotion);
  const auto padded_ids = torch::cat({torch::zeros({1, 4}, torch::kLong), ids}, 1);
  const auto mask = torch::cat({torch::zeros({1, 4}, torch::kLong), torch::ones({1, 9}, torch::kLong)}, 1);
  const auto padded = model->forward(padded_ids, emotion, mask);
  EXPECT_TRUE(torch::isfinite(padded).all().item<bool>());
  EXPECT_LT((padded.narrow(1, 4, 9) - plain).abs().max().item<double>(), 1e-4);
  // Right padding: real positions do not see later pads at all.
  const auto right = model->forward(torch::cat({ids, torch::zeros({1, 3}, torch::kLong)}, 1), emotion,
                                    torch::cat({torch::ones({1, 9}, torch::kLong), torch::zeros({1, 3}, torch::kLong)}, 1));
  EXPECT_LT((right.narrow(1, 0, 9) - plain).abs().max().item<double>(), 1e-5);
}

TEST_P(GeneratorTest, SequencesLongerThanAnyTrainingLengthWork) {
  MidiGenerator model(small_options(GetParam()));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, 97, {1, 2500}, torch::kLong);
  const auto emotion = torch::randn({1, 64});
  const auto full = model->forward(ids, emotion);
  ASSERT_EQ(full.sizes(), (std::vector<int64_t>{1, 2500, 97}));
  EXPECT_TRUE(torch::isfinite(full).all().item<bool>());
  KVCache cache;
  model->forward_cached(ids.narrow(1, 0, 2499), emotion, cache);
  const auto last = model->forward_cached(ids.narrow(1, 2499, 1), emotion, cache);
  EXPECT_LT((last[0][0] - full[0][2499]).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Conditioning, GeneratorTest,
                         ::testing::Values(Conditioning::kPrefix, Conditioning::kCrossAttention),
                         [](const auto& info) { return to_string(info.param); });

TEST(Generator, RegisteredNamesAreTheCheckpointContract) {
  MidiGenerator prefix(small_options(Conditioning::kPrefix));
  std::set<std::string> names;
  for (const auto& p : prefix->named_parameters()) names.insert(p.key());
  const std::set<std::string> expected_prefix = {
      "token_embedding.weight", "final_norm.weight", "final_norm.bias",
      "layers.0.attn_norm.weight", "layers.0.attn_norm.bias", "layers.0.attn.qkv.weight", "layers.0.attn.qkv.bias",
      "layers.0.attn.out.weight", "layers.0.attn.out.bias", "layers.0.prefix.weight", "layers.0.prefix.bias",
      "layers.0.mlp_norm.weight", "layers.0.mlp_norm.bias", "layers.0.mlp.fc1.weight", "layers.0.mlp.fc1.bias",
      "layers.0.mlp.fc2.weight", "layers.0.mlp.fc2.bias",
      "layers.1.attn_norm.weight", "layers.1.attn_norm.bias", "layers.1.attn.qkv.weight", "layers.1.attn.qkv.bias",
      "layers.1.attn.out.weight", "layers.1.attn.out.bias", "layers.1.prefix.weight", "layers.1.prefix.bias",
      "layers.1.mlp_norm.weight", "layers.1.mlp_norm.bias", "layers.1.mlp.fc1.weight", "layers.1.mlp.fc1.bias",
      "layers.1.mlp.fc2.weight", "layers.1.mlp.fc2.bias"};
  EXPECT_EQ(names, expected_prefix);

  auto o = small_options(Conditioning::kCrossAttention);
  o.n_layers = 1;
  o.tie_embeddings = false;
  MidiGenerator cross(o);
  names.clear();
  for (const auto& p : cross->named_parameters()) names.insert(p.key());
  for (const char* n : {"memory.weight", "layers.0.cross_norm.weight", "layers.0.cross.q.weight",
                        "layers.0.cross.kv.weight", "layers.0.cross.out.weight", "lm_head.weight"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  EXPECT_FALSE(names.count("layers.0.prefix.weight"));
}

TEST(Generator, RotaryMatchesHandComputation) {
  // One head of size 4 at position 3: pairs (0,2) and (1,3) rotate by 3·θ_i,
  // θ_0 = 1, θ_1 = base^(-2/4) = 0.01 for base 10000.
  const auto x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 1, 4});
  const auto y = apply_rotary(x, 3, 10000.0);
  const double a0 = 3.0, a1 = 0.03;
  const std::vector<double> expected = {1 * std::cos(a0) - 3 * std::sin(a0), 2 * std::cos(a1) - 4 * std::sin(a1),
                                        3 * std::cos(a0) + 1 * std::sin(a0), 4 * std::cos(a1) + 2 * std::sin(a1)};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y.flatten()[i].item<double>(), expected[i], 1e-5);
}

TEST(Generator, InvalidOptionsAreRejectedByName) {
  auto o = small_options(Conditioning::kPrefix);
  o.vocab_size = 0;
  EXPECT_THROW(
      {
        try {
          MidiGenerator m(o);
        } catch (const std::invalid_argument& e) {
          EXPECT_NE(std::string(e.what()).find("vocab_size must be positive"), std::string::npos);
          throw;
        }
      },
      std::invalid_argument);
  o = small_options(Conditioning::kPrefix);
  o.n_heads = 5;
  EXPECT_THROW(MidiGenerator m(o), std::invalid_argument);
  EXPECT_THROW(parse_conditioning("film"), std::invalid_argument);
}

}  // namespace
}  // namespace kmidi::models

// The fast paths of models/Layers.h: blocked causal attention against the
// plain masked softmax it replaces (forward and backward, prefix keys, cached
// keys, padding, the generator across many blocks), and the CPU dropout mask
// against the Bernoulli distribution it stands for.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/TorchCompat.h"
#include "models/Layers.h"
#include "models/MidiGenerator.h"

namespace kmidi::models {
namespace {

/// The reference: full scores in float64, masked with -inf, heads merged.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& allowed) {
  const auto q64 = q.to(torch::kDouble), k64 = k.to(torch::kDouble), v64 = v.to(torch::kDouble);
  auto scores = torch::matmul(q64, k64.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  const auto out = torch::matmul(torch::softmax(scores, -1), v64);
  return out.permute({0, 2, 1, 3}).reshape({q.size(0), q.size(2), q.size(1) * q.size(3)});
}

/// Causal over `steps` queries after `visible` always-visible keys, minus padded keys.
torch::Tensor causal_mask(int64_t batch, int64_t steps, int64_t visible, const torch::Tensor& key_padding) {
  auto allowed = torch::ones({steps, visible + steps}, torch::kBool).tril(visible).view({1, 1, steps, visible + steps});
  if (key_padding.defined()) allowed = allowed.logical_and(key_padding.view({batch, 1, 1, visible + steps}));
  return allowed;
}

struct Shape {
  int64_t steps, visible, block;
};

class CausalAttention : public ::testing::TestWithParam<Shape> {};

TEST_P(CausalAttention, EqualsFullMaskedSoftmaxWithItsGradients) {
  const auto [steps, visible, block] = GetParam();
  torch::manual_seed(3);
  const int64_t batch = 2, heads = 3, hd = 8, keys = visible + steps;
  const auto q = torch::randn({batch, heads, steps, hd}, torch::requires_grad());
  const auto k = torch::randn({batch, heads, keys, hd}, torch::requires_grad());
  const auto v = torch::randn({batch, heads, keys, hd}, torch::requires_grad());
  // Row 1 pads its last 5 keys (right padding, as training batches have).
  auto padding = torch::ones({batch, keys}, torch::kBool);
  padding[1].narrow(0, keys - 5, 5).fill_(false);
  const auto allowed = causal_mask(batch, steps, visible, padding);

  const auto out = causal_attention(q, k, v, attention_bias(allowed, torch::kFloat), 0.0, false, block);
  const auto expected = reference_attention(q, k, v, allowed);
  ASSERT_EQ(out.sizes(), expected.sizes());
  EXPECT_LT((out.to(torch::kDouble) - expected).abs().max().item<double>(), 2e-5);

  const auto weights = torch::randn(out.sizes(), torch::kDouble);
  const auto grads = torch::autograd::grad({(out.to(torch::kDouble) * weights).sum()}, {q, k, v});
  const auto expected_grads = torch::autograd::grad({(expected * weights).sum()}, {q, k, v});
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_LT((grads[i].to(torch::kDouble) - expected_grads[i]).abs().max().item<double>(), 5e-5) << "input " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Blocks, CausalAttention,
                         ::testing::Values(Shape{37, 0, 8},     // blocks of 8, last one short
                                           Shape{37, 4, 8},     // prefix keys
                                           Shape{40, 4, 128},   // one block
                                           Shape{33, 12, 1},    // a row per block
                                           Shape{3, 20, 2}));   // cached keys before a few new rows

TEST(CausalAttention, Bf16AutocastStaysWithinBf16Rounding) {
  torch::manual_seed(4);
  const int64_t batch = 2, heads = 2, steps = 70, visible = 3, hd = 16;
  const auto q = torch::randn({batch, heads, steps, hd}), k = torch::randn({batch, heads, visible + steps, hd});
  const auto v = torch::randn({batch, heads, visible + steps, hd});
  const auto allowed = causal_mask(batch, steps, visible, {});
  compat::set_autocast_dtype(c10::DeviceType::CPU, at::kBFloat16);
  compat::set_autocast_enabled(c10::DeviceType::CPU, true);
  const c10::ScalarType scores = score_dtype(torch::kCPU, torch::kFloat);
  const auto out = causal_attention(q.to(at::kBFloat16), k.to(at::kBFloat16), v.to(at::kBFloat16),
                                    attention_bias(allowed, scores), 0.0, false, 16);
  compat::set_autocast_enabled(c10::DeviceType::CPU, false);
  EXPECT_EQ(scores, at::kBFloat16);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  EXPECT_LT((out.to(torch::kDouble) - reference_attention(q, k, v, allowed)).abs().max().item<double>(), 0.05);
}

TEST(CausalAttention, Bf16SoftmaxIsFloat32SoftmaxRoundedOnce) {
  // causal_attention keeps bf16 scores because LibTorch's bf16 softmax
  // accumulates in float: a LibTorch that summed in bf16 would fail here.
  torch::manual_seed(6);
  const auto x = (torch::randn({96, 516}) * 3).to(at::kBFloat16);
  const auto in_bf16 = torch::softmax(x, -1).to(torch::kFloat);
  const auto rounded_once = torch::softmax(x.to(torch::kFloat), -1).to(at::kBFloat16).to(torch::kFloat);
  // At most one bf16 step (2^-7 relative) apart, and rarely at all (a float
  // sum in another order may land on the other side of a rounding boundary).
  EXPECT_LE(((in_bf16 - rounded_once).abs() - rounded_once.abs() * std::ldexp(1.0, -7)).max().item<float>(), 1e-30f);
  EXPECT_LT((in_bf16 != rounded_once).sum().item<int64_t>(), in_bf16.numel() / 1000);
  auto masked = x.clone();
  masked.narrow(1, 0, 300).fill_(std::numeric_limits<c10::BFloat16>::lowest());
  masked[0].fill_(std::numeric_limits<c10::BFloat16>::lowest());  // a row with every key masked: uniform, no NaN
  const auto probs = torch::softmax(masked, -1);
  EXPECT_TRUE(torch::isfinite(probs).all().item<bool>());
  EXPECT_EQ(probs.narrow(1, 0, 300).narrow(0, 1, 95).abs().max().item<float>(), 0.0f);
}

TEST(CausalAttention, GeneratorAcrossManyBlocksEqualsItsTokenByTokenCache) {
  // 300 tokens span three 128-row blocks; the KV-cached path attends one row
  // at a time over every earlier key, so it checks every block's key limit.
  MidiGeneratorOptions o;
  o.vocab_size = 50;
  o.d_model = 16;
  o.n_layers = 2;
  o.n_heads = 2;
  o.d_ff = 32;
  o.dropout = 0.0;
  o.condition_tokens = 2;
  torch::manual_seed(9);
  MidiGenerator model(o);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, o.vocab_size, {1, 300});
  const auto emotion = torch::randn({1, o.emotion_dim});
  const auto full = model->forward(ids, emotion);
  KVCache cache;
  double worst = 0;
  for (int64_t t = 0; t < 300; t += 25) {
    const auto step = model->forward_cached(ids.narrow(1, t, 25), emotion, cache);
    worst = std::max(worst, (step - full.narrow(1, t, 25)).abs().max().item<double>());
  }
  EXPECT_LT(worst, 1e-4);
}

TEST(Dropout, DropsAtRateAndScalesTheRestToKeepTheMean) {
  torch::manual_seed(1);
  const int64_t n = 1 << 20;
  const auto y = models::dropout(torch::ones({n}), 0.1, true);
  const double dropped = (y == 0).sum().item<double>() / n;
  // Binomial standard deviation sqrt(0.1 * 0.9 / n) = 2.9e-4: within 5 of them.
  EXPECT_NEAR(dropped, 0.1, 0.0015);
  const double scale = 65536.0 / (65536.0 - 6554.0);  // p rounded to 6554 / 65536
  EXPECT_TRUE(torch::all((y == 0).logical_or((y - scale).abs() < 1e-6)).item<bool>());
  EXPECT_NEAR(y.mean().item<double>(), 1.0, 0.002);
  // Neighbours (same hash word or the next) drop independently: P(both) = p^2.
  for (int64_t offset : {1, 3, 4, 5}) {
    const auto both = ((y.narrow(0, 0, n - offset) == 0).logical_and(y.narrow(0, offset, n - offset) == 0));
    EXPECT_NEAR(both.sum().item<double>() / (n - offset), 0.01, 0.0006) << "offset " << offset;
  }
}

TEST(Dropout, SeededByTorchAndIndependentOfTheThreadCount) {
  const auto x = torch::randn({3, 1001});
  torch::manual_seed(5);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto a = models::dropout(x, 0.3, true);
  const auto b = models::dropout(x, 0.3, true);
  at::set_num_threads(std::max(2, threads));
  torch::manual_seed(5);
  const auto a2 = models::dropout(x, 0.3, true);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(a, a2)) << "same seed, other thread count";
  EXPECT_FALSE(torch::equal(a, b)) << "the next call draws a new mask";
  EXPECT_TRUE(models::dropout(x, 0.3, false).is_same(x));
  EXPECT_TRUE(models::dropout(x, 0.0, true).is_same(x));
  EXPECT_EQ(models::dropout(x.to(at::kBFloat16), 0.3, true).scalar_type(), at::kBFloat16);
}

TEST(Dropout, GradientPassesThroughKeptElementsOnly) {
  torch::manual_seed(2);
  const auto x = torch::randn({64, 33}, torch::requires_grad());
  const auto y = models::dropout(x, 0.25, true);
  const auto g = torch::randn({64, 33});
  y.backward(g);
  const double scale = 65536.0 / (65536.0 - 16384.0);
  const auto kept = (y != 0).to(torch::kFloat);
  EXPECT_TRUE(torch::allclose(x.grad(), g * kept * scale, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(y, x.detach() * kept * scale, 1e-6, 1e-6));
}

}  // namespace
}  // namespace kmidi::models

#include "train/Optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/Errors.h"
#include "tests/train/TrainTestUtil.h"

namespace kmidi::train {
namespace {

OptimizerConfig adamw(double lr, double b1, double b2, double eps, double wd, bool amsgrad = false) {
  OptimizerConfig c;
  c.lr = lr;
  c.betas = {b1, b2};
  c.eps = eps;
  c.weight_decay = wd;
  c.amsgrad = amsgrad;
  return c;
}

TEST(AdamW, OneStepMatchesHandComputation) {
  const double lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
  const std::vector<double> p0{0.5, -1.0, 2.0, 0.25}, g{0.1, -0.3, 0.02, 0.0};
  torch::Tensor weight = torch::tensor(p0, torch::kDouble).reshape({2, 2}).requires_grad_(true);
  torch::Tensor bias = torch::tensor(p0, torch::kDouble).requires_grad_(true);
  weight.mutable_grad() = torch::tensor(g, torch::kDouble).reshape({2, 2});
  bias.mutable_grad() = torch::tensor(g, torch::kDouble);
  AdamW opt({{"w", weight, true}, {"b", bias, false}}, adamw(lr, b1, b2, eps, wd));
  opt.step();
  for (int i = 0; i < 4; ++i) {
    // t = 1: m = (1 - b1) g, v = (1 - b2) g^2, m_hat = m / (1 - b1), v_hat = v / (1 - b2).
    const double m = (1 - b1) * g[i], v = (1 - b2) * g[i] * g[i];
    const double update = lr / (1 - b1) * m / (std::sqrt(v) / std::sqrt(1 - b2) + eps);
    const double decayed = p0[i] * (1 - lr * wd) - update;
    const double plain = p0[i] - update;
    EXPECT_NEAR(weight.view(-1)[i].item<double>(), decayed, 1e-15) << i;
    EXPECT_NEAR(bias[i].item<double>(), plain, 1e-15) << i;
  }
  // A zero gradient moves a decayed weight by weight decay alone: 0.25 * (1 - 0.001).
  EXPECT_DOUBLE_EQ(weight.view(-1)[3].item<double>(), 0.25 * (1 - lr * wd));
  EXPECT_DOUBLE_EQ(bias[3].item<double>(), 0.25);
}

/// Runs `steps` of both optimizers on the same gradients; returns max |difference|.
double compare_with_torch(bool amsgrad, int steps) {
  torch::manual_seed(3);
  torch::Tensor w1 = torch::randn({8, 5}).requires_grad_(true), b1 = torch::randn({5}).requires_grad_(true);
  torch::Tensor w2 = w1.detach().clone().requires_grad_(true), b2 = b1.detach().clone().requires_grad_(true);
  AdamW mine({{"w", w1, true}, {"b", b1, false}}, adamw(2e-2, 0.85, 0.98, 1e-7, 0.05, amsgrad));
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{w2},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(2e-2).betas({0.85, 0.98}).eps(1e-7).weight_decay(0.05).amsgrad(amsgrad)));
  groups.emplace_back(std::vector<torch::Tensor>{b2},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(2e-2).betas({0.85, 0.98}).eps(1e-7).weight_decay(0.0).amsgrad(amsgrad)));
  torch::optim::AdamW reference(groups, torch::optim::AdamWOptions(2e-2));
  double worst = 0;
  for (int s = 0; s < steps; ++s) {
    const torch::Tensor gw = torch::randn({8, 5}) * (s % 3 == 0 ? 10.0 : 0.1), gb = torch::randn({5});
    w1.mutable_grad() = gw.clone();
    b1.mutable_grad() = gb.clone();
    w2.mutable_grad() = gw.clone();
    b2.mutable_grad() = gb.clone();
    mine.step();
    reference.step();
    worst = std::max({worst, (w1 - w2).abs().max().item<double>(), (b1 - b2).abs().max().item<double>()});
  }
  return worst;
}

TEST(AdamW, MatchesTorchAdamWOverManySteps) {
  EXPECT_EQ(compare_with_torch(false, 25), 0.0);
  EXPECT_EQ(compare_with_torch(true, 25), 0.0);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  torch::manual_seed(5);
  torch::Tensor a = torch::randn({4, 3}).requires_grad_(true);
  torch::Tensor b = a.detach().clone().requires_grad_(true);
  AdamW first({{"a", a, true}}, adamw(1e-2, 0.9, 0.999, 1e-8, 0.01, true));
  for (int s = 0; s < 3; ++s) {
    a.mutable_grad() = torch::randn({4, 3});
    first.step();
  }
  b.detach().copy_(a.detach());
  AdamW second({{"a", b, true}}, adamw(1e-2, 0.9, 0.999, 1e-8, 0.01, true));
  second.load_state(test::clone_all(first.state()));
  const torch::Tensor g = torch::randn({4, 3});
  a.mutable_grad() = g.clone();
  b.mutable_grad() = g.clone();
  first.step();
  second.step();
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_TRUE(test::bit_equal(first.state(), second.state()));
}

TEST(AdamW, LoadStateErrorsNameTheParameter) {
  torch::Tensor a = torch::zeros({2, 2}).requires_grad_(true);
  AdamW opt({{"layer.weight", a, true}}, adamw(1e-3, 0.9, 0.999, 1e-8, 0.0));
  try {
    opt.load_state({{"other.weight.exp_avg", torch::zeros({2, 2})}});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("'other.weight.exp_avg' belongs to no parameter"), std::string::npos);
  }
  try {
    opt.load_state({{"layer.weight.exp_avg", torch::zeros({3})}, {"layer.weight.step", torch::tensor(int64_t{1})}});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("'layer.weight.exp_avg' has shape [3], parameter 'layer.weight' has [2, 2]"),
              std::string::npos);
  }
  try {
    AdamW bad({{"x", a, true}}, adamw(1e-3, 0.9, 1.0, 1e-8, 0.0));
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("train.optimizer.betas"), std::string::npos);
  }
}

TEST(Clipping, GlobalNormHandComputed) {
  torch::Tensor a = torch::zeros({2}).requires_grad_(true), b = torch::zeros({1}).requires_grad_(true);
  torch::Tensor unused = torch::zeros({3}).requires_grad_(true);  // no gradient: skipped
  std::vector<NamedParameter> params{{"a", a, true}, {"b", b, true}, {"unused", unused, true}};
  a.mutable_grad() = torch::tensor({3.0f, 4.0f});
  b.mutable_grad() = torch::tensor({12.0f});
  // Global norm sqrt(9 + 16 + 144) = 13; clip to 6.5: coefficient 6.5 / (13 + 1e-6).
  const double norm = clip_gradients(params, 6.5).item<double>();
  EXPECT_NEAR(norm, 13.0, 1e-6);
  const double c = 6.5 / (13.0 + 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 * c, 1e-6);
  EXPECT_NEAR(a.grad()[1].item<double>(), 4.0 * c, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 12.0 * c, 1e-6);
  // Below the limit, or with clipping off: gradients unchanged, norm still reported.
  EXPECT_NEAR(clip_gradients(params, 100.0).item<double>(), 6.5, 1e-5);
  EXPECT_NEAR(b.grad()[0].item<double>(), 12.0 * c, 1e-6);
  b.mutable_grad() = torch::tensor({1000.0f});
  EXPECT_NEAR(clip_gradients(params, 0.0).item<double>(), std::sqrt(9 * c * c + 16 * c * c + 1e6), 1e-2);
  EXPECT_EQ(b.grad()[0].item<float>(), 1000.0f);
}

}  // namespace
}  // namespace kmidi::train

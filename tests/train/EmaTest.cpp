#include "train/Ema.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/Errors.h"

namespace kmidi::train {
namespace {

TEST(Ema, AverageMatchesHandComputation) {
  torch::Tensor p = torch::tensor({1.0f, -2.0f}).requires_grad_(true);
  std::vector<NamedParameter> params{{"p", p, true}};
  Ema ema(params, 0.9);
  // e0 = p0; e_k = 0.9 e_{k-1} + 0.1 p_k.
  const double values[3][2] = {{2.0, 0.0}, {4.0, 1.0}, {-1.0, 3.0}};
  double e[2] = {1.0, -2.0};
  for (const auto& v : values) {
    {
      torch::NoGradGuard no_grad;
      p.copy_(torch::tensor({static_cast<float>(v[0]), static_cast<float>(v[1])}));
    }
    ema.update();
    for (int i = 0; i < 2; ++i) e[i] = 0.9 * e[i] + 0.1 * v[i];
  }
  // By hand: e = [1.0 -> 1.1 -> 1.39 -> 1.151, -2.0 -> -1.8 -> -1.52 -> -1.068].
  EXPECT_NEAR(e[0], 1.151, 1e-12);
  EXPECT_NEAR(e[1], -1.068, 1e-12);
  const torch::Tensor avg = ema.state()[0].second;
  EXPECT_NEAR(avg[0].item<double>(), e[0], 1e-6);
  EXPECT_NEAR(avg[1].item<double>(), e[1], 1e-6);
}

TEST(Ema, ScopeSwapsInAveragesAndRestoresExactly) {
  torch::manual_seed(1);
  torch::Tensor p = torch::randn({5}).requires_grad_(true);
  std::vector<NamedParameter> params{{"p", p, true}};
  Ema ema(params, 0.5);
  {
    torch::NoGradGuard no_grad;
    p.add_(torch::randn({5}));
  }
  ema.update();
  const torch::Tensor trained = p.detach().clone();
  {
    Ema::Scope scope(ema);
    EXPECT_TRUE(torch::equal(p, ema.state()[0].second));
  }
  EXPECT_TRUE(torch::equal(p, trained));
}

TEST(Ema, LoadStateChecksNamesAndShapes) {
  torch::Tensor p = torch::zeros({3}).requires_grad_(true);
  Ema ema({{"p", p, true}}, 0.9);
  ema.load_state({{"p", torch::tensor({1.0f, 2.0f, 3.0f})}});
  EXPECT_EQ(ema.state()[0].second[2].item<float>(), 3.0f);
  try {
    ema.load_state({{"q", torch::zeros({3})}});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no average for parameter 'p'"), std::string::npos);
  }
  try {
    ema.load_state({{"p", torch::zeros({4})}});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [4]"), std::string::npos);
  }
}

}  // namespace
}  // namespace kmidi::train

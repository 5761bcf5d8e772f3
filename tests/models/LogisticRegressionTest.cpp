#include "models/LogisticRegression.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace kmidi::models {
namespace {

/// The objective's gradient at the fitted weights, computed with plain loops
/// (independent of the Newton code): mean (p - y) x + l2 w per class, (p - y)
/// for the intercepts. Returns its largest component.
double hand_gradient(const LogisticRegression& m, const at::Tensor& x, const at::Tensor& y, int64_t k, double l2) {
  const int64_t n = x.size(0), d = x.size(1);
  const auto xa = x.accessor<double, 2>();
  const auto ya = y.accessor<int64_t, 1>();
  const auto w = m.weights().accessor<double, 2>();
  const auto b = m.intercepts().accessor<double, 1>();
  std::vector<double> gw(static_cast<size_t>(d * k), 0.0), gb(static_cast<size_t>(k), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> z(static_cast<size_t>(k));
    double top = -1e300;
    for (int64_t c = 0; c < k; ++c) {
      z[c] = b[c];
      for (int64_t j = 0; j < d; ++j) z[c] += w[j][c] * xa[i][j];
      top = std::max(top, z[c]);
    }
    double total = 0.0;
    for (double& v : z) total += (v = std::exp(v - top));
    for (int64_t c = 0; c + 1 < k; ++c) {  // the reference class has no parameters
      const double r = z[c] / total - (ya[i] == c ? 1.0 : 0.0);
      gb[c] += r / n;
      for (int64_t j = 0; j < d; ++j) gw[j * k + c] += r * xa[i][j] / n;
    }
  }
  double worst = 0.0;
  for (int64_t c = 0; c + 1 < k; ++c) {
    worst = std::max(worst, std::abs(gb[c]));
    for (int64_t j = 0; j < d; ++j) worst = std::max(worst, std::abs(gw[j * k + c] + l2 * w[j][c]));
  }
  return worst;
}

TEST(LogisticRegressionTest, FittedWeightsZeroTheHandComputedGradient) {
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({80, 6}, torch::kDouble);
  const at::Tensor y = torch::randint(0, 4, {80}, torch::kLong);  // noisy labels: a bounded optimum
  LogisticRegressionOptions o;
  o.num_classes = 4;
  o.l2 = 0.05;
  const LogisticRegression m = LogisticRegression::fit(x, y, o);
  EXPECT_LT(hand_gradient(m, x, y, 4, o.l2), 1e-9);
  EXPECT_GT(m.iterations(), 1);
  // Column K-1 (the reference class) is zero.
  EXPECT_EQ(m.weights().select(1, 3).abs().max().item<double>(), 0.0);
  EXPECT_EQ(m.intercepts()[3].item<double>(), 0.0);
}

TEST(LogisticRegressionTest, OneDimensionalCaseMatchesItsClosedCondition) {
  // x = +1 is class 1 (the reference), x = -1 class 0: by symmetry b = 0 and
  // the weight w of class 0 solves sigmoid(w) = -l2 w (w < 0); bisection.
  const double l2 = 0.5;
  double lo = -10.0, hi = 0.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (1.0 / (1.0 + std::exp(-mid)) + l2 * mid > 0 ? hi : lo) = mid;
  }
  const at::Tensor x = torch::tensor({1.0, -1.0}, torch::kDouble).unsqueeze(1);
  const at::Tensor y = torch::tensor({1, 0}, torch::kLong);
  LogisticRegressionOptions o;
  o.l2 = l2;
  const LogisticRegression m = LogisticRegression::fit(x, y, o);
  EXPECT_NEAR(m.weights()[0][0].item<double>(), 0.5 * (lo + hi), 1e-9);
  EXPECT_NEAR(m.intercepts()[0].item<double>(), 0.0, 1e-9);
}

TEST(LogisticRegressionTest, SeparatesFarApartClassesPerfectly) {
  torch::manual_seed(5);
  const at::Tensor centres = torch::tensor({{6.0, 0.0}, {0.0, 6.0}, {-6.0, 0.0}, {0.0, -6.0}}, torch::kDouble);
  const at::Tensor labels = torch::arange(4, torch::kLong).repeat_interleave(30);
  const at::Tensor x = centres.index_select(0, labels) + torch::randn({120, 2}, torch::kDouble);
  LogisticRegressionOptions o;
  o.num_classes = 4;
  o.l2 = 1e-3;
  const LogisticRegression m = LogisticRegression::fit(x, labels, o);
  EXPECT_TRUE(m.predict(x).equal(labels));
  const at::Tensor unseen = centres + 0.5 * torch::randn({4, 2}, torch::kDouble);
  EXPECT_TRUE(m.predict(unseen).equal(torch::arange(4, torch::kLong)));
}

TEST(LogisticRegressionTest, RefusesBadInputsByName) {
  const at::Tensor x = torch::zeros({3, 2}, torch::kDouble);
  LogisticRegressionOptions o;
  try {
    LogisticRegression::fit(x, torch::tensor({0, 1, 2}, torch::kLong), o);
    FAIL() << "labels out of range were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("labels must be in 0..1"), std::string::npos) << e.what();
  }
  o.l2 = 0.0;
  try {
    LogisticRegression::fit(x, torch::tensor({0, 1, 1}, torch::kLong), o);
    FAIL() << "l2 = 0 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("l2 must be positive"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kmidi::models

// The spectocloud objective on a hand-computed two-point case: values of each
// term, the weighted total, the gradient of the matched colour error, and
// the shape checks.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "losses/CloudLoss.h"

namespace kmidi::losses {
namespace {

TEST(CloudLoss, HandComputedTwoPoints) {
  // pred p0 = (0,0,0), p1 = (1,0,0); target q0 = (0,0,0.5), q1 = (3,0,0).
  // nn(p0) = q0 (0.25), nn(p1) = q0 (1.25); nn'(q0) = p0 (0.25), nn'(q1) = p1 (4).
  // chamfer = (0.25 + 1.25) / 2 + (0.25 + 4) / 2 = 2.875.
  const at::Tensor p = torch::tensor(std::vector<float>{0.0f, 0, 0, 1, 0, 0}).view({1, 2, 3});
  const at::Tensor q = torch::tensor(std::vector<float>{0.0f, 0, 0.5, 3, 0, 0}).view({1, 2, 3});
  const at::Tensor c = torch::tensor(std::vector<float>{0.0f, 0, 0, 0, 1, 1, 1, 1}).view({1, 2, 4}).requires_grad_(true);
  const at::Tensor ct = torch::tensor(std::vector<float>{0.5f, 0.5, 0.5, 0.5, 1, 0, 1, 0}).view({1, 2, 4});
  const at::Tensor s = torch::tensor(std::vector<float>{0.0f, 0, 0, 1, 1, 1}).view({1, 2, 3});
  const at::Tensor st = torch::tensor(std::vector<float>{1.0f, 1, 1, 0, 0, 0}).view({1, 2, 3});
  CloudLossWeights w;
  w.position = 1.0;
  w.color = 0.5;
  w.property = 2.0;
  const CloudLossTerms t = cloud_loss(p, c, s, q, ct, st, w, /*chunk=*/1);
  EXPECT_NEAR(t.chamfer.item<float>(), 2.875, 1e-6);
  // colour: forward c0-C0 0.25, c1-C0 0.25 -> 0.25; backward C0-c0 0.25, C1-c1 0.5 -> 0.375.
  EXPECT_NEAR(t.color.item<float>(), 0.625, 1e-6);
  // properties: forward s0-S0 1, s1-S0 0 -> 0.5; backward S0-s0 1, S1-s1 1 -> 1.
  EXPECT_NEAR(t.property.item<float>(), 1.5, 1e-6);
  EXPECT_NEAR(t.total.item<float>(), 2.875 + 0.5 * 0.625 + 2.0 * 1.5, 1e-5);
  // d total / d c0 = 0.5 * (2 (c0 - C0) / 8 [forward] + 2 (c0 - C0) / 8 [backward]) = -0.125 per channel;
  // d / d c1 = 0.5 * (2 (c1 - C0) / 8 + 2 (c1 - C1) / 8) = 0.5 * (0.125 + (0, 0.25, 0, 0.25)).
  t.total.sum().backward();
  const at::Tensor expected = torch::tensor(std::vector<float>{-0.125f, -0.125, -0.125, -0.125, 0.0625, 0.1875, 0.0625, 0.1875}).view({1, 2, 4});
  EXPECT_TRUE(torch::allclose(c.grad(), expected, 0, 1e-6)) << c.grad();
}

TEST(CloudLoss, PerSampleTermsOfABatch) {
  torch::manual_seed(3);
  const at::Tensor p = torch::rand({3, 50, 3}), q = torch::rand({3, 40, 3});
  const at::Tensor c = torch::rand({3, 50, 4}), ct = torch::rand({3, 40, 4});
  const at::Tensor s = torch::rand({3, 50, 3}), st = torch::rand({3, 40, 3});
  const CloudLossTerms all = cloud_loss(p, c, s, q, ct, st, {}, 7);
  for (int64_t b = 0; b < 3; ++b) {
    const CloudLossTerms one = cloud_loss(p.narrow(0, b, 1), c.narrow(0, b, 1), s.narrow(0, b, 1), q.narrow(0, b, 1),
                                          ct.narrow(0, b, 1), st.narrow(0, b, 1), {}, 64);
    EXPECT_NEAR(all.total[b].item<float>(), one.total[0].item<float>(), 1e-5);
  }
}

TEST(CloudLoss, RejectsMismatchedShapes) {
  const at::Tensor p = torch::zeros({1, 5, 3});
  try {
    cloud_loss(p, torch::zeros({1, 5, 3}), torch::zeros({1, 5, 3}), p, torch::zeros({1, 5, 4}), torch::zeros({1, 5, 3}), {});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("colors must be [1, 5, 4]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kmidi::losses

#include "losses/Chamfer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace kmidi::losses {
namespace {

TEST(Chamfer, HandComputedValue) {
  // pred {(0,0), (2,0)}, target {(0,1)}: pred→target 1 and 5 (mean 3);
  // target→pred: nearest is (0,0) at 1. Total 4.
  const auto pred = torch::tensor({0.f, 0.f, 2.f, 0.f}).view({1, 2, 2});
  const auto target = torch::tensor({0.f, 1.f}).view({1, 1, 2});
  EXPECT_NEAR(chamfer_distance(pred, target).item<double>(), 4.0, 1e-6);
  EXPECT_NEAR(chamfer_distance(pred, target, 1).item<double>(), 4.0, 1e-6);
}

TEST(Chamfer, ChunkedEqualsBruteForceValuesAndGradients) {
  torch::manual_seed(0);
  for (int64_t chunk : {1, 7, 64, 1000}) {
    auto pred = torch::randn({3, 50, 3}, torch::requires_grad());
    auto target = torch::randn({3, 41, 3}, torch::requires_grad());
    auto pred_ref = pred.detach().clone().requires_grad_(true);
    auto target_ref = target.detach().clone().requires_grad_(true);
    const auto fast = chamfer_distance(pred, target, chunk);
    const auto slow = chamfer_distance_bruteforce(pred_ref, target_ref);
    EXPECT_LT((fast - slow).abs().max().item<double>(), 1e-5) << "chunk " << chunk;
    fast.sum().backward();
    slow.sum().backward();
    EXPECT_LT((pred.grad() - pred_ref.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LT((target.grad() - target_ref.grad()).abs().max().item<double>(), 1e-5);
  }
}

TEST(Chamfer, LargeSetsStayWithinChunkMemory) {
  // 1200 × 1200 points in chunks of 128: correct without the full matrix.
  torch::manual_seed(1);
  const auto pred = torch::rand({2, 1200, 3});
  const auto target = pred.flip(1) + 0.0;  // same set, other order: distance 0
  EXPECT_LT(chamfer_distance(pred, target, 128).abs().max().item<double>(), 1e-10);
}

TEST(Chamfer, RejectsMismatchedShapes) {
  EXPECT_THROW(chamfer_distance(torch::zeros({1, 4, 3}), torch::zeros({1, 4, 2})), std::invalid_argument);
  EXPECT_THROW(chamfer_distance(torch::zeros({2, 4, 3}), torch::zeros({1, 4, 3})), std::invalid_argument);
  EXPECT_THROW(chamfer_distance(torch::zeros({1, 0, 3}), torch::zeros({1, 4, 3})), std::invalid_argument);
}

}  // namespace
}  // namespace kmidi::losses

// compare_outputs against hand-computed differences.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "core/Errors.h"
#include "onnx/check/Parity.h"

namespace kmidi::onnx {
namespace {

data::NamedTensors one(const std::string& name, const torch::Tensor& t) {
  data::NamedTensors n;
  n.set(name, t);
  return n;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Parity, WithinToleranceReportsTheLargestDifferences) {
  const torch::Tensor ref = torch::tensor({1.0f, -2.0f, 0.0f, 100.0f});
  const torch::Tensor cand = torch::tensor({1.00005f, -2.0f, 0.00002f, 100.005f});
  const ParityReport r = compare_outputs(one("y", ref), one("y", cand));
  ASSERT_TRUE(r.passed()) << r.summary();
  ASSERT_EQ(r.outputs.size(), 1u);
  // float32 inputs: compare against the float32 values actually stored.
  const double d0 = std::abs(static_cast<double>(1.00005f) - 1.0);
  const double d3 = std::abs(static_cast<double>(100.005f) - 100.0);
  EXPECT_NEAR(r.outputs[0].max_abs_diff, std::max(d3, d0), 1e-12);
  // Relative difference ignores the reference's zero (|r| <= atol): max(d0/1, d3/100).
  EXPECT_NEAR(r.outputs[0].max_rel_diff, std::max(d0, d3 / 100.0), 1e-12);
  EXPECT_EQ(r.outputs[0].mismatched, 0);
  EXPECT_TRUE(contains(r.summary(), "parity passed"));
}

TEST(Parity, OutsideToleranceFailsWithCountAndSummary) {
  const torch::Tensor ref = torch::tensor({1.0f, 2.0f, 3.0f});
  const torch::Tensor cand = torch::tensor({1.0f, 2.5f, 3.001f});
  const ParityReport r = compare_outputs(one("logits", ref), one("logits", cand));
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outputs[0].mismatched, 2);
  EXPECT_NEAR(r.outputs[0].max_abs_diff, 0.5, 1e-6);
  EXPECT_NEAR(r.outputs[0].max_rel_diff, 0.25, 1e-6);
  const std::string s = r.summary();
  EXPECT_TRUE(contains(s, "parity FAILED: logits: 2 of 3 values differ (max abs 0.5, max rel 0.25)")) << s;
  try {
    r.require_passed("generator export");
    FAIL();
  } catch (const CheckFailed& e) {
    EXPECT_TRUE(contains(e.what(), "generator export: parity FAILED: logits")) << e.what();
  }
  // A looser tolerance accepts it: |0.5| <= 0.1 + 0.2·2.
  EXPECT_TRUE(compare_outputs(one("logits", ref), one("logits", cand), Tolerance{0.1, 0.2}).passed());
}

TEST(Parity, NonFiniteValues) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const torch::Tensor ref = torch::tensor({-inf, nan, 1.0f});
  EXPECT_TRUE(compare_outputs(one("s", ref), one("s", ref.clone())).passed());
  const ParityReport r = compare_outputs(one("s", ref), one("s", torch::tensor({-inf, 0.0f, 1.0f})));
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outputs[0].mismatched, 1);
  EXPECT_TRUE(std::isinf(r.outputs[0].max_abs_diff));
}

TEST(Parity, IntegersMustMatchExactly) {
  const torch::Tensor ref = torch::tensor({5L, 7L}, torch::kLong);
  EXPECT_TRUE(compare_outputs(one("ids", ref), one("ids", ref.clone())).passed());
  const ParityReport r =
      compare_outputs(one("ids", ref), one("ids", torch::tensor({5L, 8L}, torch::kLong)), Tolerance{10, 10});
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outputs[0].mismatched, 1);
}

TEST(Parity, ShapeDtypeNameAndOrderMismatches) {
  const torch::Tensor a = torch::zeros({2, 3});
  ParityReport r = compare_outputs(one("y", a), one("y", torch::zeros({3, 2})));
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outputs[0].problem, "shape [3, 2], expected [2, 3]");

  r = compare_outputs(one("y", a), one("y", a.to(torch::kDouble)));
  EXPECT_EQ(r.outputs[0].problem, "dtype float64, expected float32");

  r = compare_outputs(one("y", a), one("z", a));
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outputs[0].problem, "missing from the candidate");
  EXPECT_EQ(r.problems, std::vector<std::string>{"unexpected output 'z'"});

  data::NamedTensors ab, ba;
  ab.set("positions", a);
  ab.set("colors", a);
  ba.set("colors", a);
  ba.set("positions", a);
  r = compare_outputs(ab, ba);
  EXPECT_FALSE(r.passed());
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0], "output order differs: expected (positions, colors), got (colors, positions)");
  EXPECT_THROW(compare_outputs(ab, ab, Tolerance{-1, 0}), UsageError);
}

TEST(Parity, EmptyTensorsCompareEqual) {
  const torch::Tensor e = torch::zeros({2, 0});
  EXPECT_TRUE(compare_outputs(one("e", e), one("e", e.clone())).passed());
}

}  // namespace
}  // namespace kmidi::onnx

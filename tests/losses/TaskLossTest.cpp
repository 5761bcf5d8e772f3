#include "losses/TaskLoss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/Errors.h"

namespace kmidi::losses {
namespace {

TaskLossConfig parse(const std::string& yaml) {
  auto doc = config::Document::load_string(yaml, "loss.yaml", "/");
  TaskLossConfig c;
  doc.read_into(c);
  return c;
}

std::string config_error(const std::string& yaml) {
  try {
    parse(yaml);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

HeadConfig head_of(const std::string& yaml) { return parse(yaml).heads.at(0); }

TEST(TaskLoss, CrossEntropyWithLabelSmoothingAndClassWeights) {
  const auto h = head_of("heads: [{name: q, task: classification, num_classes: 3, label_smoothing: 0.1, class_weights: [1, 2, 1]}]");
  const auto logits = torch::tensor({1.0f, 2.0f, 0.5f}).view({1, 3});
  const auto target = torch::tensor({1}, torch::kLong);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(0.5);
  const double lp[3] = {1.0 - std::log(z), 2.0 - std::log(z), 0.5 - std::log(z)};
  const double smooth = 0.9 * -lp[1] - 0.1 * (lp[0] + lp[1] + lp[2]) / 3.0;
  EXPECT_NEAR(head_loss_per_sample(h, logits, target, {}).item<double>(), 2.0 * smooth, 1e-6);
}

TEST(TaskLoss, FocalLossMatchesFormula) {
  const auto h = head_of("heads: [{name: q, task: classification, loss: focal, num_classes: 2, focal_gamma: 2}]");
  const auto logits = torch::tensor({0.0f, 1.0f}).view({1, 2});
  const double p = std::exp(1.0) / (1.0 + std::exp(1.0));
  EXPECT_NEAR(head_loss_per_sample(h, logits, torch::tensor({1}, torch::kLong), {}).item<double>(),
              -std::pow(1 - p, 2) * std::log(p), 1e-6);
}

TEST(TaskLoss, RegressionLossesWithMask) {
  const auto out = torch::tensor({1.0f, 2.0f, 5.0f}).view({1, 3});
  const auto tgt = torch::tensor({0.0f, 2.5f, 0.0f}).view({1, 3});
  const auto mask = torch::tensor({1.0f, 1.0f, 0.0f}).view({1, 3});
  EXPECT_NEAR(head_loss_per_sample(head_of("heads: [{name: r, task: regression}]"), out, tgt, mask).item<double>(),
              (1.0 + 0.25) / 2, 1e-6);
  EXPECT_NEAR(head_loss_per_sample(head_of("heads: [{name: r, task: regression, loss: l1}]"), out, tgt, {}).item<double>(),
              (1.0 + 0.5 + 5.0) / 3, 1e-6);
  // Huber δ=1: |d|=1 → 0.5, |d|=0.5 → 0.125, |d|=5 → 4.5.
  EXPECT_NEAR(head_loss_per_sample(head_of("heads: [{name: r, task: regression, loss: huber}]"), out, tgt, {}).item<double>(),
              (0.5 + 0.125 + 4.5) / 3, 1e-6);
}

TEST(TaskLoss, MultiLabelBce) {
  const auto h = head_of("heads: [{name: m, task: multi_label, num_classes: 2}]");
  const auto x = torch::tensor({0.0f, 2.0f}).view({1, 2});
  const auto y = torch::tensor({1.0f, 0.0f}).view({1, 2});
  const double expected = (std::log(2.0) + std::log(1.0 + std::exp(2.0))) / 2;
  EXPECT_NEAR(head_loss_per_sample(h, x, y, {}).item<double>(), expected, 1e-6);
}

TEST(TaskLoss, WeightedSumAndUncertaintyWeighting) {
  auto cfg = parse(
      "heads:\n"
      "  - {name: va, task: regression, weight: 2}\n"
      "  - {name: q, task: classification, num_classes: 2}\n");
  data::NamedTensors outputs, targets;
  outputs.set("va", torch::tensor({1.0f, 0.0f}).view({2, 1}));
  outputs.set("q", torch::zeros({2, 2}));
  targets.set("va", torch::zeros({2, 1}));
  targets.set("q", torch::tensor({0, 1}, torch::kLong));
  TaskLoss fixed(cfg);
  auto r = fixed->forward(outputs, targets);
  EXPECT_NEAR(r.per_sample[0].item<double>(), 2 * 1.0 + std::log(2.0), 1e-6);
  EXPECT_NEAR(r.per_sample[1].item<double>(), 0.0 + std::log(2.0), 1e-6);
  ASSERT_EQ(r.head_sums.size(), 2u);
  EXPECT_NEAR(r.head_sums[0].second.item<double>(), 1.0, 1e-6);

  cfg.weighting = "uncertainty";
  TaskLoss learned(cfg);
  { torch::NoGradGuard g; learned->log_vars.fill_(std::log(4.0)); }
  r = learned->forward(outputs, targets);
  const double s = std::log(4.0);
  EXPECT_NEAR(r.per_sample[0].item<double>(), 2 * (0.5 / 4 * 1.0 + 0.5 * s) + (std::log(2.0) / 4 + 0.5 * s), 1e-6);
  r.per_sample.sum().backward();
  EXPECT_TRUE(learned->log_vars.grad().defined());
}

TEST(TaskLoss, ConfigRejectsLossThatDoesNotFitTheTask) {
  EXPECT_NE(config_error("heads: [{name: va, task: regression, loss: cross_entropy}]")
                .find("heads[0].loss: 'cross_entropy' does not fit task 'regression'; expected one of mse, huber, l1"),
            std::string::npos);
  EXPECT_NE(config_error("heads: [{name: q, task: classification}]").find("heads[0].num_classes: must be at least 2"),
            std::string::npos);
  EXPECT_NE(config_error("heads: [{name: q, task: classification, num_classes: 3, class_weights: [1, 2]}]")
                .find("class_weights: needs exactly num_classes (3)"),
            std::string::npos);
  EXPECT_NE(config_error("heads: [{name: r, task: regression, label_smoothing: 0.1}]")
                .find("label_smoothing: only applies to loss cross_entropy"),
            std::string::npos);
  EXPECT_NE(config_error("heads: [{name: a, task: regression}, {name: a, task: regression}]").find("appears twice"),
            std::string::npos);
  EXPECT_NE(config_error("heads: [{name: a, task: ranking}]").find("heads[0].task: must be one of"), std::string::npos);
}

std::string target_error(const std::string& yaml, const data::NamedTensors& outputs, const data::NamedTensors& targets) {
  try {
    validate_targets(parse(yaml), outputs, targets);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(TaskLoss, TargetsThatDoNotFitAreErrorsNamingTheHead) {
  const std::string cls = "heads: [{name: quadrant, task: classification, num_classes: 4}]";
  data::NamedTensors out;
  out.set("quadrant", torch::zeros({2, 4}));
  data::NamedTensors floats;
  floats.set("quadrant", torch::tensor({0.5f, 1.0f}));
  EXPECT_NE(target_error(cls, out, floats).find("head 'quadrant' (classification, cross_entropy): needs integer class ids"),
            std::string::npos);
  data::NamedTensors range;
  range.set("quadrant", torch::tensor({0, 4}, torch::kLong));
  EXPECT_NE(target_error(cls, out, range).find("class id 4 is out of range [0, 4)"), std::string::npos);
  data::NamedTensors shape;
  shape.set("quadrant", torch::tensor({0, 1, 2}, torch::kLong));
  EXPECT_NE(target_error(cls, out, shape).find("do not fit"), std::string::npos);
  data::NamedTensors missing;
  missing.set("valence", torch::zeros({2}));
  EXPECT_NE(target_error(cls, out, missing).find("the data has no target 'quadrant'; targets are valence"),
            std::string::npos);

  const std::string reg = "heads: [{name: va, task: regression}]";
  data::NamedTensors reg_out;
  reg_out.set("va", torch::zeros({2, 2}));
  data::NamedTensors ids;
  ids.set("va", torch::zeros({2, 2}, torch::kLong));
  EXPECT_NE(target_error(reg, reg_out, ids).find("head 'va' (regression, mse): needs floating-point targets"),
            std::string::npos);
  data::NamedTensors ok;
  ok.set("va", torch::zeros({2, 2}));
  EXPECT_EQ(target_error(reg, reg_out, ok), "");
}

TEST(TaskLoss, MaskedSequenceCrossEntropyIgnoresPaddedPositions) {
  const auto h = head_of("heads: [{name: tok, task: classification, num_classes: 3, mask: tok_mask}]");
  // One row of three positions; the last is padding and holds -100.
  const auto logits = torch::tensor({0.0f, 1.0f, 2.0f, 2.0f, 0.0f, 0.0f, 5.0f, 5.0f, 5.0f}).view({1, 3, 3});
  const auto target = torch::tensor({2, 0, -100}, torch::kLong).view({1, 3});
  const auto mask = torch::tensor({1, 1, 0}, torch::kLong).view({1, 3});
  const double z0 = 1 + std::exp(1.0) + std::exp(2.0), z1 = std::exp(2.0) + 2;
  const double expected = ((std::log(z0) - 2.0) + (std::log(z1) - 2.0)) / 2.0;
  EXPECT_NEAR(head_loss_per_sample(h, logits, target, mask).item<double>(), expected, 1e-6);

  data::NamedTensors outputs, targets;
  outputs.set("tok", logits);
  targets.set("tok", target);
  targets.set("tok_mask", mask);
  TaskLossConfig cfg = parse("heads: [{name: tok, task: classification, num_classes: 3, mask: tok_mask}]");
  EXPECT_NO_THROW(validate_targets(cfg, outputs, targets));  // -100 sits on a padded position
  targets = data::NamedTensors();
  targets.set("tok", torch::tensor({-1, 0, 0}, torch::kLong).view({1, 3}));
  targets.set("tok_mask", mask);
  try {
    validate_targets(cfg, outputs, targets);
    FAIL() << "a negative class id on a counted position was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("head 'tok' (classification, cross_entropy): class id -1 is out of range [0, 3)"),
              std::string::npos)
        << e.what();
  }
}

TEST(TaskLoss, MultiLabelFocalMatchesFormula) {
  const auto h = head_of("heads: [{name: m, task: multi_label, loss: focal, num_classes: 2, focal_gamma: 2}]");
  const auto x = torch::tensor({0.0f, 1.0f}).view({1, 2});
  const auto y = torch::tensor({1.0f, 0.0f}).view({1, 2});
  const double p1 = 1.0 / (1.0 + std::exp(-1.0));
  // Class 0: p_t = 0.5; class 1: p_t = 1 - p1.
  const double expected = (0.25 * std::log(2.0) + p1 * p1 * -std::log(1.0 - p1)) / 2.0;
  EXPECT_NEAR(head_loss_per_sample(h, x, y, {}).item<double>(), expected, 1e-6);
}

TEST(TaskLoss, EveryOtherMismatchIsAnErrorNamingTheHead) {
  data::NamedTensors out, tgt;
  out.set("va", torch::zeros({2, 2}));
  tgt.set("va", torch::zeros({2, 3}));
  EXPECT_NE(target_error("heads: [{name: va, task: regression}]", out, tgt)
                .find("head 'va' (regression, mse): output [2, 2] and target [2, 3] differ in shape"),
            std::string::npos);
  EXPECT_NE(target_error("heads: [{name: other, task: regression}]", out, tgt)
                .find("head 'other' (regression, mse): the model has no output 'other'; outputs are va"),
            std::string::npos);
  data::NamedTensors ml_out, ml_tgt;
  ml_out.set("tags", torch::zeros({2, 3}));
  ml_tgt.set("tags", torch::full({2, 3}, 2.0f));
  EXPECT_NE(target_error("heads: [{name: tags, task: multi_label, num_classes: 3}]", ml_out, ml_tgt)
                .find("head 'tags' (multi_label, bce): multi-label targets must lie in [0, 1]"),
            std::string::npos);
  EXPECT_NE(target_error("heads: [{name: tags, task: multi_label, num_classes: 4}]", ml_out, ml_tgt)
                .find("must have the same shape ending in num_classes 4"),
            std::string::npos);
  data::NamedTensors ps_out, ps_tgt;
  ps_out.set("points", torch::zeros({2, 5, 3}));
  ps_tgt.set("points", torch::zeros({2, 7, 2}));
  EXPECT_NE(target_error("heads: [{name: points, task: point_set}]", ps_out, ps_tgt)
                .find("head 'points' (point_set, chamfer): expected output [B, N, D] and target [B, M, D]"),
            std::string::npos);
  data::NamedTensors masked_tgt;
  masked_tgt.set("va", torch::zeros({2, 2}));
  EXPECT_NE(target_error("heads: [{name: va, task: regression, mask: va_mask}]", out, masked_tgt)
                .find("head 'va' (regression, mse): mask 'va_mask' is not among the targets (va)"),
            std::string::npos);
  masked_tgt.set("va_mask", torch::ones({3}));
  EXPECT_NE(target_error("heads: [{name: va, task: regression, mask: va_mask}]", out, masked_tgt)
                .find("mask 'va_mask' [3] does not cover the leading dimensions of target [2, 2]"),
            std::string::npos);
}

}  // namespace
}  // namespace kmidi::losses

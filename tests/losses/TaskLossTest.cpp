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

}  // namespace
}  // namespace kmidi::losses

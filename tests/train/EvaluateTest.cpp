#include "train/Evaluator.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "tests/train/GrooveFixture.h"
#include "tests/train/TrainTestUtil.h"
#include "train/Checkpoint.h"
#include "train/Job.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

/// Trains 8 steps of the fixture job in `dir` and returns its loaded config.
/// fp32: predictions and metrics are checked against an fp32 forward to 1e-5,
/// which bf16 autocast (auto on a CPU with native bf16) would round.
std::unique_ptr<JobConfig> trained_job(const std::string& dir, bool test_labels) {
  test::write_text(dir + "/job.yaml",
                   test::fixture_job_yaml(dir + "/runs",
                                          "{max_steps: 8, batch_size: 32, ema: {decay: 0.5}, precision: fp32}") +
                       "data: {test_labels: " + (test_labels ? "true" : "false") + "}\n");
  auto job = load_job_config(dir + "/job.yaml", {}, test::fixture_registry());
  run_training(*job, test::fixture_registry());
  return job;
}

/// The fixture net with a checkpoint's weights (`section`: model or ema), built here.
test::GrooveNet net_from(const std::string& checkpoint, const char* section) {
  test::GrooveNet net(32, 0.1);
  CheckpointFile f(checkpoint);
  NamedTensorList target;
  for (const auto& item : net->named_parameters(true)) target.emplace_back(item.key(), item.value());
  if (std::string(section) == checkpoint_section::kModel) {
    for (const auto& item : net->named_buffers(true)) target.emplace_back(item.key(), item.value());
  }
  load_named_tensors(f.tensors(section), target, checkpoint);
  net->eval();
  return net;
}

std::vector<nlohmann::json> jsonl(const std::string& path) {
  std::istringstream in(files::read_all(path));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(Evaluate, DataWithoutTargetsWritesPredictions) {
  const std::string dir = test::scratch_dir("eval_unlabelled");
  auto job = trained_job(dir, /*test_labels=*/false);
  EvaluateOptions options;
  options.checkpoint = dir + "/runs/job/checkpoints/step-0000000008.ckpt";
  options.split = "test";
  const EvaluateOutcome o = run_evaluation(*job, test::fixture_registry(), options);
  EXPECT_FALSE(o.result.labelled);
  EXPECT_TRUE(o.result.metrics.empty());
  EXPECT_EQ(o.result.items, 129);
  EXPECT_TRUE(o.used_ema);
  EXPECT_EQ(o.predictions_path, dir + "/runs/job/eval/test-step8/predictions.jsonl");

  const auto rows = test::read_groove_csv(KMIDI_SHARED_DATA "/groove-midi/groove/info.csv", "test");
  const auto predictions = jsonl(o.predictions_path);
  ASSERT_EQ(predictions.size(), rows.size());
  test::GrooveNet net = net_from(options.checkpoint, checkpoint_section::kEma);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(predictions[i]["id"], rows[i].id);
    EXPECT_EQ(predictions[i]["index"], static_cast<int64_t>(i));
    const torch::Tensor x = torch::tensor({rows[i].bpm, rows[i].is_fill, rows[i].meter, rows[i].drummer}).reshape({1, 4});
    EXPECT_NEAR(predictions[i]["log_duration"].get<double>(), net->forward(x)[0].item<double>(), 1e-5) << i;
  }
  const auto summary = nlohmann::json::parse(files::read_all(o.output_dir + "/metrics.json"));
  EXPECT_EQ(summary["labelled"], false);
  EXPECT_EQ(summary["items"], 129);
  EXPECT_TRUE(fs::exists(o.output_dir + "/config.yaml"));
}

TEST(Evaluate, LabelledDataGivesMetricsAndOptionalPredictions) {
  const std::string dir = test::scratch_dir("eval_labelled");
  auto job = trained_job(dir, /*test_labels=*/true);
  EvaluateOptions options;
  options.checkpoint = dir + "/runs/job/checkpoints/step-0000000008.ckpt";
  options.split = "test";
  options.use_ema = false;
  options.predictions = dir + "/preds.jsonl";
  const EvaluateOutcome o = run_evaluation(*job, test::fixture_registry(), options);
  ASSERT_TRUE(o.result.labelled);
  EXPECT_FALSE(o.used_ema);

  const auto rows = test::read_groove_csv(KMIDI_SHARED_DATA "/groove-midi/groove/info.csv", "test");
  test::GrooveNet net = net_from(options.checkpoint, checkpoint_section::kModel);
  torch::NoGradGuard no_grad;
  double squared = 0, absolute = 0;
  for (const auto& r : rows) {
    const torch::Tensor x = torch::tensor({r.bpm, r.is_fill, r.meter, r.drummer}).reshape({1, 4});
    const double err = net->forward(x)[0].item<double>() - std::log(r.duration);
    squared += err * err;
    absolute += std::abs(err);
  }
  const double n = static_cast<double>(rows.size());
  EXPECT_NEAR(o.result.metrics.at("loss"), squared / n, 1e-5 * squared / n);
  EXPECT_NEAR(o.result.metrics.at("mae"), absolute / n, 1e-5 * absolute / n);
  EXPECT_EQ(jsonl(dir + "/preds.jsonl").size(), rows.size());
}

TEST(Evaluate, RefusesACheckpointOfAnotherTaskOrOtherArtifacts) {
  const std::string dir = test::scratch_dir("eval_mismatch");
  auto job = trained_job(dir, true);
  const std::string good = dir + "/runs/job/checkpoints/step-0000000008.ckpt";
  CheckpointContents c = CheckpointFile(good).read_all();
  c.meta_json = "{\"task\": \"midi_generator\", \"step\": 8}";
  write_checkpoint(dir + "/other_task.ckpt", c);
  EvaluateOptions options;
  options.checkpoint = dir + "/other_task.ckpt";
  try {
    run_evaluation(*job, test::fixture_registry(), options);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("trained for task 'midi_generator', the config selects task 'groove_fixture'"),
              std::string::npos) << e.what();
  }
  c = CheckpointFile(good).read_all();
  c.artifacts["features.json"] = "{\"features\": [\"something else\"]}";
  write_checkpoint(dir + "/other_features.ckpt", c);
  options.checkpoint = dir + "/other_features.ckpt";
  try {
    run_evaluation(*job, test::fixture_registry(), options);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("the checkpoint's 'features.json' differs"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kmidi::train

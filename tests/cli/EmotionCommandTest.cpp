// kmidi train and kmidi evaluate on the emotion task as a user runs them:
// configs/emotion_tiny.yaml on the prepared EMOPIA, then its metrics on the
// labelled test split. (MIDI files without labels: kmidi predict,
// tests/cli/PredictCommandTest.cpp.)

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/datasets/EmopiaPrepared.h"
#include "tests/support/TestSupport.h"

namespace fs = std::filesystem;

namespace kmidi::cli {
namespace {

test::CommandResult kmidi(const std::vector<std::string>& args) {
  std::vector<std::string> argv{KMIDI_CLI, "--log-level", "warn"};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run(argv);  // stdout only: the command's JSON result
}

nlohmann::json last_json_line(const std::string& output) {
  std::string text = output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return nlohmann::json::parse(text.substr(text.rfind('\n') + 1));
}

TEST(EmotionCommand, TrainThenEvaluateTheTestSplit) {
  const std::string dir = test::scratch_dir("cli_emotion");
  const std::string config = test::source_path("configs/emotion_tiny.yaml");
  const std::vector<std::string> data{"data.prepared=" + test::emopia_prepared_dir(),
                                      "data.midi_root=" + test::emopia_midi_root(),
                                      "data.feature_cache=" + dir + "/features.cache", "run.output_dir=" + dir + "/runs"};
  std::vector<std::string> train{"train", "--config", config};
  train.insert(train.end(), data.begin(), data.end());
  const auto trained = kmidi(train);
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const std::string checkpoint = dir + "/runs/emotion_tiny/checkpoints/best.ckpt";
  ASSERT_TRUE(fs::exists(checkpoint));

  std::vector<std::string> labelled{"evaluate", "--config", config, "--checkpoint", checkpoint, "--split", "test"};
  labelled.insert(labelled.end(), data.begin(), data.end());
  const auto scored = kmidi(labelled);
  ASSERT_EQ(scored.exit_code, 0) << scored.output;
  const auto out = last_json_line(scored.output);
  EXPECT_EQ(out.at("labelled"), true);
  EXPECT_EQ(out.at("items"), 88);
  const auto metrics = out.at("metrics");
  EXPECT_TRUE(metrics.contains("quadrant_macro_f1")) << scored.output;
  EXPECT_TRUE(metrics.contains("confusion_Q4_Q1")) << scored.output;
}

}  // namespace
}  // namespace kmidi::cli

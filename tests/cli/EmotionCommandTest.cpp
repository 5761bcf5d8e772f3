// kmidi train and kmidi evaluate on the emotion task as a user runs them:
// configs/emotion_tiny.yaml on the prepared EMOPIA, then evaluation of a
// folder of MIDI files without labels (predictions written, metrics skipped
// with a note).

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

TEST(EmotionCommand, TrainThenEvaluateAFolderWithoutLabels) {
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

  const std::string folder = dir + "/my midis";
  fs::create_directories(folder);
  fs::copy_file(test::emopia_midi_root() + "/Q1_0vLPYiPN7qY_0.mid", folder + "/first song.mid");
  fs::copy_file(test::emopia_midi_root() + "/Q3_0EWWyyV7RJA_0.mid", folder + "/second.mid");
  std::vector<std::string> evaluate{"evaluate", "--config", config, "--checkpoint", checkpoint, "--split", "test",
                                    "data.unlabelled_test=" + folder};
  evaluate.insert(evaluate.end(), data.begin(), data.end());
  const auto evaluated = kmidi(evaluate);
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.output;
  const auto out = last_json_line(evaluated.output);
  EXPECT_EQ(out.at("labelled"), false);
  EXPECT_EQ(out.at("items"), 2);
  EXPECT_EQ(out.at("note"), "the split has no targets: metrics skipped");
  EXPECT_FALSE(out.contains("metrics"));
  std::ifstream in(out.at("predictions").get<std::string>());
  std::string line;
  std::vector<std::string> ids;
  while (std::getline(in, line)) ids.push_back(nlohmann::json::parse(line).at("id").get<std::string>());
  EXPECT_EQ(ids, (std::vector<std::string>{"first song.mid", "second.mid"}));

  // The same checkpoint on the labelled test split reports the metrics.
  std::vector<std::string> labelled{"evaluate", "--config", config, "--checkpoint", checkpoint, "--split", "test"};
  labelled.insert(labelled.end(), data.begin(), data.end());
  const auto scored = kmidi(labelled);
  ASSERT_EQ(scored.exit_code, 0) << scored.output;
  const auto metrics = last_json_line(scored.output).at("metrics");
  EXPECT_TRUE(metrics.contains("quadrant_macro_f1")) << scored.output;
  EXPECT_TRUE(metrics.contains("confusion_Q4_Q1")) << scored.output;
}

}  // namespace
}  // namespace kmidi::cli

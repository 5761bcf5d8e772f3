// kmidi evaluate-generation as a user runs it: a tiny generator (4 steps on
// the repo's POP909 sample) judged by a tiny emotion model (configs/
// emotion_tiny.yaml on the prepared EMOPIA). The report's counts must agree
// with each other and with its own per-piece verdicts, and the judge's
// ceiling with what kmidi evaluate says of the same checkpoint on the test
// split. A judge that is not an emotion-task checkpoint is refused before
// anything is written.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <mutex>
#include <string>

#include "core/Files.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "tests/support/TestSupport.h"

namespace fs = std::filesystem;

namespace kmidi::cli {
namespace {

struct Result {
  int code = -1;
  std::string output;
};

Result kmidi(const std::string& args, bool with_stderr = true) {
  const std::string command = test::shell_quote(KMIDI_CLI) + " --log-level warn " + args +
                              (with_stderr ? " 2>&1" : " 2>/dev/null");
  const test::CommandResult r = test::run_shell(command);
  return {r.exit_code, r.output};
}

nlohmann::json last_json_line(const std::string& output) {
  std::string text = output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return nlohmann::json::parse(text.substr(text.rfind('\n') + 1));
}

struct Checkpoints {
  std::string generator, judge;
};

/// Both tiny checkpoints, trained once per test process.
const Checkpoints& tiny_checkpoints() {
  static Checkpoints c;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string dir = test::scratch_dir("cli_evalgen_train", test::ScratchLifetime::kProgram);
    const Result prepare = kmidi("prepare --config " + test::source_path("configs/prepare_pop909_sample.yaml") +
                                 " output.dir=" + dir + "/data");
    ASSERT_EQ(prepare.code, 0) << prepare.output;
    const Result gen = kmidi("train --config " + test::source_path("configs/midi_generator_tiny.yaml") + " data.dir=" +
                             dir + "/data run.output_dir=" + dir + " train.max_steps=4 train.eval_every=0");
    ASSERT_EQ(gen.code, 0) << gen.output;
    for (const auto& e : fs::directory_iterator(dir + "/midi_generator_tiny/checkpoints")) {
      if (e.path().filename().string().rfind("step-", 0) == 0) c.generator = std::max(c.generator, e.path().string());
    }
    const Result judge = kmidi("train --config " + test::source_path("configs/emotion_tiny.yaml") +
                               " data.prepared=" + test::emopia_prepared_dir() + " data.midi_root=" +
                               test::emopia_midi_root() + " run.output_dir=" + dir + "/runs");
    ASSERT_EQ(judge.code, 0) << judge.output;
    c.judge = dir + "/runs/emotion_tiny/checkpoints/best.ckpt";
  });
  return c;
}

TEST(EvaluateGeneration, ReportCountsAgreeWithTheConfusionMatrixAndTheJudgesOwnEvaluation) {
  const Checkpoints& c = tiny_checkpoints();
  ASSERT_FALSE(c.generator.empty());
  const std::string dir = test::scratch_dir("cli_evalgen");
  const std::string report_path = dir + "/report.json";
  const int n = 3;
  const Result r = kmidi("evaluate-generation --checkpoint " + c.generator + " --judge " + c.judge + " --count " +
                         std::to_string(n) + " --max-tokens 96 --seed 5 --guidance 1.5 --report " + report_path +
                         " --keep-pieces " + dir + "/pieces");
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json report = nlohmann::json::parse(files::read_all(report_path));
  EXPECT_EQ(last_json_line(r.output).at("report"), report_path);

  // Confusion: rows are the quadrants asked, N pieces each; 4N in all.
  const auto& matrix = report.at("confusion").at("matrix");
  ASSERT_EQ(matrix.size(), 4u);
  int64_t total = 0, diagonal = 0;
  for (size_t t = 0; t < 4; ++t) {
    ASSERT_EQ(matrix[t].size(), 4u);
    int64_t row = 0;
    for (size_t p = 0; p < 4; ++p) row += matrix[t][p].get<int64_t>();
    EXPECT_EQ(row, n) << "row Q" << t + 1;
    total += row;
    diagonal += matrix[t][t].get<int64_t>();
    const auto& q = report.at("agreement").at("Q" + std::to_string(t + 1));
    EXPECT_EQ(q.at("pieces"), n);
    EXPECT_DOUBLE_EQ(q.at("quadrant_agreement").get<double>(), matrix[t][t].get<double>() / n);
  }
  EXPECT_EQ(total, 4 * n);
  const auto& overall = report.at("agreement").at("overall");
  EXPECT_EQ(overall.at("pieces"), 4 * n);
  EXPECT_DOUBLE_EQ(overall.at("quadrant_agreement").get<double>(), static_cast<double>(diagonal) / (4 * n));

  // The per-piece verdicts add up to the same matrix and sign agreements.
  const auto& pieces = report.at("pieces");
  ASSERT_EQ(pieces.size(), static_cast<size_t>(4 * n));
  int64_t valence = 0, arousal = 0;
  int64_t recount[4][4] = {};
  for (const auto& p : pieces) {
    const int t = std::stoi(p.at("quadrant").get<std::string>().substr(1)) - 1;
    const int j = std::stoi(p.at("judged_quadrant").get<std::string>().substr(1)) - 1;
    ++recount[t][j];
    const auto vector = report.at("quadrant_vectors").at(p.at("quadrant").get<std::string>());
    const auto va = p.at("judged_valence_arousal");
    valence += (va[0].get<double>() >= 0) == (vector[0].get<double>() > 0);
    arousal += (va[1].get<double>() >= 0) == (vector[1].get<double>() > 0);
    EXPECT_EQ(p.at("skipped_tokens"), 0);
    EXPECT_TRUE(fs::exists(p.at("file").get<std::string>()));
  }
  for (size_t t = 0; t < 4; ++t) {
    for (size_t j = 0; j < 4; ++j) EXPECT_EQ(recount[t][j], matrix[t][j].get<int64_t>());
  }
  EXPECT_DOUBLE_EQ(overall.at("valence_sign_agreement").get<double>(), static_cast<double>(valence) / (4 * n));
  EXPECT_DOUBLE_EQ(overall.at("arousal_sign_agreement").get<double>(), static_cast<double>(arousal) / (4 * n));
  EXPECT_EQ(report.at("quadrant_vectors").at("Q2"), nlohmann::json({-0.8, 0.8}));
  EXPECT_EQ(report.at("skipped_tokens"), 0);
  EXPECT_TRUE(fs::exists(dir + "/pieces/Q4/002.mid"));

  // The ceiling is what kmidi evaluate reports for the judge on the test split.
  const Result evaluated = kmidi("evaluate --config " + test::source_path("configs/emotion_tiny.yaml") +
                                 " --checkpoint " + c.judge + " --split test data.prepared=" +
                                 test::emopia_prepared_dir() + " data.midi_root=" + test::emopia_midi_root() +
                                 " run.output_dir=" + dir + "/evaluate",
                                 false);
  ASSERT_EQ(evaluated.code, 0) << evaluated.output;
  const auto metrics = last_json_line(evaluated.output).at("metrics");
  const auto& ceiling = report.at("judge_on_real_test");
  EXPECT_EQ(ceiling.at("clips"), last_json_line(evaluated.output).at("items"));
  EXPECT_NEAR(ceiling.at("quadrant_accuracy").get<double>(), metrics.at("quadrant_accuracy").get<double>(), 1e-9);
  EXPECT_NEAR(ceiling.at("arousal_accuracy").get<double>(), metrics.at("arousal_accuracy").get<double>(), 1e-9);
  EXPECT_EQ(ceiling.at("confusion")[3][0].get<double>(), metrics.at("confusion_Q4_Q1").get<double>());

  // Every music metric compares the generated pieces with every real test clip.
  const auto& music = report.at("music_metrics");
  EXPECT_EQ(music.at("real_pieces").get<int64_t>(), ceiling.at("clips").get<int64_t>());
  EXPECT_EQ(music.at("generated_pieces").get<int64_t>() + music.at("generated_without_notes").get<int64_t>(), 4 * n);
  for (const char* name : {"pitch_class_entropy", "pitch_range", "polyphony", "note_density", "inter_onset_interval",
                           "note_duration", "velocity", "empty_bar_rate", "scale_consistency"}) {
    const auto& m = music.at("metrics").at(name);
    if (music.at("generated_pieces").get<int64_t>() > 0) {
      const double area = m.at("overlap_area").get<double>();
      EXPECT_GE(area, 0.0) << name;
      EXPECT_LE(area, 1.0) << name;
    }
    EXPECT_EQ(m.at("real").size(), music.at("real_pieces").get<size_t>()) << name;
    EXPECT_TRUE(music.at("per_quadrant").at("Q3").at("metrics").contains(name));
  }
}

TEST(EvaluateGeneration, AJudgeThatIsNotAnEmotionCheckpointIsRefusedAndNothingIsWritten) {
  const Checkpoints& c = tiny_checkpoints();
  ASSERT_FALSE(c.generator.empty());
  const std::string dir = test::scratch_dir("cli_evalgen_refused");
  const std::string report = dir + "/report.json";
  const std::string base = "evaluate-generation --checkpoint " + c.generator + " --count 1 --report " + report +
                           " --keep-pieces " + dir + "/pieces --judge ";

  const Result generator_as_judge = kmidi(base + c.generator);
  EXPECT_EQ(generator_as_judge.code, 2) << generator_as_judge.output;
  EXPECT_NE(generator_as_judge.output.find("--judge " + c.generator + ": a checkpoint of task 'midi_generator', "
                                           "not of task 'emotion'"),
            std::string::npos)
      << generator_as_judge.output;

  const Result missing = kmidi(base + dir + "/nothing.ckpt");
  EXPECT_EQ(missing.code, 2) << missing.output;
  EXPECT_NE(missing.output.find("--judge " + dir + "/nothing.ckpt: no such file"), std::string::npos) << missing.output;

  const std::string midi = test::emopia_midi_root() + "/Q1_0vLPYiPN7qY_0.mid";
  const Result not_a_checkpoint = kmidi(base + midi);
  EXPECT_EQ(not_a_checkpoint.code, 3) << not_a_checkpoint.output;
  EXPECT_NE(not_a_checkpoint.output.find(midi), std::string::npos) << not_a_checkpoint.output;

  const Result judge_as_generator =
      kmidi("evaluate-generation --checkpoint " + c.judge + " --judge " + c.judge + " --report " + report);
  EXPECT_EQ(judge_as_generator.code, 2) << judge_as_generator.output;
  EXPECT_NE(judge_as_generator.output.find("a checkpoint of task 'emotion', not of task 'midi_generator'"),
            std::string::npos)
      << judge_as_generator.output;

  EXPECT_FALSE(fs::exists(report));
  EXPECT_FALSE(fs::exists(dir + "/pieces"));
}

}  // namespace
}  // namespace kmidi::cli

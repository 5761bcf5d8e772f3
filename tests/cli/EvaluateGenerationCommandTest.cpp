// kmidi evaluate-generation as a user runs it: a tiny generator (4 steps on
// the repo's POP909 sample) judged by a tiny emotion model (configs/
// emotion_tiny.yaml on the prepared EMOPIA). The report's counts must agree
// with each other and with its own per-piece verdicts, and the judge's
// ceiling with what kmidi evaluate says of the same checkpoint on the test
// split. A judge that is not an emotion-task checkpoint is refused before
// anything is written.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
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
  std::string generator, judge, data;
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
    c.data = dir + "/data";
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
    row += report.at("confusion").at("empty_pieces")[t].get<int64_t>();
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
    EXPECT_EQ(p.at("empty").get<bool>(), p.at("notes").get<int64_t>() == 0);
    if (p.at("empty").get<bool>()) continue;  // not judged: it agrees on nothing
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

/// The tiny generator exported (kmidi export): its incremental graph, once per test process.
const std::string& tiny_incremental_graph() {
  static std::string graph;
  static std::once_flag once;
  std::call_once(once, [] {
    const Checkpoints& c = tiny_checkpoints();
    const std::string dir = test::scratch_dir("cli_evalgen_onnx_export", test::ScratchLifetime::kProgram);
    const Result exported = kmidi("export --config " + test::source_path("configs/midi_generator_tiny.yaml") +
                                  " data.dir=" + c.data + " --checkpoint " + c.generator + " --out " + dir);
    ASSERT_EQ(exported.code, 0) << exported.output;
    graph = dir + "/midi_generator_tiny_incremental.onnx";
    ASSERT_TRUE(fs::exists(graph)) << exported.output;
  });
  return graph;
}

/// A token-input judge (configs/emotion_tiny.yaml with data.inputs=tokens), trained on normalised clips
/// as configs/emotion.yaml's judge is (data.normalise), once per test process.
const std::string& tiny_token_judge() {
  static std::string judge;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string dir = test::scratch_dir("cli_evalgen_token_judge", test::ScratchLifetime::kProgram);
    const Result trained = kmidi("train --config " + test::source_path("configs/emotion_tiny.yaml") + " data.prepared=" +
                                 test::emopia_prepared_dir() + " data.midi_root=" + test::emopia_midi_root() +
                                 " data.inputs=tokens train.max_steps=4 train.eval_every=2 run.output_dir=" + dir +
                                 " data.normalise=velocity_mean:64,tempo_flat:120");
    ASSERT_EQ(trained.code, 0) << trained.output;
    judge = dir + "/emotion_tiny/checkpoints/best.ckpt";
  });
  return judge;
}

test::CommandResult ort_generate(const std::string& args) {
  return test::run_shell("node " + test::shell_quote(test::source_path("scripts/ort_generate.js")) + " " + args + " 2>&1");
}

// The ONNX path (scripts/ort_generate.js on the exported incremental graph,
// then evaluate-generation --pieces) against the LibTorch path (evaluate-
// generation generating with kmidi generate's code), same seeds: greedy and
// kmidi generate's default sampling, without and with guidance. The script
// draws LibTorch's CPU random numbers, and the two runtimes' logits differ by
// ~1e-7, so every piece must come out identical (same MIDI bytes), and the
// reports must agree count for count.
TEST(EvaluateGeneration, OnnxRuntimePiecesAreTheLibTorchPiecesAndGiveTheSameReport) {
  const Checkpoints& c = tiny_checkpoints();
  const std::string& graph = tiny_incremental_graph();
  ASSERT_FALSE(c.generator.empty());
  ASSERT_FALSE(graph.empty());
  const std::string dir = test::scratch_dir("cli_evalgen_onnx");
  const int n = 2;
  int index = 0;
  for (const std::string guidance : {"1", "1.5"}) {
    for (const std::string sampling : {"--top-k 1", "--temperature 0.85 --top-k 40 --top-p 0.92 --repetition-penalty 1.1"}) {
      const std::string options = "--count " + std::to_string(n) + " --max-tokens 64 --seed 11 --guidance " + guidance +
                                  " " + sampling;
      const std::string run = dir + "/" + std::to_string(index++);
      fs::create_directories(run);
      const Result libtorch = kmidi("evaluate-generation --checkpoint " + c.generator + " --judge " + c.judge + " " +
                                    options + " --keep-pieces " + run + "/libtorch --report " + run + "/libtorch.json");
      ASSERT_EQ(libtorch.code, 0) << libtorch.output;
      const test::CommandResult generated =
          ort_generate("--model " + graph + " --out " + run + "/tokens --quadrants " + options);
      ASSERT_EQ(generated.exit_code, 0) << generated.output;
      const Result onnx = kmidi("evaluate-generation --checkpoint " + c.generator + " --judge " + c.judge +
                                " --pieces " + run + "/tokens --keep-pieces " + run + "/onnx --report " + run + "/onnx.json");
      ASSERT_EQ(onnx.code, 0) << onnx.output;

      const std::string what = "guidance " + guidance + ", " + sampling;
      for (const char* q : {"Q1", "Q2", "Q3", "Q4"}) {
        for (int i = 0; i < n; ++i) {
          const std::string name = std::string(q) + "/00" + std::to_string(i) + ".mid";
          EXPECT_EQ(files::read_all(run + "/onnx/" + name), files::read_all(run + "/libtorch/" + name)) << what << ": " << name;
        }
      }
      const nlohmann::json l = nlohmann::json::parse(files::read_all(run + "/libtorch.json"));
      const nlohmann::json o = nlohmann::json::parse(files::read_all(run + "/onnx.json"));
      EXPECT_EQ(o.at("agreement"), l.at("agreement")) << what;
      EXPECT_EQ(o.at("confusion"), l.at("confusion")) << what;
      EXPECT_EQ(o.at("music_metrics").at("generated_pieces"), l.at("music_metrics").at("generated_pieces")) << what;
      EXPECT_EQ(o.at("skipped_tokens"), 0) << what;
      ASSERT_EQ(o.at("pieces").size(), l.at("pieces").size());
      for (size_t i = 0; i < o.at("pieces").size(); ++i) {
        for (const char* key : {"quadrant", "seed", "tokens", "notes", "skipped_tokens", "empty", "judged_quadrant"}) {
          EXPECT_EQ(o["pieces"][i].at(key), l["pieces"][i].at(key)) << what << ": piece " << i << " " << key;
        }
      }
      EXPECT_EQ(o.at("count_per_quadrant").at("Q3"), n);
      EXPECT_EQ(o.at("pieces_from").at("generation").at("sampling").at("guidance").get<double>(), std::stod(guidance));
    }
  }
}

/// The first EMOPIA clip of quadrant `q` ("Q1".."Q4").
std::string emopia_clip(const std::string& q) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(test::emopia_midi_root())) {
    const std::string name = e.path().filename().string();
    if (name.rfind(q + "_", 0) == 0) names.push_back(e.path().string());
  }
  std::sort(names.begin(), names.end());
  return names.empty() ? std::string() : names.front();
}

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

// Pieces without notes (cut short by --max-tokens, or given as bare BOS) are
// counted per quadrant as empty_pieces and as disagreements, never judged
// (a token judge would read only BOS Bar ... EOS). Before, they were judged
// like music and took verdicts. A given MIDI clip is judged as kmidi predict
// judges it, the judge's data.normalise applied (its valence and arousal
// equal predict's); an out-of-vocabulary id counts as a skipped token.
TEST(EvaluateGeneration, PiecesWithoutNotesAreCountedAsEmptyAndNotJudgedByATokenJudge) {
  const Checkpoints& c = tiny_checkpoints();
  const std::string& judge = tiny_token_judge();
  ASSERT_FALSE(c.generator.empty());
  ASSERT_FALSE(judge.empty());
  const std::string dir = test::scratch_dir("cli_evalgen_empty");

  // Four new tokens cannot hold a note (Bar Position Pitch Velocity Duration).
  const Result cut = kmidi("evaluate-generation --checkpoint " + c.generator + " --judge " + judge +
                           " --count 2 --max-tokens 4 --report " + dir + "/cut.json");
  ASSERT_EQ(cut.code, 0) << cut.output;
  const nlohmann::json r = nlohmann::json::parse(files::read_all(dir + "/cut.json"));
  EXPECT_EQ(r.at("confusion").at("empty_pieces"), nlohmann::json({2, 2, 2, 2}));
  EXPECT_EQ(r.at("confusion").at("matrix"), nlohmann::json::array({{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}}));
  EXPECT_EQ(r.at("agreement").at("overall").at("pieces"), 8);
  EXPECT_EQ(r.at("agreement").at("overall").at("empty_pieces"), 8);
  EXPECT_EQ(r.at("agreement").at("overall").at("quadrant_agreement"), 0.0);
  EXPECT_EQ(r.at("agreement").at("Q2").at("arousal_sign_agreement"), 0.0);
  for (const auto& p : r.at("pieces")) {
    EXPECT_TRUE(p.at("empty").get<bool>());
    EXPECT_TRUE(p.at("judged_quadrant").is_null());
  }
  EXPECT_EQ(last_json_line(cut.output).at("empty_pieces"), 8);

  // Given pieces: BOS alone (empty) and a real clip per quadrant; Q1 also an unknown id.
  const std::string pieces = dir + "/given";
  std::vector<std::string> clips;
  for (const char* q : {"Q1", "Q2", "Q3", "Q4"}) {
    write_text(pieces + "/" + q + "/000.tokens.json", R"({"ids": [1], "seed": 7})");
    clips.push_back(emopia_clip(q));
    ASSERT_FALSE(clips.back().empty()) << q;
    fs::copy_file(clips.back(), pieces + "/" + q + "/001.mid");
  }
  write_text(pieces + "/Q1/002.tokens.json", R"({"ids": [1, 100000]})");
  const Result given = kmidi("evaluate-generation --checkpoint " + c.generator + " --judge " + judge + " --pieces " +
                             pieces + " --report " + dir + "/given.json");
  ASSERT_EQ(given.code, 0) << given.output;
  const nlohmann::json g = nlohmann::json::parse(files::read_all(dir + "/given.json"));
  EXPECT_EQ(g.at("confusion").at("empty_pieces"), nlohmann::json({2, 1, 1, 1}));
  EXPECT_EQ(g.at("agreement").at("Q1").at("pieces"), 3);
  EXPECT_EQ(g.at("agreement").at("Q4").at("pieces"), 2);
  EXPECT_EQ(g.at("skipped_tokens"), 1);
  EXPECT_EQ(g.at("count_per_quadrant"), nlohmann::json({{"Q1", 3}, {"Q2", 2}, {"Q3", 2}, {"Q4", 2}}));

  // The judged clips take kmidi predict's verdicts.
  const Result predicted = kmidi("predict --checkpoint " + judge + " --out " + dir + "/predict.jsonl " + clips[0] + " " +
                                 clips[1] + " " + clips[2] + " " + clips[3]);
  ASSERT_EQ(predicted.code, 0) << predicted.output;
  std::vector<std::string> verdicts;
  std::vector<nlohmann::json> predicted_rows;
  std::ifstream lines(dir + "/predict.jsonl");
  for (std::string line; std::getline(lines, line);) {
    predicted_rows.push_back(nlohmann::json::parse(line));
    verdicts.push_back(predicted_rows.back().at("quadrant"));
  }
  ASSERT_EQ(verdicts.size(), 4u);
  std::vector<std::string> judged;
  std::vector<nlohmann::json> judged_va;
  for (const auto& p : g.at("pieces")) {
    if (p.at("empty").get<bool>()) continue;
    judged.push_back(p.at("judged_quadrant"));
    judged_va.push_back(p.at("judged_valence_arousal"));
  }
  EXPECT_EQ(judged, verdicts);
  ASSERT_EQ(judged_va.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(judged_va[i].at(0).get<double>(), predicted_rows[i].at("valence").get<double>(), 1e-5) << clips[i];
    EXPECT_NEAR(judged_va[i].at(1).get<double>(), predicted_rows[i].at("arousal").get<double>(), 1e-5) << clips[i];
  }
}

TEST(EvaluateGeneration, BadPiecesAreRefusedBeforeAnythingIsWritten) {
  const Checkpoints& c = tiny_checkpoints();
  ASSERT_FALSE(c.generator.empty());
  const std::string dir = test::scratch_dir("cli_evalgen_bad_pieces");
  const std::string base = "evaluate-generation --checkpoint " + c.generator + " --judge " + c.judge + " --report " +
                           dir + "/report.json --keep-pieces " + dir + "/kept --pieces " + dir + "/given";
  for (const char* q : {"Q1", "Q2", "Q4"}) write_text(dir + "/given/" + q + "/000.tokens.json", R"({"ids": [1]})");

  const Result no_q3 = kmidi(base);
  EXPECT_EQ(no_q3.code, 2) << no_q3.output;
  EXPECT_NE(no_q3.output.find("--pieces " + dir + "/given: no folder Q3"), std::string::npos) << no_q3.output;

  const Result with_count = kmidi(base + " --count 3");
  EXPECT_EQ(with_count.code, 2) << with_count.output;
  EXPECT_NE(with_count.output.find("excludes"), std::string::npos) << with_count.output;

  write_text(dir + "/given/Q3/000.tokens.json", R"({"ids": [1, "x"]})");
  const Result bad_id = kmidi(base);
  EXPECT_EQ(bad_id.code, 3) << bad_id.output;
  EXPECT_NE(bad_id.output.find(dir + "/given/Q3/000.tokens.json: ids[1] is \"x\""), std::string::npos) << bad_id.output;
  EXPECT_FALSE(fs::exists(dir + "/report.json"));
  EXPECT_FALSE(fs::exists(dir + "/kept"));
}

}  // namespace
}  // namespace kmidi::cli

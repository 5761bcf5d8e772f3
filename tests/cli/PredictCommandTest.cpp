// kmidi predict as a user runs it, on a tiny emotion model (configs/
// emotion_tiny.yaml on the prepared EMOPIA, reached through links that are
// removed after training, its feature cache with them): the predictions
// for EMOPIA test clips must equal what kmidi evaluate's labelled test run
// (the training data pipeline: shards, feature cache, stored statistics)
// predicts for the same clips; files that cannot be judged are skipped and
// named; a checkpoint of another task and inputs with nothing to predict are
// refused without writing. kmidi evaluate refuses data.unlabelled_test.
// A model trained with data.normalise gets it applied by predict: the same
// clip louder and at another stated tempo gets the same verdict.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/Files.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/midi/MidiWriter.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "tests/support/TestSupport.h"

namespace fs = std::filesystem;

namespace kmidi::cli {
namespace {

struct Result {
  int code = -1;
  std::string out, err;
};

/// Runs kmidi with `args`; stdout and stderr apart (stderr through a file in `dir`).
Result kmidi(const std::vector<std::string>& args, const std::string& dir) {
  std::string command = test::shell_quote(KMIDI_CLI) + " --log-level warn";
  for (const std::string& a : args) command += " " + test::shell_quote(a);
  const std::string err = dir + "/stderr.txt";
  const test::CommandResult r = test::run_shell(command + " 2>" + test::shell_quote(err));
  return {r.exit_code, r.output, fs::exists(err) ? files::read_all(err) : ""};
}

nlohmann::json last_json_line(const std::string& output) {
  std::string text = output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return nlohmann::json::parse(text.substr(text.rfind('\n') + 1));
}

/// The rows of a JSON Lines file, keys in file order.
std::vector<nlohmann::ordered_json> json_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::ordered_json> rows;
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::ordered_json::parse(line));
  return rows;
}

/// A valid Standard MIDI File with one empty track: no notes to judge.
std::string midi_without_notes() {
  const unsigned char bytes[] = {'M', 'T', 'h', 'd', 0, 0, 0, 6, 0, 0, 0, 1, 0x01, 0xE0,
                                 'M', 'T', 'r', 'k', 0, 0, 0, 4, 0x00, 0xFF, 0x2F, 0x00};
  return std::string(reinterpret_cast<const char*>(bytes), sizeof(bytes));
}

struct Trained {
  std::string dir, checkpoint, config;
  std::vector<std::string> data;               ///< the overrides it was trained with
  std::map<std::string, nlohmann::ordered_json> eval;  ///< kmidi evaluate's test predictions by clip id
};

/// The tiny emotion model, its labelled test predictions, then its training
/// data (shards, feature cache, MIDI files) made unreachable. Once per process.
const Trained& trained() {
  static Trained t;
  static std::once_flag once;
  std::call_once(once, [] {
    t.dir = test::scratch_dir("cli_predict_train", test::ScratchLifetime::kProgram);
    fs::create_directory_symlink(test::emopia_prepared_dir(), t.dir + "/prepared");
    fs::create_directory_symlink(test::emopia_midi_root(), t.dir + "/midis");
    t.config = test::source_path("configs/emotion_tiny.yaml");
    // The feature cache stays the default, <prepared>/emotion_features.cache: behind the link.
    t.data = {"data.prepared=" + t.dir + "/prepared", "data.midi_root=" + t.dir + "/midis",
              "run.output_dir=" + t.dir + "/runs"};
    std::vector<std::string> train{"train", "--config", t.config};
    train.insert(train.end(), t.data.begin(), t.data.end());
    const Result trained = kmidi(train, t.dir);
    ASSERT_EQ(trained.code, 0) << trained.err;
    t.checkpoint = t.dir + "/runs/emotion_tiny/checkpoints/best.ckpt";

    // fp32 as predict runs: auto may pick bf16 on this CPU.
    std::vector<std::string> evaluate{"evaluate", "--config", t.config, "--checkpoint", t.checkpoint, "--split", "test",
                                      "--predictions", t.dir + "/evaluate.jsonl", "train.precision=fp32"};
    evaluate.insert(evaluate.end(), t.data.begin(), t.data.end());
    const Result evaluated = kmidi(evaluate, t.dir);
    ASSERT_EQ(evaluated.code, 0) << evaluated.err;
    for (const auto& row : json_lines(t.dir + "/evaluate.jsonl")) t.eval[row.at("id").get<std::string>()] = row;

    fs::remove(t.dir + "/prepared");
    fs::remove(t.dir + "/midis");
  });
  return t;
}

const char* quadrant_of_signs(double valence, double arousal) {
  if (arousal >= 0) return valence >= 0 ? "Q1" : "Q2";
  return valence >= 0 ? "Q4" : "Q3";
}

TEST(PredictCommand, EqualsTheLabelledEvaluationWithoutTheTrainingDataAndNamesSkippedFiles) {
  const Trained& t = trained();
  ASSERT_FALSE(t.eval.empty());
  const std::string dir = test::scratch_dir("cli_predict");
  // Five test clips: three in a folder (one of them nested), two named as files.
  std::vector<std::string> ids;
  for (const auto& [id, row] : t.eval) {
    if (ids.size() < 5) ids.push_back(id);
  }
  ASSERT_EQ(ids.size(), 5u);
  fs::create_directories(dir + "/in/nested");
  std::map<std::string, std::string> id_of_file;
  const std::vector<std::string> destinations{dir + "/in/" + ids[0], dir + "/in/nested/" + ids[1],
                                              dir + "/in/" + ids[2], dir + "/" + ids[3], dir + "/" + ids[4]};
  for (size_t i = 0; i < ids.size(); ++i) {
    fs::copy_file(test::emopia_midi_root() + "/" + ids[i], destinations[i]);
    id_of_file[destinations[i]] = ids[i];
  }
  files::write_atomic(dir + "/in/x.mid", "not a MIDI file, only named like one\n");
  files::write_atomic(dir + "/in/empty.mid", "");
  files::write_atomic(dir + "/in/nested/silent.midi", midi_without_notes());
  files::write_atomic(dir + "/in/notes.txt", "not listed: neither *.mid nor *.midi\n");

  const std::string out = dir + "/predictions.jsonl";
  const Result r = kmidi({"predict", "--checkpoint", t.checkpoint, dir + "/in", destinations[3], destinations[4],
                          "--out", out},
                         dir);
  ASSERT_EQ(r.code, 0) << r.err;

  const nlohmann::json summary = last_json_line(r.out);
  EXPECT_EQ(summary.at("predicted"), 5);
  EXPECT_EQ(summary.at("skipped"), 3);
  EXPECT_EQ(summary.at("skipped_by_reason"), (nlohmann::json{{"empty_file", 1}, {"no_notes", 1}, {"not_midi", 1}}));
  std::map<std::string, std::string> reasons;
  for (const auto& s : summary.at("skipped_files")) reasons[s.at("file").get<std::string>()] = s.at("reason");
  EXPECT_EQ(reasons, (std::map<std::string, std::string>{{dir + "/in/empty.mid", "empty_file"},
                                                         {dir + "/in/nested/silent.midi", "no_notes"},
                                                         {dir + "/in/x.mid", "not_midi"}}));
  for (const auto& [file, reason] : reasons) {
    EXPECT_NE(r.err.find("skipped " + file + ": " + reason), std::string::npos) << r.err;
  }

  const std::vector<nlohmann::ordered_json> rows = json_lines(out);
  ASSERT_EQ(rows.size(), 5u);
  const std::vector<std::string> keys{"file",    "quadrant", "quadrant_probabilities", "valence",
                                      "arousal", "va_quadrant", "heads_agree"};
  std::vector<std::string> files_in_order;
  for (const auto& row : rows) {
    std::vector<std::string> row_keys;
    for (const auto& item : row.items()) row_keys.push_back(item.key());
    EXPECT_EQ(row_keys, keys);
    const std::string file = row.at("file");
    files_in_order.push_back(file);
    ASSERT_EQ(id_of_file.count(file), 1u) << file;
    const nlohmann::ordered_json& reference = t.eval.at(id_of_file.at(file));
    // kmidi evaluate: quadrant 1..4, probabilities and valence_arousal as lists.
    EXPECT_EQ(row.at("quadrant"), "Q" + std::to_string(reference.at("quadrant").get<int>())) << file;
    double total = 0;
    for (int q = 0; q < 4; ++q) {
      const double p = row.at("quadrant_probabilities").at("Q" + std::to_string(q + 1));
      EXPECT_NEAR(p, reference.at("quadrant_probabilities").at(q).get<double>(), 1e-5) << file;
      total += p;
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
    const double valence = row.at("valence"), arousal = row.at("arousal");
    EXPECT_NEAR(valence, reference.at("valence_arousal").at(0).get<double>(), 1e-5) << file;
    EXPECT_NEAR(arousal, reference.at("valence_arousal").at(1).get<double>(), 1e-5) << file;
    EXPECT_EQ(row.at("va_quadrant"), quadrant_of_signs(valence, arousal)) << file;
    EXPECT_EQ(row.at("heads_agree"), row.at("quadrant") == row.at("va_quadrant")) << file;
  }
  // Folders sorted recursively first, then the files in the order given.
  EXPECT_EQ(files_in_order, (std::vector<std::string>{destinations[0], destinations[2], destinations[1],
                                                      destinations[3], destinations[4]}));
  // Every line also parses with Python's json module.
  const test::CommandResult python = test::run_shell(
      test::python() + " -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]; print(\"ok\")' " +
      test::shell_quote(out));
  EXPECT_EQ(python.exit_code, 0);
  EXPECT_EQ(python.output, "ok\n");
}

/// `score` with every velocity v set to max(1, round(v / 2.1)): at most 61, so doubling it never clips.
midi::Score quiet_copy(midi::Score score) {
  for (midi::Note& n : score.notes) n.velocity = std::max(1, static_cast<int>(std::lround(n.velocity / 2.1)));
  return score;
}

/// `score` twice as loud, and stated at half its bpm with twice the ticks per
/// quarter (same seconds; kmidi's tempo_meta:0.5): conventions, not emotion.
midi::Score loud_slow_copy(midi::Score score) {
  for (midi::Note& n : score.notes) n.velocity *= 2;
  score.division.ticks_per_quarter *= 2;
  for (midi::TempoChange& t : score.tempos) t.microseconds_per_quarter *= 2;
  score.update_times();
  return score;
}

/// predict's rows for `files` with `checkpoint`, by file.
std::map<std::string, nlohmann::ordered_json> predict_rows(const std::string& checkpoint,
                                                           const std::vector<std::string>& files,
                                                           const std::string& dir) {
  std::vector<std::string> args{"predict", "--checkpoint", checkpoint};
  args.insert(args.end(), files.begin(), files.end());
  args.insert(args.end(), {"--out", dir + "/predictions.jsonl"});
  const Result r = kmidi(args, dir);
  EXPECT_EQ(r.code, 0) << r.err;
  std::map<std::string, nlohmann::ordered_json> rows;
  for (const auto& row : json_lines(dir + "/predictions.jsonl")) rows[row.at("file").get<std::string>()] = row;
  return rows;
}

/// The largest difference between two rows' probabilities, valence and arousal.
double largest_difference(const nlohmann::ordered_json& a, const nlohmann::ordered_json& b) {
  double most = std::max(std::abs(a.at("valence").get<double>() - b.at("valence").get<double>()),
                         std::abs(a.at("arousal").get<double>() - b.at("arousal").get<double>()));
  for (const char* q : {"Q1", "Q2", "Q3", "Q4"}) {
    most = std::max(most, std::abs(a.at("quadrant_probabilities").at(q).get<double>() -
                                   b.at("quadrant_probabilities").at(q).get<double>()));
  }
  return most;
}

TEST(PredictCommand, AppliesTheCheckpointsNormalisationSoLoudnessAndStatedTempoDoNotChangeTheVerdict) {
  const Trained& raw = trained();  // emotion_tiny without data.normalise: the control
  const std::string dir = test::scratch_dir("cli_predict_normalise");
  const std::vector<std::string> train{"train", "--config", raw.config,
                                       "data.prepared=" + test::emopia_prepared_dir(),
                                       "data.midi_root=" + test::emopia_midi_root(),
                                       "run.output_dir=" + dir + "/runs",
                                       "data.normalise=velocity_mean:64,tempo_flat:120"};
  const Result trained_normalised = kmidi(train, dir);
  ASSERT_EQ(trained_normalised.code, 0) << trained_normalised.err;
  const std::string normalised = dir + "/runs/emotion_tiny/checkpoints/best.ckpt";

  // Two EMOPIA test clips, each as a quiet copy and a loud copy stated at half the bpm.
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& [id, row] : raw.eval) {
    if (pairs.size() == 2) break;
    const midi::Score quiet = quiet_copy(midi::read_midi_file(test::emopia_midi_root() + "/" + id));
    const std::string stem = dir + "/" + fs::path(id).stem().string();
    midi::write_midi_file(quiet, stem + "_quiet.mid");
    midi::write_midi_file(loud_slow_copy(quiet), stem + "_loud.mid");
    pairs.emplace_back(stem + "_quiet.mid", stem + "_loud.mid");
  }
  ASSERT_EQ(pairs.size(), 2u);
  std::vector<std::string> files;
  for (const auto& [quiet, loud] : pairs) files.insert(files.end(), {quiet, loud});
  // The copies really differ: twice the mean velocity, half the stated bpm.
  const midi::Score quiet = midi::read_midi_file(pairs[0].first), loud = midi::read_midi_file(pairs[0].second);
  ASSERT_EQ(loud.notes.size(), quiet.notes.size());
  EXPECT_EQ(loud.notes[0].velocity, 2 * quiet.notes[0].velocity);
  EXPECT_DOUBLE_EQ(loud.tempos[0].bpm() * 2, quiet.tempos[0].bpm());

  const auto with = predict_rows(normalised, files, dir);
  const auto without = predict_rows(raw.checkpoint, files, dir);
  for (const auto& [q, l] : pairs) {
    ASSERT_TRUE(with.count(q) && with.count(l) && without.count(q) && without.count(l));
    EXPECT_LT(largest_difference(with.at(q), with.at(l)), 1e-6) << q;
    EXPECT_EQ(with.at(q).at("quadrant"), with.at(l).at("quadrant")) << q;
    // Without normalisation the model sees other features: a real difference.
    EXPECT_GT(largest_difference(without.at(q), without.at(l)), 1e-3) << q;
  }
}

TEST(PredictCommand, NothingPredictableExitsThreeAndWritesNothing) {
  const Trained& t = trained();
  const std::string dir = test::scratch_dir("cli_predict_nothing");
  fs::create_directories(dir + "/in");
  files::write_atomic(dir + "/in/x.mid", "text\n");
  files::write_atomic(dir + "/in/silent.mid", midi_without_notes());
  const std::string out = dir + "/predictions.jsonl";
  const Result r = kmidi({"predict", "--checkpoint", t.checkpoint, dir + "/in", "--out", out}, dir);
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("none of the 2 MIDI files could be predicted"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));

  fs::create_directories(dir + "/no midi");
  const Result none = kmidi({"predict", "--checkpoint", t.checkpoint, dir + "/no midi", "--out", out}, dir);
  EXPECT_EQ(none.code, 3) << none.err;
  EXPECT_NE(none.err.find("no MIDI files"), std::string::npos) << none.err;

  const Result missing = kmidi({"predict", "--checkpoint", t.checkpoint, dir + "/absent.mid", "--out", out}, dir);
  EXPECT_EQ(missing.code, 2) << missing.err;
  EXPECT_NE(missing.err.find(dir + "/absent.mid: no such file or folder"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST(PredictCommand, ACheckpointOfAnotherTaskIsRefusedWithItsTaskAndNothingWritten) {
  const Trained& t = trained();
  const std::string dir = test::scratch_dir("cli_predict_wrong_task");
  const Result prepare = kmidi({"prepare", "--config", test::source_path("configs/prepare_pop909_sample.yaml"),
                                "output.dir=" + dir + "/data"},
                               dir);
  ASSERT_EQ(prepare.code, 0) << prepare.err;
  const Result gen = kmidi({"train", "--config", test::source_path("configs/midi_generator_tiny.yaml"),
                            "data.dir=" + dir + "/data", "run.output_dir=" + dir, "train.max_steps=2",
                            "train.eval_every=0"},
                           dir);
  ASSERT_EQ(gen.code, 0) << gen.err;
  std::string generator;
  for (const auto& e : fs::directory_iterator(dir + "/midi_generator_tiny/checkpoints")) {
    if (e.path().extension() == ".ckpt") generator = e.path().string();
  }
  ASSERT_FALSE(generator.empty());
  const std::string out = dir + "/predictions.jsonl";
  files::write_atomic(out, "an earlier file\n");
  const std::string clip = test::emopia_midi_root() + "/" + t.eval.begin()->first;
  const Result r = kmidi({"predict", "--checkpoint", generator, clip, "--out", out}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("a checkpoint of task 'midi_generator', not of task 'emotion'"), std::string::npos) << r.err;
  EXPECT_EQ(files::read_all(out), "an earlier file\n");
}

TEST(PredictCommand, EvaluateRefusesUnlabelledTestInsteadOfOverwritingTheTestRun) {
  const Trained& t = trained();
  const std::string dir = test::scratch_dir("cli_predict_evaluate");
  fs::create_directories(dir + "/midis");
  const std::string clip = t.eval.begin()->first;
  fs::copy_file(test::emopia_midi_root() + "/" + clip, dir + "/midis/" + clip);
  for (const char* split : {"test", "validation"}) {
    const Result r = kmidi({"evaluate", "--config", t.config, "--checkpoint", t.checkpoint, "--split", split,
                            "data.unlabelled_test=" + dir + "/midis", "run.output_dir=" + dir + "/runs"},
                           dir);
    EXPECT_EQ(r.code, 2) << split << ": " << r.err;
    EXPECT_NE(r.err.find("kmidi predict --checkpoint"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir + "/runs"));  // no eval folder was made, so none was overwritten
}

}  // namespace
}  // namespace kmidi::cli

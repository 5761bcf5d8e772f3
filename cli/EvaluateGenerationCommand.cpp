// kmidi evaluate-generation: does the emotion vector control the music?
// Generates --count pieces per Russell quadrant with generate's code path,
// judges them with a trained emotion model (the emotion task's own data
// pipeline and checkpoint loading), measures the same judge on the real
// EMOPIA test clips (its ceiling), and compares objective music metrics of
// the generated and the real test pieces (datasets/features/MusicMetrics.h).
// With --pieces DIR it judges pieces generated elsewhere instead (DIR/Q1..Q4:
// token ids, e.g. from the exported ONNX graphs by scripts/ort_generate.js,
// decoded with --checkpoint's tokenizer, or MIDI files), with the same report.
//
// A piece without notes is not judged: it is counted (empty_pieces per
// quadrant and in the confusion's empty_pieces column) as a disagreement.
//
// Quadrant vectors asked of the generator (valence, arousal):
//   Q1 (+0.8, +0.8)  Q2 (-0.8, +0.8)  Q3 (-0.8, -0.8)  Q4 (+0.8, -0.8)
// Judged quadrant: the judge's quadrant head; valence and arousal sign
// agreement: the signs of its valence_arousal head (>= 0 is positive), as
// the emotion task's valence_accuracy and arousal_accuracy count them.
//
// Exit codes: 2 bad usage, a missing --judge or --checkpoint file, or a
// checkpoint of the wrong task (named with its task); 3 unreadable data or a
// file that is not a kmidi checkpoint. Nothing is written until both
// checkpoints and the judge's data have been loaded; the report is atomic.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "cli/Commands.h"
#include "cli/Generation.h"
#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/EmotionDataset.h"
#include "datasets/corpus/FileList.h"
#include "datasets/features/MusicMetrics.h"
#include "datasets/features/ScorePerturbation.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/midi/MidiWriter.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "models/Sampling.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/EmotionTask.h"
#include "train/tasks/MidiGeneratorTask.h"

namespace fs = std::filesystem;

namespace kmidi::cli {
namespace {

constexpr int kQuadrants = 4;
constexpr double kQuadrantMagnitude = 0.8;
const std::array<const char*, kQuadrants> kQuadrantNames{"Q1", "Q2", "Q3", "Q4"};

/// The (valence, arousal) asked of the generator for quadrant q (0..3).
std::array<double, 2> quadrant_vector(int q) {
  const std::array<float, 2> signs = data::quadrant_signs(q);
  return {kQuadrantMagnitude * signs[0], kQuadrantMagnitude * signs[1]};
}

/// The task a kmidi checkpoint was trained for, from its meta.json. A file
/// that is not a kmidi checkpoint is a DataError naming it.
std::string checkpoint_task(const std::string& path, const std::string& option) {
  if (!fs::is_regular_file(path)) throw UsageError(option + " " + path + ": no such file");
  const train::CheckpointFile file(path);
  const auto meta = nlohmann::json::parse(file.bytes(train::checkpoint_section::kMeta), nullptr, false);
  if (!meta.is_object()) throw DataError(option + " " + path + ": meta.json is not a JSON object");
  return meta.value("task", std::string("none"));
}

void require_task(const std::string& path, const std::string& option, const std::string& wanted,
                  const std::string& hint) {
  const std::string task = checkpoint_task(path, option);
  if (task != wanted) {
    throw UsageError(option + " " + path + ": a checkpoint of task '" + task + "', not of task '" + wanted + "'; " +
                     option + " takes " + hint);
  }
}

/// The judge as `kmidi evaluate` builds it: the job config stored in the
/// checkpoint (plus `overrides`), the task with its splits, then the weights.
struct Judge {
  std::unique_ptr<train::JobConfig> job;
  train::JobRuntime runtime;
  std::unique_ptr<train::Task> task;
  train::EmotionTask* emotion = nullptr;
  int64_t step = 0;
};

Judge load_judge(const std::string& path, const std::vector<std::string>& overrides, bool use_ema) {
  const train::TaskRegistry& registry = train::builtin_tasks();
  const train::CheckpointFile file(path);
  const std::string origin = path + ": config.yaml";
  config::Document doc = config::Document::load_string(std::string(file.bytes(train::checkpoint_section::kConfig)),
                                                       origin, fs::current_path().string());
  doc.apply_overrides(overrides);
  Judge judge;
  judge.job = std::make_unique<train::JobConfig>();
  judge.job->task_config = registry.at("emotion").make_config();
  doc.read_into(*judge.job);
  judge.job->file = origin;
  judge.runtime = train::start_job(*judge.job);
  judge.task = train::make_task(*judge.job, registry, *judge.runtime.context);
  judge.step = train::load_checkpoint_weights(*judge.task, "emotion", path, use_ema).step;
  judge.emotion = dynamic_cast<train::EmotionTask*>(judge.task.get());
  if (!judge.emotion) throw UsageError(path + ": the emotion task did not build an emotion model");
  judge.task->model().eval();
  return judge;
}

const train::EmotionTaskConfig& judge_config(const Judge& judge) {
  return static_cast<const train::EmotionTaskConfig&>(*judge.job->task_config);
}

/// Judged quadrant (0..3) and (valence, arousal) of every clip, in clip order.
struct Verdicts {
  std::vector<int64_t> quadrant;
  std::vector<std::array<float, 2>> valence_arousal;
};

Verdicts judge_clips(Judge& judge, std::vector<data::EmotionClip> clips) {
  const data::EmotionDataset& test = *judge.emotion->emotion_dataset(train::Split::kTest);
  data::EmotionDatasetOptions options = test.options();
  options.labelled = false;
  const data::EmotionDataset dataset(std::move(clips), options);
  const c10::Device device = judge.runtime.context->device();
  Verdicts v;
  torch::NoGradGuard no_grad;
  constexpr int64_t kBatch = 32;
  for (size_t begin = 0; begin < dataset.size(); begin += kBatch) {
    std::vector<int64_t> indices;
    for (size_t i = begin; i < std::min(dataset.size(), begin + kBatch); ++i) indices.push_back(static_cast<int64_t>(i));
    const data::NamedTensors out = judge.task->predict(dataset.get_batch(indices).to(device));
    const at::Tensor quadrant = out.at("quadrant").to(torch::kCPU).to(torch::kLong);
    const at::Tensor va = out.at("valence_arousal").to(torch::kCPU).to(torch::kFloat);
    for (int64_t r = 0; r < quadrant.size(0); ++r) {
      v.quadrant.push_back(quadrant[r].item<int64_t>() - 1);
      v.valence_arousal.push_back({va[r][0].item<float>(), va[r][1].item<float>()});
    }
  }
  return v;
}

/// Per-piece metrics of every MIDI file listed; pieces without pitched notes are counted apart.
struct MetricSet {
  std::vector<std::vector<double>> values = std::vector<std::vector<double>>(features::kMusicMetricCount);
  int64_t without_notes = 0;
  void add(const midi::Score& score) {
    const auto m = features::music_metrics(score);
    if (!m) {
      ++without_notes;
      return;
    }
    for (size_t k = 0; k < features::kMusicMetricCount; ++k) values[k].push_back((*m)[k]);
  }
  size_t pieces() const { return values[0].size(); }
};

nlohmann::ordered_json compare_metrics(const MetricSet& generated, const MetricSet& real, bool with_values) {
  nlohmann::ordered_json j;
  j["generated_pieces"] = generated.pieces();
  j["generated_without_notes"] = generated.without_notes;
  j["real_pieces"] = real.pieces();
  nlohmann::ordered_json metrics;
  for (size_t k = 0; k < features::kMusicMetricCount; ++k) {
    nlohmann::ordered_json m;
    const auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double x : v) s += x;
      return v.empty() ? 0.0 : s / static_cast<double>(v.size());
    };
    if (generated.pieces() > 0 && real.pieces() > 0) {
      m["overlap_area"] = features::overlap_area(generated.values[k], real.values[k]);
    } else {
      m["overlap_area"] = nullptr;  // a side without pieces that have notes
    }
    m["generated_mean"] = mean(generated.values[k]);
    m["real_mean"] = mean(real.values[k]);
    if (with_values) {
      m["generated"] = generated.values[k];
      m["real"] = real.values[k];
    }
    metrics[features::music_metric_names()[k]] = m;
  }
  j["metrics"] = metrics;
  return j;
}

/// Agreement counts of one set of pieces conditioned on known quadrants.
struct Agreement {
  int64_t pieces = 0, quadrant = 0, valence = 0, arousal = 0, empty = 0;
  /// A piece without notes: not judged, so it agrees on nothing.
  void add_empty() {
    ++pieces;
    ++empty;
  }
  void add(int conditioned, int64_t judged, const std::array<float, 2>& va) {
    const std::array<float, 2> signs = data::quadrant_signs(conditioned);
    ++pieces;
    quadrant += judged == conditioned;
    valence += (va[0] >= 0) == (signs[0] > 0);
    arousal += (va[1] >= 0) == (signs[1] > 0);
  }
  nlohmann::ordered_json json() const {
    const auto share = [this](int64_t n) { return pieces > 0 ? static_cast<double>(n) / pieces : 0.0; };
    return {{"pieces", pieces},
            {"empty_pieces", empty},
            {"quadrant_agreement", share(quadrant)},
            {"valence_sign_agreement", share(valence)},
            {"arousal_sign_agreement", share(arousal)}};
  }
};

/// A scratch folder for the pieces when --keep-pieces is not given; removed on exit.
class PieceFolder {
 public:
  explicit PieceFolder(const std::string& keep) : keep_(!keep.empty()) {
    path_ = keep_ ? keep : (fs::temp_directory_path() / ("kmidi-evaluate-generation-" + std::to_string(::getpid()))).string();
    if (!keep_) fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~PieceFolder() {
    std::error_code ec;
    if (!keep_) fs::remove_all(path_, ec);
  }
  PieceFolder(const PieceFolder&) = delete;
  PieceFolder& operator=(const PieceFolder&) = delete;
  const std::string& path() const { return path_; }

 private:
  bool keep_;
  std::string path_;
};

/// A piece as the judge reads it: its MIDI file, the score read back from it, and
/// what is known of it (source, seed, tokens, notes, skipped_tokens).
struct PieceOnDisk {
  std::string file;
  midi::Score score;
  nlohmann::ordered_json summary;
};

/// The pieces write_pieces() just wrote, read back.
std::vector<PieceOnDisk> pieces_on_disk(const nlohmann::ordered_json& written) {
  std::vector<PieceOnDisk> out;
  for (const auto& piece : written["pieces"]) {
    PieceOnDisk p;
    p.file = piece["out"].get<std::string>();
    p.score = midi::read_midi_file(p.file);
    p.summary = piece;
    out.push_back(std::move(p));
  }
  return out;
}

/// A piece of --pieces: token ids decoded with the generator's tokenizer, or a MIDI file.
struct GivenPiece {
  std::string name;       ///< file stem, e.g. "007"
  std::string midi_file;  ///< a MIDI file given as such (copied unchanged); empty for token ids
  midi::Score score;      ///< decoded from the ids (written to the piece folder)
  nlohmann::ordered_json summary;
};

constexpr const char* kTokensSuffix = ".tokens.json";

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// {"ids": [...], "seed": ...} (scripts/ort_generate.js) decoded as kmidi generate decodes its ids.
GivenPiece read_token_piece(const fs::path& file, const tokenizer::Tokenizer& tok) {
  const std::string where = "--pieces: " + file.string();
  const auto j = nlohmann::json::parse(files::read_all(file.string()), nullptr, false);
  if (!j.is_object() || !j.contains("ids") || !j["ids"].is_array()) {
    throw DataError(where + ": expected a JSON object with an \"ids\" list of token ids");
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i < j["ids"].size(); ++i) {
    const auto& id = j["ids"][i];
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      throw DataError(where + ": ids[" + std::to_string(i) + "] is " + id.dump() + ", not a token id (an integer >= 0)");
    }
    ids.push_back(id.get<int32_t>());
  }
  GivenPiece p;
  p.name = file.filename().string();
  p.name.resize(p.name.size() - std::string(kTokensSuffix).size());
  tokenizer::DecodeStats stats;
  p.score = tok.decode(ids, &stats);
  p.summary = {{"source", file.string()},
               {"seed", j.contains("seed") ? j["seed"] : nlohmann::json(nullptr)},
               {"tokens", ids.size()},
               {"notes", p.score.notes.size()},
               {"skipped_tokens", stats.invalid}};
  return p;
}

/// DIR/Q1..Q4: *.tokens.json (preferred for a name that has both) and *.mid / *.midi, by name.
std::array<std::vector<GivenPiece>, kQuadrants> read_given_pieces(const std::string& dir,
                                                                  const tokenizer::Tokenizer& tok) {
  std::array<std::vector<GivenPiece>, kQuadrants> out;
  for (int q = 0; q < kQuadrants; ++q) {
    const fs::path folder = fs::path(dir) / kQuadrantNames[q];
    std::map<std::string, fs::path> tokens, midis;
    for (const auto& e : fs::directory_iterator(folder)) {
      if (!e.is_regular_file()) continue;
      const std::string name = e.path().filename().string();
      if (ends_with(name, kTokensSuffix)) tokens[name.substr(0, name.size() - std::strlen(kTokensSuffix))] = e.path();
      else if (ends_with(name, ".mid") || ends_with(name, ".midi")) midis[e.path().stem().string()] = e.path();
    }
    for (const auto& [name, file] : midis) {
      if (tokens.count(name)) continue;
      GivenPiece p;
      p.name = name;
      p.midi_file = file.string();
      p.score = midi::read_midi_file(p.midi_file);
      p.summary = {{"source", p.midi_file}, {"notes", p.score.notes.size()}};
      out[static_cast<size_t>(q)].push_back(std::move(p));
    }
    for (const auto& [name, file] : tokens) out[static_cast<size_t>(q)].push_back(read_token_piece(file, tok));
    auto& list = out[static_cast<size_t>(q)];
    std::sort(list.begin(), list.end(), [](const GivenPiece& x, const GivenPiece& y) { return x.name < y.name; });
    if (list.empty()) {
      throw DataError("--pieces " + dir + ": " + folder.string() + " holds no pieces (*" + kTokensSuffix +
                      ", *.mid, *.midi)");
    }
  }
  return out;
}

/// Writes the given pieces into `dir` as NAME.mid and reads them back as generated pieces are.
std::vector<PieceOnDisk> write_given_pieces(const std::vector<GivenPiece>& given, const std::string& dir) {
  fs::create_directories(dir);
  std::vector<PieceOnDisk> out;
  for (const GivenPiece& g : given) {
    PieceOnDisk p;
    p.file = (fs::path(dir) / (g.name + ".mid")).string();
    if (g.midi_file.empty()) {
      midi::write_midi_file(g.score, p.file);
    } else {
      files::write_atomic(p.file, files::read_all(g.midi_file));
    }
    p.score = midi::read_midi_file(p.file);
    p.summary = g.summary;
    out.push_back(std::move(p));
  }
  return out;
}

/// Where --pieces came from: the folder and its generation.json (ort_generate.js's options), when present.
nlohmann::ordered_json given_pieces_origin(const std::string& dir) {
  nlohmann::ordered_json origin = {{"dir", dir}, {"generation", nullptr}};
  const fs::path summary = fs::path(dir) / "generation.json";
  if (fs::is_regular_file(summary)) {
    auto j = nlohmann::ordered_json::parse(files::read_all(summary.string()), nullptr, false);
    if (!j.is_discarded()) origin["generation"] = j;
  }
  return origin;
}

struct Args {
  std::string checkpoint, judge, real_test, report, keep_pieces, pieces;
  std::vector<std::string> judge_overrides;
  int64_t count = 32;
  models::SamplingOptions sampling;
  bool raw_weights = false;
  int threads = 0;
};

void validate(Args& a) {
  if (a.count < 1) throw UsageError("evaluate-generation: --count must be at least 1, got " + std::to_string(a.count));
  try {
    a.sampling.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("evaluate-generation: ") + e.what());
  }
  const fs::path report_dir = fs::absolute(a.report).parent_path();
  if (!fs::is_directory(report_dir)) {
    throw UsageError("evaluate-generation: --report " + a.report + ": folder " + report_dir.string() + " does not exist");
  }
  if (!a.keep_pieces.empty() && fs::exists(a.keep_pieces) && !fs::is_directory(a.keep_pieces)) {
    throw UsageError("evaluate-generation: --keep-pieces " + a.keep_pieces + " exists and is not a directory");
  }
  if (!a.real_test.empty() && !fs::exists(a.real_test)) {
    throw UsageError("evaluate-generation: --real-test " + a.real_test + ": no such file or folder");
  }
  if (!a.pieces.empty()) {
    for (const char* q : kQuadrantNames) {
      if (!fs::is_directory(fs::path(a.pieces) / q)) {
        throw UsageError("evaluate-generation: --pieces " + a.pieces + ": no folder " + q +
                         " (expected DIR/Q1..Q4 holding *.tokens.json or *.mid pieces)");
      }
    }
    if (!a.keep_pieces.empty() && fs::exists(a.keep_pieces) && fs::equivalent(a.keep_pieces, a.pieces)) {
      throw UsageError("evaluate-generation: --keep-pieces and --pieces must be different folders");
    }
  }
  require_task(a.checkpoint, "--checkpoint", "midi_generator", "a midi_generator checkpoint");
  require_task(a.judge, "--judge", "emotion",
               "an emotion-task checkpoint (kmidi train --config configs/emotion.yaml: <run>/checkpoints/best.ckpt)");
}

/// A prepared folder (shards and tokenizer.json) replaces the judge's data; any other path is MIDI files.
bool is_prepared_folder(const std::string& path) {
  return fs::is_directory(path) && fs::exists(fs::path(path) / "tokenizer.json");
}

nlohmann::ordered_json run(Args& a) {
  validate(a);
  std::vector<std::string> overrides = a.judge_overrides;
  if (a.threads > 0) overrides.push_back("run.threads=" + std::to_string(a.threads));  // start_job applies it
  if (!a.real_test.empty() && is_prepared_folder(a.real_test)) overrides.push_back("data.prepared=" + a.real_test);
  Judge judge = load_judge(a.judge, overrides, !a.raw_weights);
  train::LoadedGenerator g = train::load_generator_checkpoint(a.checkpoint, !a.raw_weights);
  const models::SamplingOptions sampling = piece_sampling(g, a.sampling);

  // The judge's ceiling: its own metrics on the real test split, as kmidi evaluate computes them.
  const train::JobConfig& job = *judge.job;
  const train::EvaluationSettings settings = train::evaluation_settings(
      job.train, 1, train::resolve_precision(job.train.precision, judge.runtime.context->device()));
  const train::EvaluationResult real = train::evaluate_split(*judge.task, train::Split::kTest, *judge.runtime.context, settings);

  // Real pieces for the music metrics: the test clips' MIDI files, or --real-test's MIDI files.
  const data::EmotionDataConfig& data_config = judge_config(judge).data;
  const auto& test_clips = judge.emotion->emotion_dataset(train::Split::kTest)->clips();
  MetricSet real_all;
  std::array<MetricSet, kQuadrants> real_by_quadrant;
  if (!a.real_test.empty() && !is_prepared_folder(a.real_test)) {
    const bool one_file = fs::is_regular_file(a.real_test);
    const std::string root = one_file ? fs::path(a.real_test).parent_path().string() : a.real_test;
    const std::vector<std::string> files =
        one_file ? std::vector<std::string>{fs::path(a.real_test).filename().string()}
                 : corpus::list_files(a.real_test, {"**/*.mid", "**/*.midi"}, {});
    if (files.empty()) throw DataError("--real-test " + a.real_test + ": no MIDI files (*.mid, *.midi) found");
    for (const auto& f : files) real_all.add(midi::read_midi_file((fs::path(root) / f).string()));
  } else {
    for (const auto& clip : test_clips) {
      const midi::Score score = midi::read_midi_file((fs::path(data_config.midi_root.str()) / clip.id).string());
      real_all.add(score);
      if (clip.quadrant >= 0) real_by_quadrant[static_cast<size_t>(clip.quadrant)].add(score);
    }
  }

  // Read --pieces before anything is written: a bad file fails here.
  std::array<std::vector<GivenPiece>, kQuadrants> given;
  if (!a.pieces.empty()) given = read_given_pieces(a.pieces, *g.tokenizer);

  // Generate (or take --pieces), then judge, each quadrant's pieces.
  PieceFolder pieces_dir(a.keep_pieces);
  data::EmotionDataConfig generated_data = data_config;
  generated_data.feature_cache = (fs::path(pieces_dir.path()) / "emotion_features.cache").string();
  data::ClipLoading judge_loading;
  judge_loading.normalise = features::parse_perturbations(data_config.normalise);
  std::array<std::array<int64_t, kQuadrants>, kQuadrants> confusion{};
  std::array<int64_t, kQuadrants> empty_pieces{};
  Agreement overall;
  std::array<Agreement, kQuadrants> per_quadrant;
  MetricSet generated_all;
  std::array<MetricSet, kQuadrants> generated_by_quadrant;
  nlohmann::ordered_json pieces = nlohmann::ordered_json::array();
  int64_t skipped_tokens = 0;
  for (int q = 0; q < kQuadrants; ++q) {
    const std::string dir = (fs::path(pieces_dir.path()) / kQuadrantNames[q]).string();
    std::vector<PieceOnDisk> on_disk;
    if (a.pieces.empty()) {
      const std::array<double, 2> va = quadrant_vector(q);
      const at::Tensor emotion =
          parse_emotion(std::to_string(va[0]) + "," + std::to_string(va[1]), g.model->options().emotion_dim);
      spdlog::info("{} ({:+.1f}, {:+.1f}): generating {} pieces", kQuadrantNames[q], va[0], va[1], a.count);
      torch::NoGradGuard no_grad;
      on_disk = pieces_on_disk(write_pieces(g, emotion, sampling, dir, a.count));
    } else {
      on_disk = write_given_pieces(given[static_cast<size_t>(q)], dir);
    }
    // Pieces without notes are counted, not judged: there is nothing to hear
    // (and a token judge has no tokens to read); each counts as a disagreement.
    std::vector<data::EmotionClip> clips;
    for (const PieceOnDisk& piece : on_disk) {
      // MIDI pieces have no token count (const operator[] on a missing key is undefined).
      const auto skipped = piece.summary.find("skipped_tokens");
      if (skipped != piece.summary.end() && skipped->is_number()) skipped_tokens += skipped->get<int64_t>();
      generated_all.add(piece.score);
      generated_by_quadrant[static_cast<size_t>(q)].add(piece.score);
      if (piece.score.notes.empty()) continue;
      // The judge reads each piece as kmidi evaluate reads a MIDI file, its
      // data.normalise included (the judge never saw unnormalised clips).
      std::vector<data::EmotionClip> loaded = data::load_unlabelled_clips(generated_data, piece.file, judge_loading);
      clips.push_back(std::move(loaded.at(0)));
    }
    const Verdicts v = judge_clips(judge, std::move(clips));
    size_t verdict = 0;
    for (const PieceOnDisk& piece : on_disk) {
      nlohmann::ordered_json entry = {{"quadrant", kQuadrantNames[q]},
                                      {"file", a.keep_pieces.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(piece.file)}};
      for (const char* key : {"source", "seed", "tokens", "notes", "skipped_tokens"}) {
        if (piece.summary.contains(key)) entry[key] = piece.summary[key];
      }
      entry["empty"] = piece.score.notes.empty();
      if (piece.score.notes.empty()) {
        ++empty_pieces[static_cast<size_t>(q)];
        overall.add_empty();
        per_quadrant[static_cast<size_t>(q)].add_empty();
        entry["judged_quadrant"] = nullptr;
        entry["judged_valence_arousal"] = nullptr;
      } else {
        const int64_t judged = v.quadrant.at(verdict);
        const std::array<float, 2>& va = v.valence_arousal.at(verdict);
        ++verdict;
        ++confusion[static_cast<size_t>(q)][static_cast<size_t>(judged)];
        overall.add(q, judged, va);
        per_quadrant[static_cast<size_t>(q)].add(q, judged, va);
        entry["judged_quadrant"] = kQuadrantNames[static_cast<size_t>(judged)];
        entry["judged_valence_arousal"] = {va[0], va[1]};
      }
      pieces.push_back(entry);
    }
  }

  nlohmann::ordered_json report;
  report["generator"] = {{"checkpoint", a.checkpoint}, {"step", g.step}};
  report["judge"] = {{"checkpoint", a.judge}, {"step", judge.step}, {"inputs", data_config.inputs}};
  if (a.pieces.empty()) {
    report["count_per_quadrant"] = a.count;
    report["sampling"] = {{"seed", a.sampling.seed},           {"guidance", a.sampling.guidance},
                          {"temperature", a.sampling.temperature}, {"top_k", a.sampling.top_k},
                          {"top_p", a.sampling.top_p},          {"repetition_penalty", a.sampling.repetition_penalty},
                          {"max_tokens", a.sampling.max_new_tokens}};
  } else {
    nlohmann::ordered_json counts;
    for (int q = 0; q < kQuadrants; ++q) counts[kQuadrantNames[q]] = given[static_cast<size_t>(q)].size();
    report["count_per_quadrant"] = counts;
    report["pieces_from"] = given_pieces_origin(a.pieces);
  }
  nlohmann::ordered_json vectors;
  for (int q = 0; q < kQuadrants; ++q) vectors[kQuadrantNames[q]] = quadrant_vector(q);
  report["quadrant_vectors"] = vectors;
  nlohmann::ordered_json agreement;
  agreement["overall"] = overall.json();
  for (int q = 0; q < kQuadrants; ++q) agreement[kQuadrantNames[q]] = per_quadrant[static_cast<size_t>(q)].json();
  report["agreement"] = agreement;
  report["confusion"] = {{"rows", "quadrant asked of the generator, Q1..Q4"},
                         {"columns", "quadrant the judge hears, Q1..Q4"},
                         {"matrix", confusion},
                         {"empty_pieces", empty_pieces},
                         {"empty_note", "pieces without notes, per row: counted as disagreements, in no column"}};
  nlohmann::ordered_json ceiling = {{"split", "test"}, {"clips", real.items}};
  for (const char* key : {"quadrant_accuracy", "valence_accuracy", "arousal_accuracy", "quadrant_macro_f1"}) {
    if (real.metrics.count(key)) ceiling[key] = real.metrics.at(key);
  }
  std::array<std::array<int64_t, kQuadrants>, kQuadrants> real_confusion{};
  for (int t = 0; t < kQuadrants; ++t) {
    for (int p = 0; p < kQuadrants; ++p) {
      const std::string key = std::string("confusion_") + kQuadrantNames[t] + "_" + kQuadrantNames[p];
      if (real.metrics.count(key)) real_confusion[t][p] = static_cast<int64_t>(real.metrics.at(key));
    }
  }
  ceiling["confusion"] = real_confusion;
  report["judge_on_real_test"] = ceiling;
  report["skipped_tokens"] = skipped_tokens;

  nlohmann::ordered_json music = compare_metrics(generated_all, real_all, true);
  music["real"] = a.real_test.empty() || is_prepared_folder(a.real_test) ? "the judge's test split (EMOPIA test clips)"
                                                                          : "--real-test " + a.real_test;
  music["method"] = "overlapping area of Gaussian KDEs (Scott bandwidth) of the per-piece values, 1024-point grid";
  if (a.real_test.empty() || is_prepared_folder(a.real_test)) {
    nlohmann::ordered_json by_quadrant;
    for (int q = 0; q < kQuadrants; ++q) {
      by_quadrant[kQuadrantNames[q]] =
          compare_metrics(generated_by_quadrant[static_cast<size_t>(q)], real_by_quadrant[static_cast<size_t>(q)], false);
    }
    music["per_quadrant"] = by_quadrant;
  }
  report["music_metrics"] = music;
  report["pieces"] = pieces;
  files::write_atomic(a.report, report.dump(2) + "\n");
  return report;
}

}  // namespace

void register_evaluate_generation(CLI::App& app) {
  auto args = std::make_shared<Args>();
  auto* cmd = add_command(app, "evaluate-generation");
  cmd->add_option("--checkpoint", args->checkpoint, "midi_generator checkpoint (.ckpt)")->required();
  cmd->add_option("--judge", args->judge, "emotion-task checkpoint that judges the pieces (.ckpt)")->required();
  cmd->add_option("--report", args->report, "JSON report to write (atomically)")->required();
  cmd->add_option("--count", args->count, "pieces per quadrant")->capture_default_str();
  cmd->add_option("--real-test", args->real_test,
                  "real pieces: a prepared EMOPIA folder (replaces the judge's data.prepared: its test split is the "
                  "reference and the ceiling) or MIDI files (reference for the music metrics only); default: the "
                  "judge's own test split");
  cmd->add_option("--judge-override", args->judge_overrides,
                  "key.path=value applied to the judge's stored config (e.g. data.midi_root=DIR when the data moved)");
  cmd->add_option("--keep-pieces", args->keep_pieces, "keep the pieces in DIR/Q1/000.mid ... (default: a removed temp folder)");
  CLI::Option* pieces =
      cmd->add_option("--pieces", args->pieces,
                      "judge pieces generated elsewhere instead of generating them: DIR/Q1..Q4 holding token ids "
                      "(*.tokens.json, e.g. scripts/ort_generate.js --quadrants; decoded with --checkpoint's tokenizer) "
                      "or MIDI files (*.mid); the sampling options below do not apply");
  const std::vector<CLI::Option*> generation_only = {
      cmd->get_option("--count"),
      cmd->add_option("--temperature", args->sampling.temperature, "divides the logits (> 0)")->capture_default_str(),
      cmd->add_option("--top-k", args->sampling.top_k, "keep the k most likely tokens; 0: off")->capture_default_str(),
      cmd->add_option("--top-p", args->sampling.top_p, "nucleus probability mass; 1: off")->capture_default_str(),
      cmd->add_option("--repetition-penalty", args->sampling.repetition_penalty, ">= 1; 1: off")->capture_default_str(),
      cmd->add_option("--max-tokens", args->sampling.max_new_tokens, "tokens to generate at most")->capture_default_str(),
      cmd->add_option("--seed", args->sampling.seed, "piece i of every quadrant uses seed S+i")->capture_default_str(),
      cmd->add_option("--guidance", args->sampling.guidance, "classifier-free guidance, as kmidi generate")
          ->capture_default_str()};
  for (CLI::Option* option : generation_only) pieces->excludes(option);
  cmd->add_option("--threads", args->threads, "intra-op threads; 0: every core available");
  cmd->add_flag("--raw-weights", args->raw_weights, "use the trained weights of both checkpoints even with an EMA");
  cmd->callback([args] {
    const nlohmann::ordered_json report = run(*args);
    nlohmann::ordered_json out;
    out["report"] = args->report;
    out["agreement"] = report["agreement"]["overall"];
    out["judge_on_real_test"] = report["judge_on_real_test"].value("quadrant_accuracy", 0.0);
    out["skipped_tokens"] = report["skipped_tokens"];
    out["empty_pieces"] = report["agreement"]["overall"]["empty_pieces"];
    std::printf("%s\n", out.dump().c_str());
  });
}

}  // namespace kmidi::cli

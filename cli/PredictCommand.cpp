// kmidi predict: an emotion model's verdict on MIDI files, from its
// checkpoint alone. The checkpoint holds everything the model needs: the job
// config (config.yaml: inputs, sizes, max_length, loss heads), the weights
// with the feature standardisation statistics (the model's buffers
// feature_mean / feature_std, computed from the training split when it was
// trained) and, for token inputs, artifact/tokenizer.json. No training shard,
// feature cache or EMOPIA folder is read, and nothing but --out is written.
//
// Features and tokens are computed as the emotion task computes them for
// MIDI files (datasets/EmotionDataset.h): strict SMF reading, the 128
// emotion features of the whole score, the first max_length tokens; rows are
// batched by data::EmotionDataset. Runs on the CPU.
//
// Output: JSON Lines, one object per predicted file, in input order (folders
// listed recursively, sorted); written atomically. Format in
// register_predict()'s help text and README.md ("Emotion model").
//
// A file that cannot be judged is skipped, never fatal: a warning on stderr
// names it and its reason, and stdout's summary lists it. Exit codes: 2 bad
// usage (a missing input, --out's folder missing, a checkpoint of another
// task, named); 3 unreadable checkpoint, no MIDI file found, or no file
// could be predicted (then nothing is written).

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/EmotionDataset.h"
#include "datasets/corpus/FileList.h"
#include "datasets/features/ScorePerturbation.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/runtime/Runtime.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/EmotionTask.h"

namespace fs = std::filesystem;

namespace kmidi::cli {
namespace {

constexpr int kQuadrants = 4;
constexpr int64_t kBatch = 32;
const std::array<const char*, kQuadrants> kQuadrantNames{"Q1", "Q2", "Q3", "Q4"};
constexpr const char* kModelPrefix = "model.";  // EmotionTask registers the model under "model"

constexpr const char* kFormatHelp = R"(Output: JSON Lines (--out, written atomically), one object per predicted file:
  file                    the path as given, or FOLDER/relative path for files found in a folder
  quadrant                the quadrant head's choice: "Q1".."Q4"
  quadrant_probabilities  {"Q1": p, "Q2": p, "Q3": p, "Q4": p}, softmax of the quadrant head (sum 1)
  valence, arousal        the valence_arousal head, each in [-1, 1] (tanh; training targets are the
                          quadrant's signs, +1 or -1)
  va_quadrant             the quadrant of those signs (>= 0 counts as positive)
  heads_agree             quadrant == va_quadrant
Quadrants (Russell, EMOPIA's labels): Q1 +valence +arousal (happy, excited), Q2 -valence +arousal
(tense, angry), Q3 -valence -arousal (sad), Q4 +valence -arousal (calm, relaxed).
A head that the checkpoint's loss.heads did not train is null (its keys stay), and so is heads_agree.
Skipped files (reasons: unreadable, empty_file, too_large, not_midi, no_notes, no_tokens) are not in
--out: each is a warning on stderr, and the summary JSON printed on stdout lists them (skipped_files)
and counts them (skipped, skipped_by_reason) beside predicted.)";

struct Args {
  std::string checkpoint, out;
  std::vector<std::string> inputs;
  bool raw_weights = false;
  int threads = 0;
};

/// The emotion model of a checkpoint, its config and tokenizer (token inputs only).
struct LoadedEmotion {
  train::JobConfig job;
  models::EmotionModel model{nullptr};
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  int64_t step = 0;
  bool used_ema = false;
  const train::EmotionTaskConfig& config() const {
    return static_cast<const train::EmotionTaskConfig&>(*job.task_config);
  }
};

/// `table`'s tensors of the emotion model, without the "model." prefix (the
/// loss's learned weights, if any, are left out).
train::NamedTensorList model_tensors(const train::NamedTensorList& table) {
  train::NamedTensorList out;
  for (const auto& [name, tensor] : table) {
    if (name.rfind(kModelPrefix, 0) == 0) out.emplace_back(name.substr(std::string(kModelPrefix).size()), tensor);
  }
  return out;
}

LoadedEmotion load_emotion_checkpoint(const std::string& path, bool use_ema) {
  const train::CheckpointFile file(path);
  const auto meta = nlohmann::json::parse(file.bytes(train::checkpoint_section::kMeta), nullptr, false);
  if (!meta.is_object()) throw DataError(path + ": meta.json is not a JSON object");
  const std::string task = meta.value("task", std::string("none"));
  if (task != "emotion") {
    throw UsageError("predict: --checkpoint " + path + ": a checkpoint of task '" + task +
                     "', not of task 'emotion'; predict takes an emotion-task checkpoint (kmidi train --config "
                     "configs/emotion.yaml: <run>/checkpoints/best.ckpt)");
  }
  LoadedEmotion loaded;
  const std::string origin = path + ": config.yaml";
  config::Document doc = config::Document::load_string(std::string(file.bytes(train::checkpoint_section::kConfig)),
                                                       origin, fs::current_path().string());
  loaded.job.task_config = train::builtin_tasks().at("emotion").make_config();
  doc.read_into(loaded.job);
  loaded.job.file = origin;

  int32_t vocab_size = 0;
  if (loaded.config().data.uses_tokens()) {
    const auto artifacts = file.artifacts();
    const auto tok = artifacts.find("tokenizer.json");
    if (tok == artifacts.end()) throw DataError(path + ": no tokenizer.json inside the checkpoint (token inputs need it)");
    loaded.tokenizer = std::make_unique<tokenizer::Tokenizer>(
        tokenizer::Tokenizer::from_json(tok->second, path + ": tokenizer.json"));
    vocab_size = loaded.tokenizer->vocab_size();
  }
  loaded.model = models::EmotionModel(train::emotion_model_options(loaded.config(), vocab_size));
  train::NamedTensorList target;
  for (const auto& item : loaded.model->named_parameters(true)) target.emplace_back(item.key(), item.value());
  for (const auto& item : loaded.model->named_buffers(true)) target.emplace_back(item.key(), item.value());
  train::load_named_tensors(model_tensors(file.tensors(train::checkpoint_section::kModel)), target, path + ": model");
  if (use_ema && file.has(train::checkpoint_section::kEma)) {
    train::NamedTensorList params;
    for (const auto& item : loaded.model->named_parameters(true)) params.emplace_back(item.key(), item.value());
    train::load_named_tensors(model_tensors(file.tensors(train::checkpoint_section::kEma)), params, path + ": ema");
    loaded.used_ema = true;
  }
  loaded.step = meta.value("step", int64_t{0});
  loaded.model->eval();
  return loaded;
}

/// The MIDI files named by the inputs, in order, each once: files as given,
/// folders searched recursively for *.mid and *.midi.
std::vector<std::string> list_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  std::set<std::string> seen;
  const auto add = [&](const std::string& file) {
    if (seen.insert(fs::absolute(file).lexically_normal().string()).second) files.push_back(file);
  };
  for (const std::string& input : inputs) {
    if (fs::is_directory(input)) {
      for (const std::string& relative : corpus::list_files(input, {"**/*.mid", "**/*.midi"}, {})) {
        add((fs::path(input) / relative).string());
      }
    } else {
      add(input);
    }
  }
  return files;
}

struct Skipped {
  std::string file, reason, detail;
};

/// A clip of `file` as the emotion task computes it, or why it cannot be one.
std::optional<data::EmotionClip> read_clip(const std::string& file, const LoadedEmotion& loaded, Skipped& why) {
  why = {file, "", ""};
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  const midi::ReadOptions read_options;
  if (ec) {
    why.reason = "unreadable";
    why.detail = ec.message();
    return std::nullopt;
  }
  if (size == 0) {
    why.reason = "empty_file";
    return std::nullopt;
  }
  if (static_cast<int64_t>(size) > read_options.max_file_bytes) {
    why.reason = "too_large";
    why.detail = std::to_string(size) + " bytes";
    return std::nullopt;
  }
  std::string bytes;
  try {
    bytes = files::read_all(file);
  } catch (const DataError& e) {
    why.reason = "unreadable";
    why.detail = e.what();
    return std::nullopt;
  }
  midi::Score score;
  try {
    score = midi::read_midi_bytes(bytes, file, read_options);
  } catch (const DataError& e) {
    why.reason = "not_midi";
    why.detail = e.what();
    return std::nullopt;
  }
  if (score.notes.empty()) {
    why.reason = "no_notes";
    return std::nullopt;
  }
  // data.normalise is part of the model's input pipeline: training applied it to every clip.
  const std::string& normalise = loaded.config().data.normalise;
  if (!normalise.empty()) score = features::apply_perturbations(score, features::parse_perturbations(normalise));
  data::EmotionClip clip;
  clip.id = file;
  if (loaded.tokenizer) {
    clip.tokens = loaded.tokenizer->encode(score);
    if (clip.tokens.empty()) {
      why.reason = "no_tokens";
      return std::nullopt;
    }
  }
  if (loaded.config().data.uses_features()) clip.features = features::emotion_features(score);
  return clip;
}

/// Which outputs the checkpoint's loss trained (an untrained head is noise).
struct TrainedHeads {
  bool quadrant = false, valence_arousal = false;
};

TrainedHeads trained_heads(const train::EmotionTaskConfig& config) {
  TrainedHeads t;
  for (const auto& head : config.loss.heads) {
    if (head.weight <= 0) continue;
    t.quadrant |= head.name == "quadrant";
    t.valence_arousal |= head.name == "valence_arousal";
  }
  return t;
}

/// The quadrant (0..3) of (valence, arousal) signs, >= 0 positive (as valence_accuracy counts).
int sign_quadrant(float valence, float arousal) {
  if (arousal >= 0) return valence >= 0 ? 0 : 1;
  return valence >= 0 ? 3 : 2;
}

/// One JSON line per clip of `dataset`.
std::string predict_lines(LoadedEmotion& loaded, const data::EmotionDataset& dataset) {
  const TrainedHeads heads = trained_heads(loaded.config());
  std::string text;
  torch::NoGradGuard no_grad;
  for (size_t begin = 0; begin < dataset.size(); begin += kBatch) {
    std::vector<int64_t> indices;
    for (size_t i = begin; i < std::min(dataset.size(), begin + kBatch); ++i) indices.push_back(static_cast<int64_t>(i));
    const data::Batch batch = dataset.get_batch(indices);
    const at::Tensor none;
    const auto input = [&](const char* name) { return batch.inputs.contains(name) ? batch.inputs.at(name) : none; };
    auto [va, logits] = loaded.model->forward(input("input_ids"), input("attention_mask"), input("features"));
    const at::Tensor probabilities = torch::softmax(logits.to(torch::kFloat), -1).contiguous();
    const at::Tensor va_cpu = va.to(torch::kFloat).contiguous();
    const auto p = probabilities.accessor<float, 2>();
    const auto v = va_cpu.accessor<float, 2>();
    for (int64_t r = 0; r < static_cast<int64_t>(indices.size()); ++r) {
      nlohmann::ordered_json row;
      row["file"] = dataset.item_id(static_cast<size_t>(indices[static_cast<size_t>(r)]));
      int chosen = 0;
      nlohmann::ordered_json by_quadrant;
      for (int q = 0; q < kQuadrants; ++q) {
        by_quadrant[kQuadrantNames[q]] = static_cast<double>(p[r][q]);
        if (p[r][q] > p[r][chosen]) chosen = q;
      }
      row["quadrant"] = heads.quadrant ? nlohmann::ordered_json(kQuadrantNames[chosen]) : nullptr;
      row["quadrant_probabilities"] = heads.quadrant ? by_quadrant : nullptr;
      const int implied = sign_quadrant(v[r][0], v[r][1]);
      row["valence"] = heads.valence_arousal ? nlohmann::ordered_json(static_cast<double>(v[r][0])) : nullptr;
      row["arousal"] = heads.valence_arousal ? nlohmann::ordered_json(static_cast<double>(v[r][1])) : nullptr;
      row["va_quadrant"] = heads.valence_arousal ? nlohmann::ordered_json(kQuadrantNames[implied]) : nullptr;
      row["heads_agree"] =
          heads.quadrant && heads.valence_arousal ? nlohmann::ordered_json(chosen == implied) : nullptr;
      text += row.dump() + "\n";
    }
  }
  return text;
}

void validate(const Args& a) {
  if (!fs::is_regular_file(a.checkpoint)) throw UsageError("predict: --checkpoint " + a.checkpoint + ": no such file");
  const fs::path out_dir = fs::absolute(a.out).parent_path();
  if (!fs::is_directory(out_dir)) {
    throw UsageError("predict: --out " + a.out + ": folder " + out_dir.string() + " does not exist");
  }
  if (fs::is_directory(a.out)) throw UsageError("predict: --out " + a.out + " is a folder; expected a file to write");
  for (const std::string& input : a.inputs) {
    if (!fs::exists(input)) throw UsageError("predict: " + input + ": no such file or folder");
  }
}

nlohmann::ordered_json run(const Args& a) {
  validate(a);
  train::configure_process(a.threads, 1);
  LoadedEmotion loaded = load_emotion_checkpoint(a.checkpoint, !a.raw_weights);
  const std::vector<std::string> files = list_inputs(a.inputs);
  if (files.empty()) throw DataError("predict: no MIDI files (*.mid, *.midi) found in the inputs given");

  std::vector<data::EmotionClip> clips;
  std::vector<Skipped> skipped;
  std::map<std::string, int64_t> by_reason;
  for (const std::string& file : files) {
    Skipped why;
    if (auto clip = read_clip(file, loaded, why)) {
      clips.push_back(std::move(*clip));
      continue;
    }
    spdlog::warn("predict: skipped {}: {}{}", file, why.reason, why.detail.empty() ? "" : " (" + why.detail + ")");
    ++by_reason[why.reason];
    skipped.push_back(std::move(why));
  }
  if (clips.empty()) {
    throw DataError("predict: none of the " + std::to_string(files.size()) + " MIDI files could be predicted (" +
                    nlohmann::json(by_reason).dump() + "); nothing written");
  }

  data::EmotionDatasetOptions options;
  options.tokens = loaded.config().data.uses_tokens();
  options.features = loaded.config().data.uses_features();
  options.labelled = false;
  options.max_length = loaded.config().data.max_length;
  if (loaded.tokenizer) options.pad_id = loaded.tokenizer->pad_id();
  const data::EmotionDataset dataset(std::move(clips), options);
  files::write_atomic(a.out, predict_lines(loaded, dataset));
  spdlog::info("predict: {} files predicted, {} skipped; wrote {}", dataset.size(), skipped.size(), a.out);

  nlohmann::ordered_json summary;
  summary["out"] = a.out;
  summary["checkpoint"] = a.checkpoint;
  summary["step"] = loaded.step;
  summary["ema"] = loaded.used_ema;
  summary["inputs"] = loaded.config().data.inputs;
  summary["predicted"] = dataset.size();
  summary["skipped"] = skipped.size();
  summary["skipped_by_reason"] = by_reason;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const Skipped& s : skipped) list.push_back({{"file", s.file}, {"reason", s.reason}, {"detail", s.detail}});
  summary["skipped_files"] = list;
  return summary;
}

}  // namespace

void register_predict(CLI::App& app) {
  auto args = std::make_shared<Args>();
  auto* cmd = add_command(app, "predict");
  cmd->footer(kFormatHelp);
  cmd->add_option("--checkpoint", args->checkpoint, "emotion-task checkpoint (.ckpt)")->required();
  cmd->add_option("inputs", args->inputs, "MIDI files, and folders searched recursively for *.mid and *.midi")
      ->required();
  cmd->add_option("--out", args->out, "JSON Lines file to write (atomically)")->required();
  cmd->add_option("--threads", args->threads, "intra-op threads; 0: every core available");
  cmd->add_flag("--raw-weights", args->raw_weights, "use the trained weights even when the checkpoint has an EMA");
  cmd->callback([args] { std::printf("%s\n", run(*args).dump().c_str()); });
}

}  // namespace kmidi::cli

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "cli/Generation.h"
#include "core/Errors.h"
#include "core/Strings.h"
#include "datasets/midi/MidiWriter.h"
#include "datasets/tokenizer/Grammar.h"
#include "models/Sampling.h"
#include "train/runtime/Runtime.h"
#include "train/tasks/MidiGeneratorTask.h"

namespace kmidi::cli {

at::Tensor parse_emotion(const std::string& text, int64_t size) {
  const std::vector<std::string> parts = strings::split(text, ',');
  if (parts.size() < 2 || parts.size() > 3) {
    throw UsageError("--emotion: expected V,A or V,A,I (each in [-1, 1]), got '" + text + "'");
  }
  at::Tensor emotion = torch::zeros({size});
  static const char* names[] = {"valence", "arousal", "intensity"};
  for (size_t i = 0; i < parts.size(); ++i) {
    double value = 0;
    try {
      size_t used = 0;
      value = std::stod(parts[i], &used);
      if (used != parts[i].size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      throw UsageError(std::string("--emotion: ") + names[i] + " '" + parts[i] + "' is not a number");
    }
    if (!(value >= -1.0 && value <= 1.0)) {
      throw UsageError(std::string("--emotion: ") + names[i] + " must be in [-1, 1], got " + parts[i]);
    }
    emotion[static_cast<int64_t>(i)] = value;
  }
  return emotion;
}

namespace {

/// Where the pieces go: one --out file, or --count files in --out-dir.
struct Outputs {
  std::string out, out_dir;
  int64_t count = 1;
};

/// Usage errors for output combinations, before anything is loaded or written.
void validate_outputs(const Outputs& o) {
  if (o.out.empty() == o.out_dir.empty()) {
    throw UsageError("generate: give --out FILE (one piece) or --out-dir DIR (--count pieces), not " +
                     std::string(o.out.empty() ? "neither" : "both"));
  }
  if (o.count < 1) throw UsageError("generate: --count must be at least 1, got " + std::to_string(o.count));
  if (!o.out.empty() && o.count > 1) {
    throw UsageError("generate: --out writes one piece; use --out-dir DIR for --count " + std::to_string(o.count));
  }
  if (!o.out_dir.empty() && std::filesystem::exists(o.out_dir) && !std::filesystem::is_directory(o.out_dir)) {
    throw UsageError("generate: --out-dir " + o.out_dir + " exists and is not a directory");
  }
}

/// "007.mid": piece `index` of `count`, zero-padded to the digits of count - 1 (at least 3).
std::string piece_name(int64_t index, int64_t count) {
  const size_t width = std::max<size_t>(3, std::to_string(count - 1).size());
  std::string digits = std::to_string(index);
  return std::string(width - std::min(width, digits.size()), '0') + digits + ".mid";
}

/// Samples one piece, writes it atomically to `path` and returns its summary.
nlohmann::ordered_json write_piece(train::LoadedGenerator& g, const at::Tensor& emotion,
                                   const models::SamplingOptions& sampling, const std::string& path) {
  const tokenizer::Tokenizer& tok = *g.tokenizer;
  const std::vector<int64_t> ids = models::generate(g.model, {tok.bos_id()}, emotion, sampling);
  const std::vector<int32_t> ids32(ids.begin(), ids.end());
  tokenizer::DecodeStats stats;
  const midi::Score score = tok.decode(ids32, &stats);
  midi::write_midi_file(score, path);

  double seconds = 0.0;
  for (const auto& n : score.notes) seconds = std::max(seconds, n.end_s);
  nlohmann::ordered_json out;
  out["out"] = path;
  out["seed"] = sampling.seed;
  out["tokens"] = ids.size();
  out["ended_with_eos"] = !ids.empty() && ids.back() == tok.eos_id();
  out["notes"] = score.notes.size();
  out["seconds"] = seconds;
  out["skipped_tokens"] = stats.invalid;
  out["incomplete_notes"] = stats.incomplete_notes;  // 1 at most: a note cut by --max-tokens
  return out;
}

}  // namespace

models::SamplingOptions piece_sampling(const train::LoadedGenerator& g, const models::SamplingOptions& user) {
  const tokenizer::Tokenizer& tok = *g.tokenizer;
  models::SamplingOptions sampling = user;
  sampling.stop_ids = {tok.eos_id()};
  // Every special token except EOS is meaningless inside a piece; the
  // grammar masks every token that would not decode.
  for (const std::string& name : tok.vocab().special_names()) {
    const int32_t id = tok.special_id(name);
    if (id != tok.eos_id()) sampling.banned_ids.push_back(id);
  }
  sampling.grammar = std::make_shared<tokenizer::Grammar>(tok.grammar());
  return sampling;
}

nlohmann::ordered_json write_pieces(train::LoadedGenerator& g, const at::Tensor& emotion,
                                    const models::SamplingOptions& sampling, const std::string& out_dir,
                                    int64_t count) {
  std::filesystem::create_directories(out_dir);
  nlohmann::ordered_json summary;
  summary["out_dir"] = out_dir;
  summary["count"] = count;
  summary["checkpoint_step"] = g.step;
  summary["guidance"] = sampling.guidance;
  nlohmann::ordered_json pieces = nlohmann::ordered_json::array();
  int64_t skipped = 0;
  for (int64_t i = 0; i < count; ++i) {
    models::SamplingOptions piece = sampling;
    piece.seed = sampling.seed + static_cast<uint64_t>(i);
    pieces.push_back(write_piece(g, emotion, piece, (std::filesystem::path(out_dir) / piece_name(i, count)).string()));
    skipped += pieces.back()["skipped_tokens"].get<int64_t>();
  }
  summary["skipped_tokens"] = skipped;
  summary["pieces"] = pieces;
  return summary;
}

void register_generate(CLI::App& app) {
  struct Args {
    std::string checkpoint, emotion = "0,0";
    Outputs outputs;
    models::SamplingOptions sampling;
    bool raw_weights = false;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = add_command(app, "generate");
  cmd->add_option("--checkpoint", args->checkpoint, "midi_generator checkpoint (.ckpt)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--emotion", args->emotion, "valence,arousal[,intensity], each in [-1, 1]")->capture_default_str();
  cmd->add_option("--out", args->outputs.out, "MIDI file to write (atomically): one piece");
  cmd->add_option("--out-dir", args->outputs.out_dir,
                  "folder for --count pieces, written atomically as 000.mid, 001.mid, ... (created if missing; "
                  "files of the same names are replaced)");
  cmd->add_option("--count", args->outputs.count,
                  "pieces to write into --out-dir; piece i uses seed S+i, so DIR/007.mid is the piece "
                  "'--seed S+7 --out FILE' writes")
      ->capture_default_str();
  cmd->add_option("--temperature", args->sampling.temperature, "divides the logits (> 0)")->capture_default_str();
  cmd->add_option("--top-k", args->sampling.top_k, "keep the k most likely tokens; 0: off")->capture_default_str();
  cmd->add_option("--top-p", args->sampling.top_p, "nucleus probability mass; 1: off")->capture_default_str();
  cmd->add_option("--repetition-penalty", args->sampling.repetition_penalty, ">= 1; 1: off")->capture_default_str();
  cmd->add_option("--max-tokens", args->sampling.max_new_tokens, "tokens to generate at most")->capture_default_str();
  cmd->add_option("--seed", args->sampling.seed, "sampling seed S (same seed, same piece)")->capture_default_str();
  cmd->add_option("--guidance", args->sampling.guidance,
                  "classifier-free guidance G >= 0: logits = neutral + G * (conditioned - neutral), neutral being "
                  "the zero emotion vector; 1: off")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "intra-op threads; 0: every core available");
  cmd->add_flag("--raw-weights", args->raw_weights, "use the trained weights even when the checkpoint has an EMA");
  cmd->callback([args] {
    train::configure_process(args->threads, 1);
    validate_outputs(args->outputs);
    try {
      args->sampling.validate();
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("generate: ") + e.what());
    }
    train::LoadedGenerator g = train::load_generator_checkpoint(args->checkpoint, !args->raw_weights);
    const at::Tensor emotion = parse_emotion(args->emotion, g.model->options().emotion_dim);
    const models::SamplingOptions sampling = piece_sampling(g, args->sampling);
    torch::NoGradGuard no_grad;
    const Outputs& o = args->outputs;
    if (!o.out.empty()) {
      nlohmann::ordered_json out = write_piece(g, emotion, sampling, o.out);
      out["checkpoint_step"] = g.step;
      std::printf("%s\n", out.dump().c_str());
      return;
    }
    const nlohmann::ordered_json summary = write_pieces(g, emotion, sampling, o.out_dir, o.count);
    std::printf("%s\n", summary.dump().c_str());
  });
}

}  // namespace kmidi::cli

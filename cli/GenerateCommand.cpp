#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "core/Errors.h"
#include "core/Strings.h"
#include "datasets/midi/MidiWriter.h"
#include "models/Sampling.h"
#include "train/Runtime.h"
#include "train/tasks/MidiGeneratorTask.h"

namespace kmidi::cli {
namespace {

/// "V,A[,I]" -> the contract's emotion vector: [valence, arousal, intensity, 0, ...].
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

}  // namespace

void register_generate(CLI::App& app) {
  struct Args {
    std::string checkpoint, emotion = "0,0", out;
    models::SamplingOptions sampling;
    bool raw_weights = false;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("generate", "sample a piece from a MIDI generator checkpoint and write it as MIDI");
  cmd->add_option("--checkpoint", args->checkpoint, "midi_generator checkpoint (.ckpt)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--emotion", args->emotion, "valence,arousal[,intensity], each in [-1, 1]")->capture_default_str();
  cmd->add_option("--out", args->out, "MIDI file to write (atomically)")->required();
  cmd->add_option("--temperature", args->sampling.temperature, "divides the logits (> 0)")->capture_default_str();
  cmd->add_option("--top-k", args->sampling.top_k, "keep the k most likely tokens; 0: off")->capture_default_str();
  cmd->add_option("--top-p", args->sampling.top_p, "nucleus probability mass; 1: off")->capture_default_str();
  cmd->add_option("--repetition-penalty", args->sampling.repetition_penalty, ">= 1; 1: off")->capture_default_str();
  cmd->add_option("--max-tokens", args->sampling.max_new_tokens, "tokens to generate at most")->capture_default_str();
  cmd->add_option("--seed", args->sampling.seed, "sampling seed (same seed, same piece)")->capture_default_str();
  cmd->add_option("--threads", args->threads, "intra-op threads; 0: every core available");
  cmd->add_flag("--raw-weights", args->raw_weights, "use the trained weights even when the checkpoint has an EMA");
  cmd->callback([args] {
    train::configure_process(args->threads, 1);
    try {
      args->sampling.validate();
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("generate: ") + e.what());
    }
    if (args->sampling.max_new_tokens < 1) throw UsageError("generate: --max-tokens must be at least 1");
    train::LoadedGenerator g = train::load_generator_checkpoint(args->checkpoint, !args->raw_weights);
    const tokenizer::Tokenizer& tok = *g.tokenizer;
    const at::Tensor emotion = parse_emotion(args->emotion, g.model->options().emotion_dim);

    models::SamplingOptions sampling = args->sampling;
    sampling.stop_ids = {tok.eos_id()};
    // Every special token except EOS is meaningless inside a piece.
    for (const std::string& name : tok.vocab().special_names()) {
      const int32_t id = tok.special_id(name);
      if (id != tok.eos_id()) sampling.banned_ids.push_back(id);
    }
    torch::NoGradGuard no_grad;
    const std::vector<int64_t> ids = models::generate(g.model, {tok.bos_id()}, emotion, sampling);
    const std::vector<int32_t> ids32(ids.begin(), ids.end());
    tokenizer::DecodeStats stats;
    const midi::Score score = tok.decode(ids32, &stats);
    midi::write_midi_file(score, args->out);

    double seconds = 0.0;
    for (const auto& n : score.notes) seconds = std::max(seconds, n.end_s);
    nlohmann::ordered_json out;
    out["out"] = args->out;
    out["checkpoint_step"] = g.step;
    out["tokens"] = ids.size();
    out["ended_with_eos"] = !ids.empty() && ids.back() == tok.eos_id();
    out["notes"] = score.notes.size();
    out["seconds"] = seconds;
    out["skipped_tokens"] = stats.invalid;
    std::printf("%s\n", out.dump().c_str());
  });
}

}  // namespace kmidi::cli

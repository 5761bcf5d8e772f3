// kmidi humanize IN.mid --checkpoint CKPT --out OUT.mid: a trained groove
// model gives a quantized drum part (channel 10) human timing and velocities.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/Commands.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/midi/MidiWriter.h"
#include "train/tasks/GrooveHumanize.h"

namespace kmidi::cli {

void register_humanize(CLI::App& app) {
  struct Args {
    std::string input, checkpoint, output, player;
    bool raw_weights = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = add_command(app, "humanize");
  cmd->add_option("input", args->input, "MIDI file with a drum part")->required()->check(CLI::ExistingFile);
  cmd->add_option("--checkpoint", args->checkpoint, "checkpoint of a `task: groove` run (.ckpt)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", args->output, "MIDI file to write (atomically)")->required();
  cmd->add_option("--player", args->player,
                  "humanize in the feel of this player (a drummer the model was trained on, e.g. drummer1); "
                  "default: any player");
  cmd->add_flag("--raw-weights", args->raw_weights, "use the trained weights even when the checkpoint has an EMA");
  cmd->callback([args] {
    train::GrooveCheckpoint ckpt = train::load_groove_checkpoint(args->checkpoint, !args->raw_weights);
    const int64_t player = train::player_id(ckpt, args->player);
    const midi::Score score = midi::read_midi_file(args->input);
    train::HumanizeStats stats;
    const midi::Score out = train::humanize(score, *ckpt.model, ckpt.window_steps, &stats, player);
    midi::write_midi_file(out, args->output);
    spdlog::info("humanized {} of {} notes in {} windows (step {} checkpoint{})", stats.humanized, stats.notes,
                 stats.windows, ckpt.step, ckpt.used_ema ? ", EMA weights" : "");
    nlohmann::ordered_json j;
    j["input"] = args->input;
    j["output"] = args->output;
    j["checkpoint"] = args->checkpoint;
    j["step"] = ckpt.step;
    j["player"] = args->player.empty() ? "any" : args->player;
    j["ema"] = ckpt.used_ema;
    j["notes"] = stats.notes;
    j["humanized"] = stats.humanized;
    j["windows"] = stats.windows;
    j["mean_abs_offset_ms"] = stats.mean_abs_offset_ms;
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace kmidi::cli

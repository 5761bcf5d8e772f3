#include <CLI/CLI.hpp>

#include <stdexcept>

#include "cli/Commands.h"

namespace kmidi::cli {

const std::vector<CommandInfo>& command_table() {
  static const std::vector<CommandInfo> table{
      {"version", "print kmidi's version and the libraries it was built with", Part::kFront},
      {"inspect", "summarize what the MIDI reader makes of a file, or print its notes as JSON lines", Part::kFront},
      {"train", "train a model from a job config (resumes the run folder by default)", Part::kTorch},
      {"evaluate",
       "metrics of a checkpoint on a split; predictions for data without targets or on request (an emotion model on "
       "MIDI files: kmidi predict)",
       Part::kTorch},
      {"generate", "sample pieces from a MIDI generator checkpoint and write them as MIDI", Part::kTorch},
      {"evaluate-generation",
       "emotion control of a generator: pieces for each quadrant judged by an emotion model, and music metrics "
       "against the real test pieces",
       Part::kTorch},
      {"onnx", "inspect and check ONNX files", Part::kData},
      {"registry", "the model registry manifest (registry.json)", Part::kFront},
      {"prepare",
       "tokenize a MIDI corpus into HDF5 shards, one per split (kind: spectocloud: audio excerpts and target clouds)",
       Part::kData},
      {"fetch-data", "download, verify and extract public data sets (data/catalogue.yaml) or archives by URL", Part::kData},
      {"validate", "check a corpus and its prepared shards before training on them", Part::kData},
      {"export",
       "export a trained model to checked ONNX files (onnx checker, shape inference, onnxruntime parity with "
       "LibTorch); --all exports every model config and writes registry.json",
       Part::kTorch},
      {"humanize", "give a MIDI drum part (channel 10) human timing and velocities with a trained groove model", Part::kTorch},
      {"predict",
       "valence, arousal and Russell quadrant of MIDI files from an emotion checkpoint (needs nothing else)", Part::kTorch},
  };
  return table;
}

CLI::App* add_command(CLI::App& app, const std::string& name) {
  for (const CommandInfo& info : command_table()) {
    if (name == info.name) return app.add_subcommand(info.name, info.description);
  }
  throw std::logic_error("kmidi subcommand '" + name + "' is missing from cli::command_table()");
}

void add_hand_overs(Registrars& registrars, Part part, const std::function<void(const std::string&)>& hand_over) {
  for (const CommandInfo& info : command_table()) {
    if (info.part != part || registrars.count(info.name) > 0) continue;
    registrars[info.name] = [name = info.name, hand_over](CLI::App& app) {
      add_command(app, name)->preparse_callback([name, hand_over](size_t) { hand_over(name); });
    };
  }
}

Registrars front_commands() {
  return {{"version", register_version}, {"inspect", register_inspect}, {"registry", register_registry}};
}

}  // namespace kmidi::cli

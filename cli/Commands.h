#pragma once
// Each subcommand lives in its own file and registers itself here. kmidi is
// three binaries, each linking only what its commands need (cli/Main.cpp):
// build/kmidi runs the light commands and hands the others, by exec, to
// build/libexec/data/kmidi (HDF5, ONNX, downloads) or build/libexec/kmidi
// (LibTorch, every command).

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kmidi::cli {

/// The binary that runs a command (and every binary after it in this order).
enum class Part {
  kFront,  ///< build/kmidi: core and MIDI libraries only
  kData,   ///< build/libexec/data/kmidi: HDF5 shards, ONNX, downloads; no LibTorch
  kTorch,  ///< build/libexec/kmidi: LibTorch
};

/// One subcommand as `kmidi --help` lists it.
struct CommandInfo {
  const char* name;
  const char* description;
  Part part;
};

/// Every subcommand, in the order `kmidi --help` lists them. Both binaries
/// list them from here, so the front's help names every command.
const std::vector<CommandInfo>& command_table();

/// app.add_subcommand(name, the description in command_table()); a name
/// missing from the table is a std::logic_error.
CLI::App* add_command(CLI::App& app, const std::string& name);

/// Adds one subcommand to the app; one per command_table() row.
using Registrars = std::map<std::string, std::function<void(CLI::App&)>>;

/// Options shared by every config-driven command.
struct ConfigArgs {
  std::string config;                  ///< --config FILE
  std::vector<std::string> overrides;  ///< positional key.path=value
  bool print_config = false;           ///< print the resolved config and exit
};

/// Adds --config, --print-config and key.path=value overrides to `cmd`.
void add_config_args(CLI::App& cmd, ConfigArgs& args, bool config_required = true);

/// `kmidi prepare` with a `kind: spectocloud` config (needs LibTorch).
using SpectocloudPrepare = std::function<void(const ConfigArgs&)>;

/// Adds, for each command of `part` without a registrar, one that calls
/// `hand_over(name)` (an exec of the binary that runs it) as soon as the command is
/// named, before its options are parsed: that binary parses the whole command
/// line again, so `kmidi train --help` and usage errors read as its own.
void add_hand_overs(Registrars& registrars, Part part, const std::function<void(const std::string& command)>& hand_over);

/// The Part::kFront commands (library kmidi_cli).
Registrars front_commands();
void register_version(CLI::App& app);
void register_inspect(CLI::App& app);
void register_registry(CLI::App& app);

/// The Part::kData commands (library kmidi_cli_data); `spectocloud` runs
/// `kmidi prepare` for a `kind: spectocloud` config.
Registrars data_commands(SpectocloudPrepare spectocloud);
void register_onnx(CLI::App& app);
void register_prepare(CLI::App& app, SpectocloudPrepare spectocloud);
void register_fetch_data(CLI::App& app);
void register_validate(CLI::App& app);

// The LibTorch commands (build/libexec/kmidi only).
void register_train(CLI::App& app);
void register_evaluate(CLI::App& app);
void register_evaluate_generation(CLI::App& app);
void register_generate(CLI::App& app);
void register_export(CLI::App& app);
void register_humanize(CLI::App& app);
void register_predict(CLI::App& app);
void prepare_spectocloud(const ConfigArgs& args);

}  // namespace kmidi::cli

#pragma once
// Each subcommand lives in its own file and registers itself here.

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kmidi::cli {

/// Options shared by every config-driven command.
struct ConfigArgs {
  std::string config;                  ///< --config FILE
  std::vector<std::string> overrides;  ///< positional key.path=value
  bool print_config = false;           ///< print the resolved config and exit
};

/// Adds --config, --print-config and key.path=value overrides to `cmd`.
void add_config_args(CLI::App& cmd, ConfigArgs& args, bool config_required = true);

void register_version(CLI::App& app);
void register_inspect(CLI::App& app);
void register_train(CLI::App& app);
void register_evaluate(CLI::App& app);
void register_evaluate_generation(CLI::App& app);
void register_generate(CLI::App& app);
void register_onnx(CLI::App& app);
void register_registry(CLI::App& app);
void register_prepare(CLI::App& app);
void register_fetch_data(CLI::App& app);
void register_validate(CLI::App& app);
void register_export(CLI::App& app);
void register_humanize(CLI::App& app);
void register_predict(CLI::App& app);

}  // namespace kmidi::cli

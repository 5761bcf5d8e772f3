#include <CLI/CLI.hpp>

#include "cli/Commands.h"

namespace kmidi::cli {

void add_config_args(CLI::App& cmd, ConfigArgs& args, bool config_required) {
  auto* opt = cmd.add_option("-c,--config", args.config, "YAML config file")->check(CLI::ExistingFile);
  if (config_required) opt->required();
  cmd.add_option("overrides", args.overrides,
                 "config overrides as key.path=value (value parsed as YAML)");
  cmd.add_flag("--print-config", args.print_config, "print the resolved config and exit");
}

}  // namespace kmidi::cli

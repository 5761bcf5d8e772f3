#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "core/Config.h"
#include "core/Errors.h"
#include "export/ModelExport.h"
#include "export/NightlyExport.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"

namespace kmidi::cli {

void register_export(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    std::string checkpoint = "auto";
    std::string out;
    bool all = false;
    std::vector<std::string> configs;
    bool raw_weights = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = add_command(app, "export");
  add_config_args(*cmd, args->config, /*config_required=*/false);
  cmd->add_option("--checkpoint", args->checkpoint,
                  "a .ckpt file, or 'auto': the newest valid step checkpoint of the run")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "output folder of the .onnx files (and registry.json with --all); required");
  cmd->add_flag("--all", args->all, "export every model config of --configs and write registry.json");
  cmd->add_option("--configs", args->configs,
                  "with --all: config files and/or folders (a folder's *.yaml files with a top-level task: key)");
  cmd->add_flag("--raw-weights", args->raw_weights, "export the trained weights even when the checkpoint has an EMA");
  cmd->callback([args] {
    const train::TaskRegistry& registry = train::builtin_tasks();
    if (args->out.empty() && !args->config.print_config) throw UsageError("export: give the output folder with --out DIR");
    if (args->all) {
      if (args->configs.empty()) throw UsageError("export --all: give the model configs with --configs DIR|FILE...");
      if (!args->config.config.empty() || !args->config.overrides.empty() || args->checkpoint != "auto") {
        throw UsageError("export --all: --config, --checkpoint and overrides apply to one model; use --configs");
      }
      exporter::NightlyOptions options;
      options.out_dir = args->out;
      options.use_ema = !args->raw_weights;
      const auto result = exporter::export_all(exporter::find_model_configs(args->configs), registry, options);
      std::fputs(exporter::summary_table(result).c_str(), stdout);
      std::fflush(stdout);
      if (!result.all_ok()) throw CheckFailed("export --all: a model or the registry failed; see the summary above");
      return;
    }
    if (!args->configs.empty()) throw UsageError("export: --configs needs --all");
    if (args->config.config.empty()) throw UsageError("export: give --config FILE (or --all --configs ...)");
    auto job = train::load_job_config(args->config.config, args->config.overrides, registry);
    if (args->config.print_config) {
      std::fputs(config::to_yaml(*job).c_str(), stdout);
      return;
    }
    exporter::ExportOptions options;
    options.checkpoint = args->checkpoint;
    options.out_dir = args->out;
    options.use_ema = !args->raw_weights;
    const auto result = exporter::export_model(*job, registry, options);
    std::fputs(exporter::describe(result).c_str(), stdout);
  });
}

}  // namespace kmidi::cli

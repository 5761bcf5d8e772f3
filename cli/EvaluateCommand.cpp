#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include "cli/Commands.h"
#include "core/Config.h"
#include "train/Job.h"
#include "train/Tasks.h"

namespace kmidi::cli {

void register_evaluate(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    train::EvaluateOptions options;
    bool raw_weights = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "evaluate", "metrics of a checkpoint on a split; predictions for data without targets or on request");
  add_config_args(*cmd, args->config);
  cmd->add_option("--checkpoint", args->options.checkpoint, "checkpoint file (.ckpt)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--split", args->options.split, "train, validation or test")
      ->check(CLI::IsMember({"train", "validation", "test"}))
      ->capture_default_str();
  cmd->add_option("--predictions", args->options.predictions,
                  "write one JSON line of outputs per item here (default for data without targets: "
                  "<run>/eval/<split>-step<N>/predictions.jsonl)");
  cmd->add_flag("--raw-weights", args->raw_weights, "use the trained weights even when the checkpoint has an EMA");
  cmd->callback([args] {
    const train::TaskRegistry& registry = train::builtin_tasks();
    auto job = train::load_job_config(args->config.config, args->config.overrides, registry);
    if (args->config.print_config) {
      std::fputs(config::to_yaml(*job).c_str(), stdout);
      return;
    }
    args->options.use_ema = !args->raw_weights;
    const train::EvaluateOutcome o = train::run_evaluation(*job, registry, args->options);
    nlohmann::ordered_json out;
    out["checkpoint"] = args->options.checkpoint;
    out["step"] = o.checkpoint_step;
    out["split"] = args->options.split;
    out["items"] = o.result.items;
    out["labelled"] = o.result.labelled;
    out["ema"] = o.used_ema;
    if (o.result.labelled) out["metrics"] = o.result.metrics;
    else out["note"] = "the split has no targets: metrics skipped";
    if (!o.predictions_path.empty()) out["predictions"] = o.predictions_path;
    out["output_dir"] = o.output_dir;
    std::printf("%s\n", out.dump().c_str());
  });
}

}  // namespace kmidi::cli

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include "cli/Commands.h"
#include "core/Config.h"
#include "core/Errors.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/EmotionTask.h"

namespace kmidi::cli {
namespace {

/// Predictions for MIDI files without labels are kmidi predict's: evaluate
/// wrote them into the labelled test run's folder (overwriting its
/// metrics.json and config.yaml) and ignored them for other splits.
void refuse_unlabelled_test(const train::JobConfig& job) {
  const auto* emotion = dynamic_cast<const train::EmotionTaskConfig*>(job.task_config.get());
  if (!emotion || emotion->data.unlabelled_test.empty()) return;
  throw UsageError("evaluate: data.unlabelled_test=" + emotion->data.unlabelled_test.str() +
                   ": evaluate scores the emotion task's labelled splits only; for MIDI files without labels run "
                   "kmidi predict --checkpoint CKPT DIR|FILE... --out predictions.jsonl");
}

}  // namespace

void register_evaluate(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    train::EvaluateOptions options;
    bool raw_weights = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = add_command(app, "evaluate");
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
    refuse_unlabelled_test(*job);
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

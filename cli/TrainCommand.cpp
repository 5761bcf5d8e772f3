#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include "cli/Commands.h"
#include "core/Config.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"

namespace kmidi::cli {

void register_train(CLI::App& app) {
  auto args = std::make_shared<ConfigArgs>();
  auto* cmd = add_command(app, "train");
  add_config_args(*cmd, *args);
  cmd->callback([args] {
    const train::TaskRegistry& registry = train::builtin_tasks();
    auto job = train::load_job_config(args->config, args->overrides, registry);
    if (args->print_config) {
      std::fputs(config::to_yaml(*job).c_str(), stdout);
      std::fputs(train::precision_comment(*job).c_str(), stdout);
      return;
    }
    const train::TrainResult r = train::run_training(*job, registry);
    nlohmann::ordered_json out;
    out["run_dir"] = train::run_folder(*job);
    out["step"] = r.step;
    out["reason"] = r.reason;
    if (r.last_validation && r.last_validation->labelled) out["validation"] = r.last_validation->metrics;
    if (r.best.has_best) {
      out["best"] = {{"monitor", job->train.early_stopping.monitor}, {"value", r.best.best}, {"step", r.best.best_step}};
    }
    out["last_checkpoint"] = r.last_checkpoint;
    if (!r.best_checkpoint.empty()) out["best_checkpoint"] = r.best_checkpoint;
    out["health"] = nlohmann::ordered_json::parse(train::health_json(r.health));
    std::printf("%s\n", out.dump().c_str());
  });
}

}  // namespace kmidi::cli

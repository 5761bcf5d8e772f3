#pragma once
// A training job as the CLI runs it: one YAML file selects a task by name and
// holds the common sections beside the task's own:
//
//   task: midi_generator          # a name registered in builtin_tasks()
//   data_root: ../shared/data     # optional: data paths resolve against it
//   run: {name: pop909, output_dir: runs, device: auto, resume: auto}
//   train: {max_steps: 5000, batch_size: 32, optimizer: {lr: 3e-4}, ...}
//   distributed: {timeout_s: 300}
//   data: ...                     # the task's sections
//   model: ...

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/Config.h"
#include "train/Distributed.h"
#include "train/Evaluator.h"
#include "train/Task.h"
#include "train/TrainConfig.h"
#include "train/Trainer.h"

namespace kmidi::train {

struct JobConfig : config::Section {
  std::string task;
  config::Path data_root;
  RunConfig run;
  TrainConfig train;
  DistributedConfig distributed;
  std::unique_ptr<config::Section> task_config;  ///< the task's own top-level sections
  std::string file;  ///< the YAML file it was read from (for messages); not a key
  void visit(config::Visitor& v) override;
};

/// Reads `file` with `overrides` (key.path=value): finds the task by its
/// `task:` key in `registry`, then reads everything into one JobConfig.
/// Throws config::ConfigError naming file, line and key.
std::unique_ptr<JobConfig> load_job_config(const std::string& file, const std::vector<std::string>& overrides,
                                           const TaskRegistry& registry);

/// The run folder: run.output_dir / run.name.
std::string run_folder(const JobConfig& job);

/// A YAML comment line for --print-config: what train.precision resolves to
/// on this machine and why, e.g. "# train.precision: auto = bf16 (auto: CPU has avx512_bf16)".
std::string precision_comment(const JobConfig& job);

/// Everything a job process sets up before it touches the task: threads and
/// malloc, the distributed context, logging (rank-aware) and the seed. Writes
/// nothing: the run folder appears only once every start-up check has passed,
/// so a failed start leaves the file system as it was.
struct JobRuntime {
  std::shared_ptr<DistributedContext> context;
  std::string run_dir;
  std::string config_yaml;  ///< the resolved config
};
JobRuntime start_job(JobConfig& job);

/// Throws DataError naming the split and the job's config when the train
/// split, or the validation split the run evaluates, has no items.
void require_training_data(Task& task, const JobConfig& job);

/// Builds the task of `job` on the job's device (model moved there),
/// seeding torch with train.seed first so that initialisation is reproducible.
std::unique_ptr<Task> make_task(JobConfig& job, const TaskRegistry& registry, const DistributedContext& context);

/// `kmidi train`: trains (resuming per run.resume) and returns the result.
/// Writes config.yaml and train.log to the run folder, which is created only
/// after the config, the data, the task and the trainer have been checked
/// (train.log still receives the start-up lines).
TrainResult run_training(JobConfig& job, const TaskRegistry& registry);

/// What load_checkpoint_weights() read from a checkpoint.
struct LoadedCheckpoint {
  int64_t step = 0;
  bool used_ema = false;    ///< the weights are the checkpoint's EMA average
  std::string meta_json;    ///< the checkpoint's meta.json (training state, see train/Checkpoint.h)
  std::string config_yaml;  ///< the resolved config it was trained with
};

/// Loads the weights of the checkpoint at `path` into `task`'s model: its
/// parameters and buffers, then the EMA average over the parameters when
/// `use_ema` and the checkpoint has one. First checks that the checkpoint was
/// trained for task `task_name` (UsageError otherwise) and that its artifacts
/// are the task's (Task::check_artifacts). Throws DataError for an unreadable
/// or corrupt file and for missing, unexpected or mis-shaped tensors.
LoadedCheckpoint load_checkpoint_weights(Task& task, const std::string& task_name, const std::string& path,
                                         bool use_ema);

struct EvaluateOptions {
  std::string checkpoint;        ///< required
  std::string split = "test";
  std::string predictions;       ///< JSONL output; empty: <run>/eval/<split>-step<N>/predictions.jsonl when the split has no targets
  bool use_ema = true;           ///< evaluate the checkpoint's weight average when it has one
};

struct EvaluateOutcome {
  EvaluationResult result;
  int64_t checkpoint_step = 0;
  std::string predictions_path;  ///< empty when none were written
  std::string output_dir;        ///< <run>/eval/<split>-step<N>
  bool used_ema = false;
};

/// `kmidi evaluate`: metrics on labelled data; predictions on request and for
/// data without targets (metrics are then skipped with a note). Writes
/// config.yaml, evaluate.log and metrics.json to output_dir, created only
/// once the checkpoint and the split have been loaded.
EvaluateOutcome run_evaluation(JobConfig& job, const TaskRegistry& registry, const EvaluateOptions& options);

}  // namespace kmidi::train

#include "train/Job.h"

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Logging.h"
#include "core/Strings.h"
#include "train/Checkpoint.h"
#include "train/Ema.h"
#include "train/InitFrom.h"
#include "train/runtime/Runtime.h"

namespace fs = std::filesystem;

namespace kmidi::train {

void JobConfig::visit(config::Visitor& v) {
  v.field("task", task, config::Spec("the model family to train, by registered name").required());
  v.field("data_root", data_root,
          config::Spec("folder that data paths (data sets, never configs) resolve against; unset: the config's folder. "
                       "The shipped configs set ${KMIDI_DATA_ROOT:-../../shared/data}"));
  v.section("run", run);
  v.section("train", train);
  v.section("distributed", distributed);
  if (task_config) task_config->visit(v);  // the task's sections sit at the top level
}

std::unique_ptr<JobConfig> load_job_config(const std::string& file, const std::vector<std::string>& overrides,
                                           const TaskRegistry& registry) {
  config::Document doc = config::Document::load_file(file);
  doc.apply_overrides(overrides);
  const auto task = doc.top_level_string("task");
  if (!task) {
    const auto names = registry.names();
    throw config::ConfigError(file + ": task: missing required key; registered tasks: " +
                              (names.empty() ? std::string("none") : strings::join(names, ", ")));
  }
  const TaskEntry& entry = [&]() -> const TaskEntry& {
    try {
      return registry.at(*task);
    } catch (const config::ConfigError& e) {
      throw config::ConfigError(file + ": " + e.what());
    }
  }();
  auto job = std::make_unique<JobConfig>();
  job->task_config = entry.make_config();
  doc.read_into(*job);
  job->file = file;
  return job;
}

std::string run_folder(const JobConfig& job) {
  return (fs::path(job.run.output_dir.str()) / job.run.name).lexically_normal().string();
}

std::string precision_comment(const JobConfig& job) {
  const bool cuda = job.run.device == "cuda" || (job.run.device == "auto" && torch::cuda::is_available());
  const PrecisionChoice choice = choose_precision(job.train.precision, cuda ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU));
  return "# train.precision: " + job.train.precision + " = " + choice.describe() + "\n";
}

JobRuntime start_job(JobConfig& job) {
  JobRuntime rt;
  rt.context = DistributedContext::create(job.distributed, job.run.device);
  const ProcessSettings process = configure_process(job.run.threads, rt.context->local_world_size());
  logging::Options log = logging::options();
  if (!job.run.log_level.empty()) log.level = job.run.log_level;
  log.rank = rt.context->rank();
  log.world_size = rt.context->world_size();
  logging::init(log);
  rt.run_dir = run_folder(job);
  rt.config_yaml = config::to_yaml(job);
  // Log files are tailed while a run goes on: flush them every few seconds.
  spdlog::flush_every(std::chrono::seconds(3));
  spdlog::debug("{} intra-op threads (from {}), malloc tuned: {}", process.threads, process.threads_from,
                process.malloc_tuned);
  return rt;
}

std::unique_ptr<Task> make_task(JobConfig& job, const TaskRegistry& registry, const DistributedContext& context) {
  torch::manual_seed(static_cast<uint64_t>(job.train.seed));
  TaskContext tc;
  tc.device = context.device();
  tc.rank = context.rank();
  tc.world_size = context.world_size();
  tc.seed = static_cast<uint64_t>(job.train.seed);
  std::unique_ptr<Task> task = registry.at(job.task).make_task(*job.task_config, tc);
  task->model().to(context.device());
  return task;
}

namespace {

int64_t count_parameters(torch::nn::Module& model, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) {
    if (!trainable_only || p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace

namespace {

/// Flushes the log (files included) when a job ends, however it ends.
struct FlushLogOnExit {
  ~FlushLogOnExit() { spdlog::default_logger()->flush(); }
};

/// Holds a job's start-up log lines while nothing may be written yet; once
/// the run folder exists they go to the head of its log file.
class StartupLog {
 public:
  StartupLog() : held_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kMaxLines)) {
    held_->set_level(spdlog::level::trace);
    spdlog::default_logger()->sinks().push_back(held_);
  }
  StartupLog(const StartupLog&) = delete;
  StartupLog& operator=(const StartupLog&) = delete;
  ~StartupLog() { detach(); }

  /// Creates the run folder (main process) and its log file, which starts
  /// with the held lines.
  void open_run_folder(const std::string& run_dir, const char* log_file_name, bool is_main) {
    detach();
    if (!is_main) return;
    files::ensure_dir(run_dir);
    auto& sinks = spdlog::default_logger()->sinks();
    const size_t before = sinks.size();
    logging::add_file(run_dir + "/" + log_file_name);
    if (sinks.size() == before) return;
    for (const auto& line : held_->last_raw()) sinks.back()->log(line);
  }

 private:
  static constexpr size_t kMaxLines = 2000;
  void detach() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), held_), sinks.end());
  }
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> held_;
};

}  // namespace

void require_training_data(Task& task, const JobConfig& job) {
  const std::string where = job.file.empty() ? std::string("the job") : job.file;
  const auto train_data = task.dataset(Split::kTrain);
  if (train_data && train_data->size() == 0) {
    throw DataError(where + ": the train split of task " + job.task +
                    " has no items: nothing to train on (prepare data that gives every split some files)");
  }
  const auto validation = task.dataset(Split::kValidation);
  if (validation && validation->size() == 0) {
    throw DataError(where + ": the validation split of task " + job.task +
                    " has no items: evaluation and best.ckpt would rest on nothing (prepare data that gives every "
                    "split some files)");
  }
}

TrainResult run_training(JobConfig& job, const TaskRegistry& registry) {
  FlushLogOnExit flush;
  // train.init_from (train/InitFrom.h): refused before anything is written; ignored when the run resumes.
  const bool init_from = !job.train.init_from.empty() && !job_will_resume(job, run_folder(job));
  if (init_from) check_init_from(job, registry);
  check_resume_checkpoint(job);
  JobRuntime rt = start_job(job);
  StartupLog startup_log;
  std::unique_ptr<Task> task = make_task(job, registry, *rt.context);
  if (init_from) {
    const InitFromResult loaded = load_init_from(*task, job, registry);
    spdlog::info("initialised the weights from {} (step {}{}); optimizer, schedule and data start afresh",
                 job.train.init_from.str(), loaded.step, loaded.used_ema ? ", its weight average" : "");
  } else if (!job.train.init_from.empty()) {
    spdlog::info("train.init_from ({}) ignored: the run resumes from its own checkpoint", job.train.init_from.str());
  }

  require_training_data(*task, job);

  TrainerOptions options;
  options.run_dir = rt.run_dir;
  options.resume = job.run.resume;
  options.tensorboard = job.run.tensorboard;
  options.task_name = job.task;
  options.config_yaml = rt.config_yaml;
  Trainer trainer(*task, job.train, options, rt.context);
  // Every check that can run before training has passed: now the run folder appears.
  startup_log.open_run_folder(rt.run_dir, "train.log", rt.context->is_main());
  if (rt.context->is_main()) files::write_atomic(rt.run_dir + "/config.yaml", rt.config_yaml);

  const int64_t params = count_parameters(task->model(), false);
  spdlog::info("kmidi train: task {} | {} parameters ({} trainable) | device {} | world size {} ({}) | "
               "global batch {} ({} x {} x {}) | {} threads, OpenMP wait policy {} | run {}",
               job.task, params, count_parameters(task->model(), true), rt.context->device().str(),
               rt.context->world_size(), rt.context->launcher(), job.train.batch_size, rt.context->world_size(),
               job.train.grad_accumulation,
               job.train.batch_size / (rt.context->world_size() * job.train.grad_accumulation), at::get_num_threads(),
               std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "default (spinning)", rt.run_dir);
  return trainer.fit();
}

LoadedCheckpoint load_checkpoint_weights(Task& task, const std::string& task_name, const std::string& path,
                                         bool use_ema) {
  CheckpointFile file(path);
  LoadedCheckpoint loaded;
  loaded.meta_json = std::string(file.bytes(checkpoint_section::kMeta));
  const auto meta = nlohmann::json::parse(loaded.meta_json, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) throw DataError(path + ": meta.json is not a JSON object");
  const std::string saved_task = meta.value("task", std::string());
  if (saved_task != task_name) {
    throw UsageError(path + ": the checkpoint was trained for task '" + saved_task + "', the config selects task '" +
                     task_name + "'");
  }
  if (file.has(checkpoint_section::kConfig)) loaded.config_yaml = std::string(file.bytes(checkpoint_section::kConfig));
  task.check_artifacts(file.artifacts());
  NamedTensorList target;
  for (const auto& item : task.model().named_parameters(true)) target.emplace_back(item.key(), item.value());
  for (const auto& item : task.model().named_buffers(true)) target.emplace_back(item.key(), item.value());
  load_named_tensors(file.tensors(checkpoint_section::kModel), target, path + ": model");
  loaded.step = meta.value("step", int64_t{0});
  if (use_ema && file.has(checkpoint_section::kEma)) {
    NamedTensorList params;
    for (const auto& item : task.model().named_parameters(true)) params.emplace_back(item.key(), item.value());
    load_named_tensors(file.tensors(checkpoint_section::kEma), params, path + ": ema");
    loaded.used_ema = true;
  }
  return loaded;
}

EvaluateOutcome run_evaluation(JobConfig& job, const TaskRegistry& registry, const EvaluateOptions& options) {
  FlushLogOnExit flush;
  if (options.checkpoint.empty()) throw UsageError("evaluate: --checkpoint is required");
  const Split split = parse_split(options.split);
  JobRuntime rt = start_job(job);
  std::unique_ptr<Task> task = make_task(job, registry, *rt.context);

  const LoadedCheckpoint loaded = load_checkpoint_weights(*task, job.task, options.checkpoint, options.use_ema);
  EvaluateOutcome outcome;
  outcome.checkpoint_step = loaded.step;
  outcome.used_ema = loaded.used_ema;

  std::shared_ptr<const data::Dataset> dataset = task->dataset(split);
  if (!dataset) throw UsageError(std::string("the task has no ") + split_name(split) + " data for this config");
  if (dataset->size() == 0) {
    throw DataError((job.file.empty() ? std::string("the job") : job.file) + ": the " + split_name(split) +
                    " split of task " + job.task + " has no items: nothing to evaluate");
  }

  outcome.output_dir = rt.run_dir + "/eval/" + options.split + "-step" + std::to_string(outcome.checkpoint_step);
  if (rt.context->is_main()) {
    files::ensure_dir(outcome.output_dir);
    logging::add_file(outcome.output_dir + "/evaluate.log");
    files::write_atomic(outcome.output_dir + "/config.yaml", rt.config_yaml);
  }

  std::string predictions = options.predictions;
  if (predictions.empty() && !dataset->has_targets()) predictions = outcome.output_dir + "/predictions.jsonl";
  if (!predictions.empty() && rt.context->distributed()) {
    predictions += ".rank" + std::to_string(rt.context->rank());  // shards in rank order = dataset order
  }
  std::unique_ptr<PredictionWriter> writer;
  if (!predictions.empty()) writer = std::make_unique<PredictionWriter>(predictions);

  EvaluationSettings settings = evaluation_settings(job.train, rt.context->world_size(),
                                                    resolve_precision(job.train.precision, rt.context->device()));
  settings.max_items = 0;  // train.eval_max_batches bounds validation during training; this reads the whole split
  spdlog::info("evaluating {} ({} items, batches of {} per rank) with {} (step {}{})", split_name(split),
               dataset->size(), settings.batch_size, options.checkpoint, outcome.checkpoint_step,
               outcome.used_ema ? ", EMA weights" : "");
  outcome.result = evaluate_split(*task, split, *rt.context, settings, writer.get());
  if (writer) {
    writer->finish();
    outcome.predictions_path = writer->path();
    spdlog::info("wrote {} predictions to {}", writer->rows(), writer->path());
  }
  if (!outcome.result.labelled) {
    spdlog::info("the {} split has no targets: metrics skipped, predictions written", split_name(split));
  }
  if (rt.context->is_main()) {
    nlohmann::ordered_json j;
    j["checkpoint"] = options.checkpoint;
    j["step"] = outcome.checkpoint_step;
    j["split"] = split_name(split);
    j["labelled"] = outcome.result.labelled;
    j["items"] = outcome.result.items;
    j["ema"] = outcome.used_ema;
    j["metrics"] = outcome.result.metrics;
    if (!outcome.predictions_path.empty()) j["predictions"] = outcome.predictions_path;
    files::write_atomic(outcome.output_dir + "/metrics.json", j.dump(2) + "\n");
  }
  return outcome;
}

}  // namespace kmidi::train

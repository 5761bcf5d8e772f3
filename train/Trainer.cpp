#include "train/Trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <future>
#include <thread>
#include <map>

#include "core/BuildInfo.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "core/Progress.h"
#include "core/Strings.h"
#include "train/Checkpoint.h"
#include "train/DataLoader.h"
#include "train/DiskSpace.h"
#include "train/Ema.h"
#include "train/MetricsLog.h"
#include "train/Profile.h"
#include "train/runtime/Runtime.h"
#include "train/io/TensorBoard.h"

namespace kmidi::train {

TrainingObserver::~TrainingObserver() = default;

namespace {

/// Token-budget batching's padding against fixed batches of the same data
/// (epoch 0), so that the log says what the budget saves.
void log_token_budget(const TrainSampler& sampler, const std::vector<int64_t>& costs, int64_t batch_size) {
  std::vector<std::vector<int64_t>> budget;
  for (const auto& step : sampler.epoch_steps(0)) budget.insert(budget.end(), step.begin(), step.end());
  double items = 0;
  for (const auto& b : budget) items += static_cast<double>(b.size());
  SamplerOptions fixed = sampler.options();
  fixed.tokens_per_batch = 0;
  fixed.global_batch = batch_size;
  fixed.rank = 0;
  fixed.world_size = 1;
  fixed.micro_steps = 1;
  std::string against = "train.batch_size does not fit the data";
  try {
    against = fmt::format("{:.1f}% with fixed batches of train.batch_size {}",
                          100.0 * padding_waste(TrainSampler(static_cast<int64_t>(costs.size()), fixed, costs).epoch_batches(0), costs),
                          batch_size);
  } catch (const UsageError&) {
  }
  spdlog::info("token-budget batching: {} tokens per micro-batch, {} micro-batches per epoch of {:.1f} items on "
               "average; padding {:.1f}% of the batch tensors ({})",
               sampler.options().tokens_per_batch, budget.size(), items / std::max<double>(1, budget.size()),
               100.0 * padding_waste(budget, costs), against);
}

NamedTensorList model_tensors(torch::nn::Module& model) {
  NamedTensorList out;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

std::string format_metrics(const MetricValues& metrics) {
  std::string text;
  for (const auto& [name, value] : metrics) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%s %.6g", text.empty() ? "" : " | ", name.c_str(), value);
    text += buf;
  }
  return text;
}

/// "nan", "inf", "-inf" or %g: NaN signs and payloads vary by platform and mean nothing here.
std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void add_sum(MetricSums& sums, const std::string& name, const at::Tensor& value) {
  for (auto& [n, t] : sums) {
    if (n == name) {
      t.add_(value);
      return;
    }
  }
  sums.emplace_back(name, value.detach().to(at::kDouble).clone());
}

// ---------------------------------------------------------------------------
// Default observers

/// metrics.jsonl, TensorBoard, the progress line and log lines (main rank
/// writes; every rank joins the all-reduce at log steps).
class MetricsObserver final : public TrainingObserver {
 public:
  void on_train_begin(Trainer& t) override {
    const bool resumed = t.resumed_from() > 0;
    if (t.context().is_main()) {
      log_ = std::make_unique<MetricsLog>(t.options().run_dir + "/metrics.jsonl", resumed ? t.resumed_from() : -1);
      if (t.options().tensorboard) {
        tensorboard_ = std::make_unique<TensorBoardWriter>(t.options().run_dir + "/tensorboard");
        // TensorBoard drops what earlier sessions of this run folder logged
        // past the step this session starts from (an interrupted run's tail).
        tensorboard_->session_start(t.resumed_from() + 1);
      }
    }
    unit_ = t.task().throughput_unit();
    progress_ = std::make_unique<Progress>("train", t.max_steps() - t.resumed_from(), "steps");
    window_start_ = std::chrono::steady_clock::now();
  }

  void after_step(Trainer& t, const StepReport& r) override {
    for (const auto& [name, value] : *r.sums) add_sum(window_sums_, name, value);
    units_ += r.local_units;
    throughput_units_ += r.local_throughput_units;
    if (!r.skipped) {
      grad_norm_sum_ = grad_norm_sum_.defined() ? grad_norm_sum_ + r.grad_norm.to(at::kDouble) : r.grad_norm.to(at::kDouble);
      ++grad_norm_count_;
    }
    progress_->update(r.step - t.resumed_from());
    if (r.step % t.config().log_every == 0 || r.step == t.max_steps()) flush_window(t, r);
  }

  void after_evaluation(Trainer& t, const EvaluationReport& report) override {
    const EvaluationResult& e = report.result;
    const std::string split = split_name(e.split);
    if (!e.labelled) {
      spdlog::info("{} at step {}: the split has no targets; metrics skipped", split, report.step);
      return;
    }
    const EarlyStoppingState& es = t.state().early_stopping;
    spdlog::info("{} at step {}: {} ({} items, {:.1f} s){}", split, report.step, format_metrics(e.metrics), e.items,
                 e.seconds,
                 report.improved ? " [new best]"
                                 : es.has_best ? fmt::format(" [best {} {:.6g} at step {}]", t.config().early_stopping.monitor,
                                                             es.best, es.best_step)
                                               : std::string());
    if (!t.context().is_main()) return;
    std::map<std::string, double> row(e.metrics.begin(), e.metrics.end());
    row["items"] = static_cast<double>(e.items);
    row["eval_seconds"] = e.seconds;
    log_->write(report.step, split, row);
    if (tensorboard_) {
      tensorboard::Scalars scalars;
      for (const auto& [name, value] : e.metrics) scalars.emplace_back(split + "/" + name, value);
      tensorboard_->add_scalars(report.step, scalars);
      tensorboard_->flush();
    }
  }

  void on_train_end(Trainer& t, const std::string& reason) override {
    if (log_) log_->write(t.state().step, "health", health_numbers(t.health()));
    if (progress_) progress_->finish();
    if (tensorboard_) tensorboard_->flush();
  }

 private:
  void flush_window(Trainer& t, const StepReport& r) {
    // One host copy and one all-reduce per log step, none in between.
    std::vector<at::Tensor> parts;
    for (const auto& [name, value] : window_sums_) parts.push_back(value.reshape({1}));
    parts.push_back((grad_norm_sum_.defined() ? grad_norm_sum_ : torch::zeros({}, torch::kDouble)).reshape({1}).to(at::kDouble));
    const at::Tensor host = torch::cat(parts).to(at::kCPU);
    std::vector<double> values(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
    values.push_back(static_cast<double>(units_));
    values.push_back(static_cast<double>(throughput_units_));
    values.push_back(static_cast<double>(grad_norm_count_));
    t.context().all_reduce_sum(values);

    MetricValues sums;
    for (size_t i = 0; i < window_sums_.size(); ++i) sums[window_sums_[i].first] = values[i];
    const size_t n = window_sums_.size();
    sums["units"] = values[n + 1];
    MetricValues metrics = t.task().finalize(sums, Split::kTrain);
    const double grad_norm = values[n + 3] > 0 ? values[n] / values[n + 3] : std::nan("");
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - window_start_).count();
    const double throughput = seconds > 0 ? values[n + 2] / seconds : 0.0;
    const double lr = r.lr;

    char line[160];
    std::snprintf(line, sizeof line, "lr %.3e | grad_norm %.4g | %.4g %s/s", lr, grad_norm, throughput, unit_.c_str());
    spdlog::info("step {}/{} epoch {} | {} | {}", r.step, t.max_steps(), t.state().position.epoch, format_metrics(metrics), line);
    const auto loss = metrics.find("loss");
    if (loss != metrics.end()) {
      char post[64];
      std::snprintf(post, sizeof post, "loss %.4g lr %.2e", loss->second, lr);
      progress_->set_postfix(post);
    }
    if (t.context().is_main()) {
      std::map<std::string, double> row(metrics.begin(), metrics.end());
      row["lr"] = lr;
      row["grad_norm"] = grad_norm;
      row["throughput"] = throughput;
      row["epoch"] = static_cast<double>(t.state().position.epoch);
      row["elapsed_s"] = t.state().elapsed_seconds;
      row["skipped_steps"] = static_cast<double>(t.state().skipped_steps);
      log_->write(r.step, "train", row, {{"throughput_unit", unit_}});
      if (tensorboard_) {
        tensorboard::Scalars scalars;
        for (const auto& [name, value] : metrics) scalars.emplace_back("train/" + name, value);
        scalars.emplace_back("train/lr", lr);
        scalars.emplace_back("train/grad_norm", grad_norm);
        scalars.emplace_back("train/" + unit_ + "_per_s", throughput);
        tensorboard_->add_scalars(r.step, scalars);
        tensorboard_->flush();
      }
    }
    window_sums_.clear();
    grad_norm_sum_ = at::Tensor();
    grad_norm_count_ = 0;
    units_ = throughput_units_ = 0;
    window_start_ = now;
  }

  std::unique_ptr<MetricsLog> log_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  std::unique_ptr<Progress> progress_;
  std::string unit_;
  MetricSums window_sums_;
  at::Tensor grad_norm_sum_;
  int64_t grad_norm_count_ = 0, units_ = 0, throughput_units_ = 0;
  std::chrono::steady_clock::time_point window_start_;
};

/// Validation every eval_every steps and once at the end of a completed run.
class EvaluationObserver final : public TrainingObserver {
 public:
  void after_step(Trainer& t, const StepReport& r) override {
    if (t.config().eval_every > 0 && r.step % t.config().eval_every == 0) t.run_validation();
  }
  void on_train_end(Trainer& t, const std::string&) override {
    if (t.state().step >= t.max_steps() && t.state().last_validation_step != t.state().step) t.run_validation();
  }
};

/// Checkpoints every checkpoint_every steps, on a new best, and at the end.
class CheckpointObserver final : public TrainingObserver {
 public:
  void after_step(Trainer& t, const StepReport& r) override {
    if (t.config().checkpoint_every > 0 && r.step % t.config().checkpoint_every == 0) t.save_checkpoint();
  }
  void after_evaluation(Trainer& t, const EvaluationReport& report) override {
    if (report.improved) t.mark_best();
  }
  void on_train_end(Trainer& t, const std::string&) override { t.save_checkpoint(); }
};

}  // namespace

// ---------------------------------------------------------------------------

Trainer::Trainer(Task& task, const TrainConfig& config, TrainerOptions options,
                 std::shared_ptr<DistributedContext> context)
    : task_(task),
      config_(config),
      options_(std::move(options)),
      context_(std::move(context)),
      precision_(resolve_precision(config.precision, context_->device())),
      early_stopping_(config.early_stopping) {
  for (const auto& item : task_.model().named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    const bool decay = config_.optimizer.decay_biases_and_norms || task_.applies_weight_decay(item.key(), item.value());
    parameters_.push_back(NamedParameter{item.key(), item.value(), decay});
  }
  if (parameters_.empty()) throw UsageError("the task's model has no trainable parameters");
  optimizer_ = std::make_unique<AdamW>(parameters_, config_.optimizer);
  if (config_.ema.decay > 0) ema_ = std::make_unique<Ema>(parameters_, config_.ema.decay);

  train_data_ = task_.dataset(Split::kTrain);
  if (!train_data_) throw UsageError("the task has no training data");
  std::vector<int64_t> costs;
  if (config_.bucket_batches > 0 || train_data_->tokens_per_batch() > 0) {
    costs.reserve(train_data_->size());
    for (size_t i = 0; i < train_data_->size(); ++i) costs.push_back(train_data_->item_cost(i));
  }
  SamplerOptions so;
  so.global_batch = config_.batch_size;
  so.micro_steps = config_.grad_accumulation;
  so.rank = context_->rank();
  so.world_size = context_->world_size();
  so.shuffle = config_.shuffle;
  so.drop_last = config_.drop_last;
  so.seed = static_cast<uint64_t>(config_.seed);
  so.bucket_batches = config_.bucket_batches;
  so.tokens_per_batch = train_data_->tokens_per_batch();
  sampler_ = std::make_unique<TrainSampler>(static_cast<int64_t>(train_data_->size()), so, costs);
  if (sampler_->token_budget()) log_token_budget(*sampler_, costs, config_.batch_size);
  max_steps_ = config_.max_steps > 0 ? config_.max_steps : config_.epochs * sampler_->steps_per_epoch();
  if (config_.max_steps == 0 && config_.schedule.warmup_steps > max_steps_) {
    throw UsageError("train.schedule.warmup_steps (" + std::to_string(config_.schedule.warmup_steps) +
                     ") exceeds the run's " + std::to_string(max_steps_) + " steps (train.epochs " +
                     std::to_string(config_.epochs) + " x " + std::to_string(sampler_->steps_per_epoch()) +
                     " steps per epoch)");
  }
  schedule_ = std::make_unique<LrSchedule>(config_.schedule, config_.optimizer.lr, max_steps_);
  store_ = std::make_unique<CheckpointStore>(options_.run_dir + "/checkpoints", config_.keep_last_k);
  if (config_.early_stopping.patience > 0 && !task_.dataset(Split::kValidation)) {
    throw UsageError("train.early_stopping.patience is " + std::to_string(config_.early_stopping.patience) +
                     " but the task has no validation data to monitor");
  }
  check_disk_space();
  if (options_.default_observers) {
    observers_.push_back(std::make_shared<MetricsObserver>());
    observers_.push_back(std::make_shared<EvaluationObserver>());
    observers_.push_back(std::make_shared<CheckpointObserver>());
  }
  if (config_.profile) observers_.push_back(profile::make_profile_observer());
}

Trainer::~Trainer() = default;

void Trainer::add_observer(std::shared_ptr<TrainingObserver> observer) { observers_.push_back(std::move(observer)); }

int64_t Trainer::steps_per_epoch() const { return sampler_->steps_per_epoch(); }

TrainResult Trainer::fit() {
  StopSignals signals;
  if (context_->is_main()) {
    files::ensure_dir(options_.run_dir);
    store_->remove_stale_temporaries();
  }
  resume();
  broadcast_initial_state();
  synchronizer_ = context_->synchronize_gradients(task_.model());
  task_.model().train();

  spdlog::info("training {} steps from step {}: {} steps per epoch, batch {} = {} rank(s) x {} micro-step(s) x {}, "
               "lr schedule {}, precision {}{}",
               max_steps_, state_.step, sampler_->steps_per_epoch(),
               sampler_->token_budget() ? std::string("of token budgets") : std::to_string(config_.batch_size),
               context_->world_size(), config_.grad_accumulation,
               sampler_->token_budget() ? fmt::format("{} tokens", sampler_->options().tokens_per_batch)
                                        : fmt::format("{} items", sampler_->micro_batch_size()),
               schedule_->describe(),
               choose_precision(config_.precision, context_->device()).describe(),
               ema_ ? fmt::format(", EMA decay {}", config_.ema.decay) : std::string());

  if (!task_.dataset(Split::kValidation)) {
    spdlog::info("the task has no validation data: no evaluation, no best checkpoint");
  }
  for (auto& o : observers_) o->on_train_begin(*this);
  StallWatchdog watchdog(std::chrono::milliseconds(std::llround(config_.stall_timeout_s * 1000.0)),
                         [this](int64_t step, double seconds) { on_stall(step, seconds); });
  stall_watchdog_ = &watchdog;
  step_phase_ = StepPhase::kBetweenSteps;
  const auto session_start = std::chrono::steady_clock::now();
  const double elapsed_before = state_.elapsed_seconds;
  while (state_.step < max_steps_ && !stop_requested_) {
    train_step();
    state_.elapsed_seconds =
        elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - session_start).count();
  }
  const std::string reason =
      stop_requested_ ? stop_reason_ : "reached the last step (" + std::to_string(max_steps_) + ")";
  spdlog::info("training ended at step {}: {}", state_.step, reason);
  for (auto& o : observers_) o->on_train_end(*this, reason);

  TrainResult result;
  result.step = state_.step;
  result.reason = reason;
  result.last_validation = last_validation_;
  result.best = state_.early_stopping;
  result.last_checkpoint = last_checkpoint_;
  result.health = health();
  spdlog::info("run health: {}", health_json(result.health));
  stall_watchdog_ = nullptr;
  std::error_code ec;
  if (std::filesystem::exists(store_->best_path(), ec)) result.best_checkpoint = store_->best_path();
  return result;
}

void Trainer::resume() {
  std::string path;
  const std::string& mode = options_.resume;
  if (mode == "none") {
    const auto existing = store_->list();
    if (!existing.empty()) {
      throw UsageError("run.resume is 'none' but " + store_->dir() + " already holds checkpoints (newest " +
                       existing.back().second + "); starting afresh there would mix two runs: choose another "
                       "run.name, delete the folder, or resume");
    }
    return;
  }
  if (mode == "auto") {
    std::vector<std::string> skipped;
    const auto latest = store_->latest_valid(&skipped);
    if (!latest) {
      if (!skipped.empty()) {
        throw DataError("no usable checkpoint in " + store_->dir() + " to resume from: " + strings::join(skipped, "; "));
      }
      return;
    }
    path = *latest;
  } else {
    path = mode;
  }

  CheckpointFile file(path);
  const auto meta = nlohmann::json::parse(file.bytes(checkpoint_section::kMeta), nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) throw DataError(path + ": meta.json is not a JSON object");
  const std::string saved_task = meta.value("task", std::string());
  if (!options_.task_name.empty() && saved_task != options_.task_name) {
    throw UsageError(path + ": the checkpoint was trained for task '" + saved_task + "', this job is task '" +
                     options_.task_name + "'");
  }
  task_.check_artifacts(file.artifacts());
  load_named_tensors(file.tensors(checkpoint_section::kModel), model_tensors(task_.model()), path + ": model");
  optimizer_->load_state(file.tensors(checkpoint_section::kOptimizer));
  if (ema_) {
    if (file.has(checkpoint_section::kEma)) {
      ema_->load_state(file.tensors(checkpoint_section::kEma));
    } else {
      spdlog::warn("{} has no weight average (EMA was off); the average starts from the loaded weights", path);
      ema_ = std::make_unique<Ema>(parameters_, config_.ema.decay);
    }
  }
  for (const auto& [name, state] : file.tensors(checkpoint_section::kRng)) {
    if (name == "cpu") {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    } else if (context_->device().is_cuda() && name == "cuda:" + std::to_string(context_->device().index())) {
      auto gen = at::globalContext().defaultGenerator(context_->device());
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    }
  }
  restore_meta(std::string(file.bytes(checkpoint_section::kMeta)));
  if (std::string(file.bytes(checkpoint_section::kConfig)) != options_.config_yaml) {
    spdlog::info("the job config differs from the one saved in {}; the current config applies", path);
  }
  // A checkpoint taken at an epoch's last step holds (epoch, steps_per_epoch):
  // the run simply goes on with the next epoch. Past that, the data or the
  // batch size changed since the checkpoint.
  if (state_.position.step_in_epoch > sampler_->steps_per_epoch()) {
    spdlog::warn("the checkpoint stopped after step {} of epoch {}, but this data has only {} steps per epoch "
                 "(the data or train.batch_size changed since); training goes on with epoch {}",
                 state_.position.step_in_epoch, state_.position.epoch, sampler_->steps_per_epoch(),
                 state_.position.epoch + 1);
  }
  if (state_.position.step_in_epoch >= sampler_->steps_per_epoch()) {
    ++state_.position.epoch;
    state_.position.step_in_epoch = 0;
  }
  resumed_from_ = state_.step;
  last_saved_step_ = state_.step;
  last_checkpoint_ = path;
  spdlog::info("resumed from {} at step {} (epoch {}, step {} of the epoch)", path, state_.step,
               state_.position.epoch, state_.position.step_in_epoch);
}

void Trainer::broadcast_initial_state() {
  // Ranks built their models from the same seed and loaded the same
  // checkpoint; the broadcast makes equality a guarantee, not an assumption.
  if (context_->distributed()) context_->broadcast_module(task_.model());
}

std::string Trainer::meta_json() const {
  nlohmann::ordered_json j;
  j["format"] = "kmidi.checkpoint";
  j["format_version"] = kCheckpointFormatVersion;
  j["task"] = options_.task_name;
  j["step"] = state_.step;
  j["epoch"] = state_.position.epoch;
  j["step_in_epoch"] = state_.position.step_in_epoch;
  j["skipped_steps"] = state_.skipped_steps;
  j["consecutive_skips"] = state_.consecutive_skips;
  j["last_validation_step"] = state_.last_validation_step;
  j["elapsed_seconds"] = state_.elapsed_seconds;
  j["units_seen"] = state_.units_seen;
  j["health"] = {{"stalls", state_.stalls},
                 {"slowest_step", state_.step_times.slowest_step},
                 {"slowest_step_ms", state_.step_times.slowest_step_ms},
                 {"data_wait_s", state_.step_times.data_wait_s},
                 {"step_s", state_.step_times.step_s}};
  const EarlyStoppingState& es = state_.early_stopping;
  j["early_stopping"] = {{"monitor", config_.early_stopping.monitor},
                         {"mode", config_.early_stopping.mode},
                         {"has_best", es.has_best},
                         {"best", es.has_best ? es.best : 0.0},
                         {"best_step", es.best_step},
                         {"bad_evaluations", es.bad_evaluations}};
  j["schedule"] = {{"description", schedule_->describe()},
                   {"total_steps", schedule_->total_steps()},
                   {"next_lr", schedule_->lr(state_.step)}};
  j["sampler"] = {{"seed", config_.seed},
                  {"epoch", state_.position.epoch},
                  {"step_in_epoch", state_.position.step_in_epoch},
                  {"global_batch", config_.batch_size},
                  {"steps_per_epoch", sampler_->steps_per_epoch()},
                  {"shuffle", config_.shuffle},
                  {"drop_last", config_.drop_last},
                  {"bucket_batches", config_.bucket_batches},
                  {"tokens_per_batch", sampler_->options().tokens_per_batch}};
  j["rng"] = {{"seed", config_.seed}, {"reseeded_each_step", true}};
  j["precision"] = precision_name(precision_);
  j["world_size_at_save"] = context_->world_size();  // information only
  j["ema_decay"] = config_.ema.decay;
  // Information for the registry manifest (export/): what built and ran this run.
  j["git_commit"] = build::git_commit();
  j["hardware"] = describe_hardware(context_->device().str(), context_->world_size());
  j["created_unix"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return j.dump(2);
}

void Trainer::restore_meta(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  try {
    state_.step = j.at("step").get<int64_t>();
    state_.position.epoch = j.at("epoch").get<int64_t>();
    state_.position.step_in_epoch = j.at("step_in_epoch").get<int64_t>();
    state_.skipped_steps = j.at("skipped_steps").get<int64_t>();
    state_.consecutive_skips = j.at("consecutive_skips").get<int64_t>();
    state_.last_validation_step = j.at("last_validation_step").get<int64_t>();
    state_.elapsed_seconds = j.at("elapsed_seconds").get<double>();
    state_.units_seen = j.at("units_seen").get<double>();
    if (j.contains("health")) {  // absent from checkpoints written before run health was recorded
      const auto& h = j.at("health");
      state_.stalls = h.at("stalls").get<int64_t>();
      state_.step_times.slowest_step = h.at("slowest_step").get<int64_t>();
      state_.step_times.slowest_step_ms = h.at("slowest_step_ms").get<double>();
      state_.step_times.data_wait_s = h.at("data_wait_s").get<double>();
      state_.step_times.step_s = h.at("step_s").get<double>();
    }
    const auto& es = j.at("early_stopping");
    EarlyStoppingState s;
    s.has_best = es.at("has_best").get<bool>();
    s.best = es.at("best").get<double>();
    s.best_step = es.at("best_step").get<int64_t>();
    s.bad_evaluations = es.at("bad_evaluations").get<int64_t>();
    if (es.at("monitor").get<std::string>() != config_.early_stopping.monitor ||
        es.at("mode").get<std::string>() != config_.early_stopping.mode) {
      spdlog::warn("the checkpoint tracked the best {} ({}); this job monitors {} ({}): the best is reset",
                   es.at("monitor").get<std::string>(), es.at("mode").get<std::string>(),
                   config_.early_stopping.monitor, config_.early_stopping.mode);
      s = EarlyStoppingState{};
    }
    state_.early_stopping = s;
    early_stopping_.restore(s);
    if (j.at("sampler").at("global_batch").get<int64_t>() != config_.batch_size) {
      spdlog::warn("the checkpoint was trained with train.batch_size {}, this job uses {}; the data position "
                   "(epoch {}, step {}) is kept as steps",
                   j.at("sampler").at("global_batch").get<int64_t>(), config_.batch_size, state_.position.epoch,
                   state_.position.step_in_epoch);
    }
  } catch (const nlohmann::json::exception& e) {
    throw DataError(std::string("checkpoint meta.json is missing a field: ") + e.what());
  }
}

void Trainer::open_epoch() {
  const auto steps = sampler_->epoch_steps(state_.position.epoch);
  std::vector<std::vector<int64_t>> requests;
  requests.reserve(static_cast<size_t>((sampler_->steps_per_epoch() - state_.position.step_in_epoch) *
                                       config_.grad_accumulation));
  for (int64_t j = state_.position.step_in_epoch; j < sampler_->steps_per_epoch(); ++j) {
    for (auto& micro : sampler_->rank_share(steps[static_cast<size_t>(j)])) requests.push_back(std::move(micro));
  }
  // Before the loader thread starts, so that every batch of the epoch sees it.
  train_data_->set_epoch(state_.position.epoch);
  loader_ = std::make_unique<DataLoader>(train_data_, std::move(requests), config_.prefetch);
}

void Trainer::reseed_for_step() {
  const uint64_t seed = mix_seed(static_cast<uint64_t>(config_.seed), static_cast<uint64_t>(state_.step + 1),
                                 static_cast<uint64_t>(context_->rank()));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  if (context_->device().is_cuda()) {
    auto gen = at::globalContext().defaultGenerator(context_->device());
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
}

void Trainer::train_step() {
  const auto step_start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration data_wait{};
  if (stall_watchdog_) stall_watchdog_->step_started(state_.step + 1);
  advance_phase(StepPhase::kBetweenSteps, StepPhase::kData);
  profile::StepProfiler* profiler = profile::active();
  if (profiler) profiler->begin_step();
  std::optional<profile::PhaseScope> phase(std::in_place, profile::Phase::kData);
  if (!loader_) open_epoch();
  const c10::Device device = context_->device();
  std::vector<data::Batch> micro;
  micro.reserve(static_cast<size_t>(config_.grad_accumulation));
  int64_t local_units = 0, local_throughput = 0;
  for (int64_t m = 0; m < config_.grad_accumulation; ++m) {
    const auto wait_start = std::chrono::steady_clock::now();
    auto batch = loader_->next();
    data_wait += std::chrono::steady_clock::now() - wait_start;
    if (!batch) throw std::logic_error("data loader ended inside an optimizer step");
    local_units += batch->units;
    local_throughput += batch->throughput_units;
    micro.push_back(batch->to(device));
  }
  phase.emplace(profile::Phase::kSync);

  advance_phase(StepPhase::kData, StepPhase::kCompute);
  // The step's global unit count, and whether any rank was asked to stop.
  std::vector<double> shared{static_cast<double>(local_units), static_cast<double>(local_throughput),
                             StopSignals::requested() ? 1.0 : 0.0};
  context_->all_reduce_sum(shared);
  if (shared[2] > 0) {
    if (stall_watchdog_) stall_watchdog_->step_finished();  // checkpoint writing is not timed
    advance_phase(StepPhase::kCompute, StepPhase::kBetweenSteps);
    const std::string path = save_checkpoint();
    const int sig = StopSignals::signal_number();
    const std::string stop = std::string(sig ? strsignal(sig) : "stop request") + " after step " + std::to_string(state_.step);
    context_->stop_on_request(stop);  // every rank agreed on it above: no failure for the peers to log
    throw Interrupted(stop + "; checkpoint saved to " + path + "; run the same command again to resume");
  }
  const auto global_units = static_cast<int64_t>(shared[0]);
  if (global_units <= 0) {
    spdlog::warn("step {}: the batch has no loss units; its gradients are zero", state_.step + 1);
  }
  const double divisor = global_units > 0 ? static_cast<double>(global_units) : 1.0;
  phase.reset();

  reseed_for_step();
  const double lr = schedule_->lr(state_.step);
  optimizer_->set_lr(lr);
  optimizer_->zero_grad();
  for (auto& [name, value] : step_sums_) value.zero_();
  at::Tensor loss_total;
  std::vector<at::Tensor> micro_losses;  // for naming the items of a non-finite loss
  for (size_t m = 0; m < micro.size(); ++m) {
    synchronizer_->set_enabled(m + 1 == micro.size());
    phase.emplace(profile::Phase::kForward);
    ForwardOutput out = with_autocast(precision_, device, [&] { return task_.forward(micro[m], /*training=*/true); });
    if (!out.loss_sum.defined() || out.loss_sum.numel() != 1) {
      throw std::logic_error("the task's forward() returned a loss_sum of shape " +
                             (out.loss_sum.defined() ? c10::str(out.loss_sum.sizes()) : std::string("undefined")) +
                             "; expected a scalar");
    }
    require_full_precision_sum("loss_sum", out.loss_sum.scalar_type());
    for (const auto& [name, value] : out.sums) require_full_precision_sum(name, value.scalar_type());
    const at::Tensor loss = out.loss_sum.to(at::kFloat).reshape({});
    phase.emplace(profile::Phase::kBackward);
    (loss / divisor).backward();
    phase.reset();
    const at::Tensor detached = loss.detach();
    micro_losses.push_back(detached);
    loss_total = loss_total.defined() ? loss_total + detached : detached;
    add_sum(step_sums_, "loss_sum", detached);
    for (const auto& [name, value] : out.sums) add_sum(step_sums_, name, value.detach().to(at::kDouble));
  }
  phase.emplace(profile::Phase::kSync);
  synchronizer_->finish();
  phase.emplace(profile::Phase::kOptimizer);
  const at::Tensor grad_norm = clip_gradients(parameters_, config_.max_grad_norm);

  // One small device-to-host copy per step: the update must not run on
  // non-finite values.
  const at::Tensor probe = torch::stack({loss_total, grad_norm.to(at::kFloat)}).to(at::kCPU);
  const double loss_value = probe[0].item<double>(), norm_value = probe[1].item<double>();
  bool bad = !std::isfinite(loss_value) || !std::isfinite(norm_value);
  if (context_->distributed()) {
    std::vector<double> flag{bad ? 1.0 : 0.0};
    context_->all_reduce_sum(flag);
    bad = flag[0] > 0;
  }
  advance_phase(StepPhase::kCompute, StepPhase::kUpdate);
  StepReport report;
  report.step = state_.step + 1;
  report.lr = lr;
  report.grad_norm = grad_norm;
  report.sums = &step_sums_;
  report.local_units = local_units;
  report.global_units = global_units;
  report.local_throughput_units = local_throughput;
  if (bad) {
    const std::string what = nonfinite_report(loss_value, norm_value, global_units, micro, micro_losses);
    if (config_.nonfinite == "stop") throw CheckFailed(what + "; stopping (train.nonfinite is 'stop')");
    ++state_.skipped_steps;
    ++state_.consecutive_skips;
    if (state_.consecutive_skips > config_.max_consecutive_skips) {
      throw CheckFailed(what + "; " + std::to_string(state_.consecutive_skips) +
                        " consecutive steps were skipped, more than train.max_consecutive_skips (" +
                        std::to_string(config_.max_consecutive_skips) + ")");
    }
    spdlog::warn("{}; skipping the update (train.nonfinite is 'skip_step'; {} skipped so far)", what,
                 state_.skipped_steps);
    optimizer_->zero_grad();
    report.skipped = true;
  } else {
    optimizer_->step();
    if (ema_) ema_->update();
    state_.consecutive_skips = 0;
  }
  ++state_.step;
  ++state_.position.step_in_epoch;
  state_.units_seen += shared[1];
  state_.step_times.record(state_.step, std::chrono::duration<double>(data_wait).count(),
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count());
  if (stall_watchdog_) stall_watchdog_->step_finished();
  advance_phase(StepPhase::kUpdate, StepPhase::kBetweenSteps);
  phase.reset();
  if (profiler) profiler->end_step();

  for (auto& o : observers_) o->after_step(*this, report);

  if (state_.position.step_in_epoch >= sampler_->steps_per_epoch()) {
    const int64_t finished = state_.position.epoch;
    ++state_.position.epoch;
    state_.position.step_in_epoch = 0;
    loader_.reset();
    for (auto& o : observers_) o->after_epoch(*this, finished);
  }
}

std::string Trainer::nonfinite_report(double loss, double grad_norm, int64_t global_units,
                                      const std::vector<data::Batch>& micro, const std::vector<at::Tensor>& micro_losses) {
  std::vector<std::string> names;
  size_t more = 0;
  for (const auto& p : parameters_) {
    const at::Tensor& g = p.tensor.grad();
    if (!g.defined() || torch::isfinite(g).all().item<bool>()) continue;
    if (names.size() < 10) names.push_back(p.name);
    else ++more;
  }
  std::string text = "non-finite values at step " + std::to_string(state_.step + 1) + " (epoch " +
                     std::to_string(state_.position.epoch) + "): loss_sum " + format_value(loss) + " (this rank; " +
                     std::to_string(global_units) + " loss units in the step), grad_norm " + format_value(grad_norm);
  if (!names.empty()) {
    text += "; parameters with non-finite gradients: " + strings::join(names, ", ");
    if (more) text += " and " + std::to_string(more) + " more";
  } else {
    text += "; every gradient is finite";
  }
  // The items to look at: those of micro-batches whose loss is not finite;
  // when every loss is, all of the step's items on this rank.
  std::vector<int64_t> suspects;
  for (size_t m = 0; m < micro.size() && m < micro_losses.size(); ++m) {
    if (std::isfinite(micro_losses[m].item<double>())) continue;
    suspects.insert(suspects.end(), micro[m].indices.begin(), micro[m].indices.end());
  }
  const bool losses_finite = suspects.empty();
  if (losses_finite) {
    for (const auto& batch : micro) suspects.insert(suspects.end(), batch.indices.begin(), batch.indices.end());
  }
  constexpr size_t kMaxItems = 8;
  std::vector<std::string> ids;
  for (size_t i = 0; i < suspects.size() && i < kMaxItems; ++i) {
    ids.push_back(train_data_->item_id(static_cast<size_t>(suspects[i])));
  }
  text += losses_finite ? "; the step's items on this rank: " : "; items of the batch with the non-finite loss: ";
  text += strings::join(ids, ", ");
  if (suspects.size() > kMaxItems) text += " and " + std::to_string(suspects.size() - kMaxItems) + " more";
  return text;
}

EvaluationResult Trainer::evaluate(Split split) {
  const EvaluationSettings settings = evaluation_settings(config_, context_->world_size(), precision_);
  std::optional<Ema::Scope> averaged;
  if (ema_) averaged.emplace(*ema_);
  return evaluate_split(task_, split, *context_, settings);
}

void Trainer::run_validation() {
  if (!task_.dataset(Split::kValidation)) return;
  publish_evaluation(evaluate(Split::kValidation));
}

void Trainer::publish_evaluation(EvaluationResult result) {
  EvaluationReport report;
  report.step = state_.step;
  state_.last_validation_step = state_.step;
  if (result.labelled) {
    const std::string& monitor = config_.early_stopping.monitor;
    const auto it = result.metrics.find(monitor);
    if (it == result.metrics.end()) {
      std::vector<std::string> names;
      for (const auto& [name, v] : result.metrics) names.push_back(name);
      throw UsageError("train.early_stopping.monitor: the validation metrics have no '" + monitor +
                       "'; they are: " + strings::join(names, ", "));
    }
    report.has_monitor = true;
    const EarlyStopping::Decision decision = early_stopping_.update(state_.step, it->second);
    state_.early_stopping = early_stopping_.state();
    report.improved = decision.improved;
    if (decision.stop) request_stop("early stopping: " + early_stopping_.reason());
  }
  report.result = std::move(result);
  last_validation_ = report.result;
  for (auto& o : observers_) o->after_evaluation(*this, report);
}

CheckpointContents Trainer::checkpoint_contents() const {
  CheckpointContents c;
  c.meta_json = meta_json();
  c.config_yaml = options_.config_yaml;
  c.model = model_tensors(task_.model());
  c.optimizer = optimizer_->state();
  if (ema_) c.ema = ema_->state();
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    c.rng.emplace_back("cpu", gen.get_state());
  }
  if (context_->device().is_cuda()) {
    auto gen = at::globalContext().defaultGenerator(context_->device());
    std::lock_guard<std::mutex> lock(gen.mutex());
    c.rng.emplace_back("cuda:" + std::to_string(context_->device().index()), gen.get_state());
  }
  c.artifacts = task_.artifacts();
  return c;
}

std::string Trainer::save_checkpoint() {
  if (last_saved_step_ == state_.step && !last_checkpoint_.empty()) return last_checkpoint_;
  const std::string path = store_->step_path(state_.step);
  if (context_->is_main()) {
    const CheckpointContents c = checkpoint_contents();
    const auto start = std::chrono::steady_clock::now();
    store_->save(state_.step, c);
    store_->write_artifacts(c.artifacts);
    spdlog::info("saved checkpoint {} ({:.2f} s)", path,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  context_->barrier();
  last_saved_step_ = state_.step;
  last_checkpoint_ = path;
  return path;
}

void Trainer::mark_best() {
  save_checkpoint();
  if (context_->is_main()) store_->mark_best(state_.step);
  context_->barrier();
  best_checkpoint_ = store_->best_path();
}

RunHealth Trainer::health() const {
  RunHealth h;
  h.skipped_steps = state_.skipped_steps;
  h.stalls = state_.stalls;
  h.times = state_.step_times;
  return h;
}

uint64_t Trainer::expected_checkpoint_bytes() const {
  // The byte layout of train/Checkpoint.h. AdamW's state exists only after a
  // first step, so it is sized from the parameters.
  const auto tensor_entry = [](const std::string& name, int64_t rank, uint64_t bytes) -> uint64_t {
    return 4 + name.size() + 1 + 4 + 8 * static_cast<uint64_t>(rank) + 8 + bytes;
  };
  const auto table = [&](const NamedTensorList& tensors) {
    uint64_t n = 4;
    for (const auto& [name, t] : tensors) n += tensor_entry(name, t.dim(), t.nbytes());
    return n;
  };
  uint64_t bytes = 12 + 20;  // header and trailer
  const auto section = [&](const std::string& name, uint64_t payload) { bytes += 4 + name.size() + 8 + payload; };
  const CheckpointContents c = checkpoint_contents();
  section(checkpoint_section::kMeta, c.meta_json.size() + 256);  // numbers in meta.json grow a little
  section(checkpoint_section::kConfig, c.config_yaml.size());
  section(checkpoint_section::kModel, table(c.model));
  uint64_t moments = 4;
  for (const auto& p : parameters_) {
    moments += tensor_entry(p.name + ".exp_avg", p.tensor.dim(), p.tensor.nbytes());
    moments += tensor_entry(p.name + ".exp_avg_sq", p.tensor.dim(), p.tensor.nbytes());
    if (config_.optimizer.amsgrad) moments += tensor_entry(p.name + ".max_exp_avg_sq", p.tensor.dim(), p.tensor.nbytes());
    moments += tensor_entry(p.name + ".step", 0, sizeof(int64_t));
  }
  section(checkpoint_section::kOptimizer, moments);
  if (!c.ema.empty()) section(checkpoint_section::kEma, table(c.ema));
  section(checkpoint_section::kRng, table(c.rng));
  for (const auto& [name, text] : c.artifacts) section(checkpoint_section::kArtifactPrefix + name, text.size());
  return bytes;
}

void Trainer::check_disk_space() {
  std::string refusal;
  if (context_->is_main()) {
    try {
      require_checkpoint_space(store_->dir(), expected_checkpoint_bytes(), config_.keep_last_k);
    } catch (const DataError& e) {
      refusal = e.what();
    }
  }
  // Every rank refuses with rank 0's numbers rather than waiting for it in a collective.
  if (context_->distributed()) refusal = context_->broadcast_string(refusal);
  if (!refusal.empty()) throw DataError(refusal);
}

void Trainer::advance_phase(StepPhase from, StepPhase to) {
  if (step_phase_.compare_exchange_strong(from, to)) return;
  // The watchdog declared this step stalled and is saving the state this
  // thread would change next; it ends the process when done.
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

void Trainer::on_stall(int64_t step, double seconds) {
  StepPhase phase = step_phase_.load();
  const char* where = phase == StepPhase::kData      ? "waiting for its data"
                      : phase == StepPhase::kCompute ? "in its forward, backward or gradient exchange"
                      : phase == StepPhase::kUpdate  ? "in its optimizer update"
                                                     : "between steps";
  spdlog::error("step {} stalled: not finished after {:.1f} s, {} (train.stall_timeout_s is {}); ending the run "
                "with exit code {}",
                step, seconds, where, config_.stall_timeout_s, kExitStalled);
  // Weights and state are those of the last finished step until the update
  // begins; claiming the phase keeps the training thread out of it. (Buffers
  // that a forward changes in place, such as batch-norm statistics, would be
  // part-way into the stalled step; kmidi's models have none.)
  bool can_save = false;
  while (!context_->distributed() && (phase == StepPhase::kData || phase == StepPhase::kCompute)) {
    if (step_phase_.compare_exchange_weak(phase, StepPhase::kStalled)) {
      can_save = true;
      break;
    }
  }
  // The last acts run on a thread of their own, bounded: a stall in the file
  // system or the store must not keep the process from exiting.
  auto last_acts = std::make_shared<std::packaged_task<std::string()>>([this, can_save, step] {
    if (context_->distributed()) context_->abort("step " + std::to_string(step) + " stalled (train.stall_timeout_s)");
    if (!can_save) return std::string();
    ++state_.stalls;
    const CheckpointContents c = checkpoint_contents();
    store_->save(state_.step, c);
    store_->write_artifacts(c.artifacts);
    return store_->step_path(state_.step);
  });
  std::future<std::string> done = last_acts->get_future();
  std::thread([last_acts] { (*last_acts)(); }).detach();
  constexpr auto kLastActsLimit = std::chrono::seconds(120);
  std::string outcome;
  if (done.wait_for(kLastActsLimit) != std::future_status::ready) {
    outcome = "no checkpoint: writing it took longer than " + std::to_string(kLastActsLimit.count()) + " s";
  } else {
    try {
      const std::string path = done.get();
      outcome = !path.empty() ? "saved " + path + " (step " + std::to_string(step - 1) +
                                    ", the last finished step); run the same command again to resume from it"
                : context_->distributed() ? "no checkpoint: the other ranks cannot join one now"
                                          : "no checkpoint: the step was already changing the weights";
    } catch (const std::exception& e) {
      outcome = std::string("no checkpoint: ") + e.what();
    }
  }
  if (can_save && outcome.rfind("saved", 0) != 0) {  // the training thread is parked: its fields can be read
    outcome += last_checkpoint_.empty() ? "; no earlier checkpoint" : "; the newest earlier one is " + last_checkpoint_;
  }
  spdlog::error("{}", outcome);
  spdlog::default_logger()->flush();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(kExitStalled);
}

void Trainer::request_stop(const std::string& reason) {
  if (stop_requested_) return;
  stop_requested_ = true;
  stop_reason_ = reason;
}

}  // namespace kmidi::train

#pragma once
// The training loop shared by every model family.
//
// One optimizer step:
//   1. take this rank's grad_accumulation micro-batches of the step (Sampler.h);
//   2. all-reduce [units, throughput units, stop flag]: every rank learns the
//      step's global number of loss units (and whether any rank was asked to stop);
//   3. for each micro-batch: forward under autocast, backward of
//      loss_sum / global_units; gradient sync only on the last micro-batch,
//      and the synchroniser SUMS: the result equals one process on the whole batch;
//   4. clip the global gradient norm, check loss and norm for non-finite values,
//      AdamW step with the scheduled lr, EMA update;
//   5. observers: metrics, evaluation, early stopping, checkpoints.
//
// Dropout and other randomness in step s on rank r come from a generator
// reseeded with (seed, s, r): a resumed run draws the same numbers as an
// uninterrupted one, whatever the number of ranks.

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "train/Distributed.h"
#include "train/EarlyStopping.h"
#include "train/Evaluator.h"
#include "train/Health.h"
#include "train/Optimizer.h"
#include "train/Precision.h"
#include "train/Sampler.h"
#include "train/Schedule.h"
#include "train/Task.h"
#include "train/TrainConfig.h"

namespace kmidi::train {

class Ema;
class CheckpointStore;
struct CheckpointContents;
class DataLoader;
class Trainer;

/// Where training stands; saved in every checkpoint (meta.json).
struct TrainState {
  int64_t step = 0;              ///< optimizer steps done (skipped ones included)
  SamplerPosition position;      ///< the data of step + 1
  int64_t skipped_steps = 0;     ///< non-finite steps skipped so far
  int64_t consecutive_skips = 0;
  EarlyStoppingState early_stopping;
  int64_t last_validation_step = -1;
  double elapsed_seconds = 0.0;  ///< training time over every session of the run
  double units_seen = 0.0;       ///< global throughput units processed
  int64_t stalls = 0;            ///< steps the stall watchdog gave up on
  StepTimes step_times;          ///< this rank's step timings over the run
};

/// One finished optimizer step, as observers see it.
struct StepReport {
  int64_t step = 0;              ///< the step just done (1 for the first)
  double lr = 0.0;
  bool skipped = false;          ///< non-finite values: no update was applied
  at::Tensor grad_norm;          ///< [] global norm before clipping (device tensor)
  const MetricSums* sums = nullptr;  ///< this rank's sums of the step (loss_sum and the task's)
  int64_t local_units = 0;       ///< this rank's loss units
  int64_t global_units = 0;      ///< over all ranks
  int64_t local_throughput_units = 0;
};

/// What an evaluation found, with the early-stopping verdict.
struct EvaluationReport {
  int64_t step = 0;
  EvaluationResult result;
  bool has_monitor = false;      ///< the monitored metric was in the result
  bool improved = false;         ///< a new best of the monitored metric
};

/// Hooks into the loop (Marian's TrainingObserver idea): logging,
/// evaluation, checkpoints... Every rank runs every observer; an observer
/// that writes files checks context().is_main(). Collectives inside hooks
/// must happen on every rank at the same steps.
class TrainingObserver {
 public:
  virtual ~TrainingObserver();
  virtual void on_train_begin(Trainer& trainer) {}
  virtual void after_step(Trainer& trainer, const StepReport& report) {}
  virtual void after_evaluation(Trainer& trainer, const EvaluationReport& report) {}
  virtual void after_epoch(Trainer& trainer, int64_t epoch) {}
  /// `reason` says why training ended (max steps, early stopping, a request).
  virtual void on_train_end(Trainer& trainer, const std::string& reason) {}
};

struct TrainerOptions {
  std::string run_dir;            ///< checkpoints/, metrics.jsonl, tensorboard/ go here
  std::string resume = "auto";    ///< auto | none | checkpoint path
  bool tensorboard = true;
  std::string task_name;          ///< recorded in checkpoints; a resume checks it
  std::string config_yaml;        ///< the resolved job config, stored in checkpoints
  /// Observers for metrics, evaluation and checkpoints; tests turn them off
  /// to drive a trainer alone.
  bool default_observers = true;
};

struct TrainResult {
  int64_t step = 0;
  std::string reason;                     ///< why training ended
  std::optional<EvaluationResult> last_validation;
  EarlyStoppingState best;
  std::string best_checkpoint;            ///< empty when none was marked
  std::string last_checkpoint;
  RunHealth health;                       ///< over the whole run (every session)
};

class Trainer {
 public:
  /// Builds optimizer, schedule, sampler and EMA for `task`, whose model
  /// must already be on context->device(). Throws UsageError for settings
  /// that do not fit the data (batch vs world size, warmup vs run length).
  Trainer(Task& task, const TrainConfig& config, TrainerOptions options,
          std::shared_ptr<DistributedContext> context);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void add_observer(std::shared_ptr<TrainingObserver> observer);

  /// Resumes if asked, trains to the end and returns why it stopped. On
  /// SIGINT/SIGTERM: finishes the step, saves a checkpoint and throws
  /// kmidi::Interrupted. Non-finite values with nonfinite=stop throw CheckFailed.
  TrainResult fit();

  // For observers and tests.
  const TrainState& state() const { return state_; }
  Task& task() { return task_; }
  const TrainConfig& config() const { return config_; }
  const TrainerOptions& options() const { return options_; }
  DistributedContext& context() { return *context_; }
  int64_t max_steps() const { return max_steps_; }
  int64_t steps_per_epoch() const;
  const LrSchedule& schedule() const { return *schedule_; }
  AdamW& optimizer() { return *optimizer_; }
  Ema* ema() { return ema_.get(); }
  Precision precision() const { return precision_; }
  CheckpointStore& checkpoints() { return *store_; }
  /// The step at which training resumed (0 for a fresh run).
  int64_t resumed_from() const { return resumed_from_; }
  /// Skipped steps, stalls and step timings over the run so far.
  RunHealth health() const;
  /// About the size of one checkpoint of this run: what the free-space check
  /// at start multiplies by train.keep_last_k + 2.
  uint64_t expected_checkpoint_bytes() const;

  /// Evaluates `split` with the EMA weights when EMA is on (collective).
  EvaluationResult evaluate(Split split);
  /// Evaluates the validation split and tells the observers (collective).
  /// Does nothing when the task has no validation data.
  void run_validation();
  /// Saves a checkpoint of the current step unless one was saved at it; the
  /// main rank writes, every rank waits for it. Returns its path.
  std::string save_checkpoint();
  /// Whether a checkpoint of the current step exists from this session.
  bool saved_at_current_step() const { return last_saved_step_ == state_.step; }
  /// Ends training after the current step (e.g. early stopping).
  void request_stop(const std::string& reason);
  /// Makes best.ckpt the checkpoint of the current step (saving it first).
  void mark_best();
  const std::string& best_checkpoint() const { return best_checkpoint_; }

 private:
  void resume();
  void broadcast_initial_state();
  void open_epoch();
  void train_step();
  void reseed_for_step();
  std::string nonfinite_report(double loss, double grad_norm, int64_t global_units,
                               const std::vector<data::Batch>& micro, const std::vector<at::Tensor>& micro_losses);
  /// Refuses (DataError on every rank) when the main rank's file system cannot hold the checkpoints.
  void check_disk_space();
  /// The stall watchdog's verdict: says so, saves what it safely can, exits with kExitStalled.
  void on_stall(int64_t step, double seconds);
  CheckpointContents checkpoint_contents() const;
  void publish_evaluation(EvaluationResult result);
  std::string meta_json() const;
  void restore_meta(const std::string& json);

  Task& task_;
  TrainConfig config_;
  TrainerOptions options_;
  std::shared_ptr<DistributedContext> context_;
  Precision precision_;
  std::vector<NamedParameter> parameters_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<TrainSampler> sampler_;
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<GradientSynchronizer> synchronizer_;
  std::shared_ptr<const data::Dataset> train_data_;
  std::unique_ptr<DataLoader> loader_;
  std::vector<std::shared_ptr<TrainingObserver>> observers_;
  EarlyStopping early_stopping_;
  TrainState state_;
  int64_t max_steps_ = 0;
  int64_t resumed_from_ = 0;
  int64_t last_saved_step_ = -1;
  std::string last_checkpoint_, best_checkpoint_;
  std::optional<EvaluationResult> last_validation_;
  bool stop_requested_ = false;
  std::string stop_reason_;
  MetricSums step_sums_;  // reused every step
  /// Where the current step is, for the stall watchdog's thread. Weights,
  /// optimizer and state change only in kUpdate; the watchdog saves them only
  /// after moving kData or kCompute to kStalled, which the loop then cannot leave.
  enum class StepPhase : int { kBetweenSteps, kData, kCompute, kUpdate, kStalled };
  void advance_phase(StepPhase from, StepPhase to);
  std::atomic<StepPhase> step_phase_{StepPhase::kBetweenSteps};
  StallWatchdog* stall_watchdog_ = nullptr;  // fit()'s, while it runs
};

}  // namespace kmidi::train

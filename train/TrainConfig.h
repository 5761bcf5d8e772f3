#pragma once
// The sections every training job shares, whatever the model family:
// `run` (where and how the process runs) and `train` (optimizer, schedule,
// batching, evaluation, checkpoints). A task adds its own top-level sections
// (data, model, loss...) beside them; see train/Job.h.

#include <cstdint>
#include <string>
#include <vector>

#include "core/Config.h"

namespace kmidi::train {

/// AdamW (decoupled weight decay, Loshchilov & Hutter), every field honoured.
struct OptimizerConfig : config::Section {
  std::string name = "adamw";
  double lr = 3e-4;                          ///< peak learning rate (the schedule scales it)
  std::vector<double> betas{0.9, 0.999};     ///< first and second moment decay
  double eps = 1e-8;                         ///< added to the denominator
  double weight_decay = 0.01;                ///< decoupled: p -= lr * weight_decay * p
  bool amsgrad = false;                      ///< use the running maximum of the second moment
  /// Also decay biases and normalisation weights (every tensor of rank < 2).
  /// Off by default: decaying them pulls scales and offsets to zero for no benefit.
  bool decay_biases_and_norms = false;
  void visit(config::Visitor& v) override;
};

/// Learning rate over the run: linear warmup, then constant, linear or cosine
/// decay to min_lr_ratio * lr at the last step.
struct ScheduleConfig : config::Section {
  std::string name = "cosine";  ///< constant | linear | cosine
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;    ///< final lr / peak lr (linear, cosine)
  void visit(config::Visitor& v) override;
};

/// Stops when the monitored validation metric stalls. The same monitor picks
/// the best checkpoint even when patience is 0 (never stop).
struct EarlyStoppingConfig : config::Section {
  std::string monitor = "loss";  ///< a metric of the validation split
  std::string mode = "min";      ///< min | max: which direction is better
  int64_t patience = 0;          ///< evaluations without improvement before stopping; 0: never stop
  double min_delta = 0.0;        ///< an improvement must beat the best by more than this
  int64_t min_steps = 0;         ///< never stop before this many steps
  void visit(config::Visitor& v) override;
};

/// Exponential moving average of the weights; evaluation and best-checkpoint
/// selection use the averaged weights when enabled.
struct EmaConfig : config::Section {
  double decay = 0.0;  ///< ema = decay * ema + (1 - decay) * weights after each step; 0: off
  void visit(config::Visitor& v) override;
};

struct TrainConfig : config::Section {
  int64_t seed = 1234;
  /// Weights to start from (e.g. a pre-trained checkpoint to fine-tune):
  /// weights only, with a fresh optimizer, schedule, step 0 and data
  /// position. The checkpoint must be of the same task, tokenizer and
  /// architecture (train/InitFrom.h). Ignored when the run resumes. Empty: off.
  config::Path init_from;
  int64_t max_steps = 0;          ///< optimizer steps; 0: use epochs
  int64_t epochs = 0;             ///< passes over the training data; 0: use max_steps
  /// Items per optimizer step over all ranks and accumulation micro-steps.
  /// Each micro-batch holds batch_size / (world_size * grad_accumulation) items,
  /// so the result does not depend on how many processes run the job.
  int64_t batch_size = 32;
  int64_t grad_accumulation = 1;  ///< micro-steps per optimizer step
  /// Items per evaluation batch and rank; 0: the micro-batch size,
  /// batch_size / (world_size x grad_accumulation). One rule for validation
  /// and `kmidi evaluate` (train/Evaluator.h, evaluation_settings).
  int64_t eval_batch_size = 0;
  bool shuffle = true;            ///< reshuffle the training items every epoch
  /// Drop the last incomplete batch of an epoch; otherwise it is completed by
  /// wrapping around to the start of the epoch's order.
  bool drop_last = false;
  /// Group items of similar cost (Dataset::item_cost, e.g. length) into
  /// batches, within windows of this many batches; 0: off.
  int64_t bucket_batches = 0;
  bool prefetch = true;           ///< build the next batch on a background thread
  /// Log where each step's time goes (phases and top operators, train/Profile.h)
  /// at the end of training, and write it to <run>/profile.json.
  bool profile = false;
  double max_grad_norm = 1.0;     ///< clip the global gradient norm; 0: no clipping (still reported)
  /// auto | fp32 | bf16. auto: bf16 autocast on CUDA and on CPUs with native
  /// bf16 (avx512_bf16, amx_bf16), fp32 elsewhere. Weights, gradients and
  /// optimizer state stay fp32 either way, so checkpoints do not depend on it.
  std::string precision = "auto";
  int64_t log_every = 10;         ///< steps between metric rows
  int64_t eval_every = 0;         ///< steps between validations; 0: at the end only
  /// Validate on the split's first eval_max_batches x E items only, E being
  /// one process's evaluation batch (eval_batch_size, else batch_size /
  /// grad_accumulation): the same items whatever the number of ranks, shared
  /// among them. 0: the whole split. `kmidi evaluate` always reads it whole.
  int64_t eval_max_batches = 0;
  int64_t checkpoint_every = 0;   ///< steps between checkpoints; 0: at the end (and on interrupt) only
  int64_t keep_last_k = 3;        ///< newest step checkpoints kept, besides best.ckpt
  std::string nonfinite = "stop"; ///< stop | skip_step when the loss or gradients are not finite
  int64_t max_consecutive_skips = 10;  ///< with skip_step: stop after this many skipped steps in a row
  /// Seconds one training step (data wait, forward, backward, update; not
  /// evaluation or checkpoint writing) may take before the watchdog ends the
  /// run with exit code 6, after saving the last finished step where it
  /// safely can (one process, stuck outside the update). Keep it above
  /// distributed.timeout_s so that a lost peer is reported as such. 0: off.
  double stall_timeout_s = 1800;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  EarlyStoppingConfig early_stopping;
  EmaConfig ema;
  void visit(config::Visitor& v) override;
};

struct RunConfig : config::Section {
  std::string name = "run";           ///< the run folder is output_dir/name: re-running resumes it
  config::Path output_dir = "runs";
  std::string device = "auto";        ///< auto | cpu | cuda
  int64_t threads = 0;                ///< intra-op threads; 0: OMP_NUM_THREADS if set, else every core available
  std::string log_level;              ///< empty: the command line's --log-level
  std::string resume = "auto";        ///< auto | none | PATH of a checkpoint
  bool tensorboard = true;            ///< write TensorBoard event files
  void visit(config::Visitor& v) override;
};

}  // namespace kmidi::train

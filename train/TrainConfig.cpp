#include "train/TrainConfig.h"

namespace kmidi::train {

void OptimizerConfig::visit(config::Visitor& v) {
  v.field("name", name, config::Spec("optimizer").one_of({"adamw"}));
  v.field("lr", lr, config::Spec("peak learning rate").positive());
  v.field("betas", betas, config::Spec("AdamW beta1, beta2 (moment decay rates)").size(2).min(0.0).less_than(1.0));
  v.field("eps", eps, config::Spec("added to AdamW's denominator").positive());
  v.field("weight_decay", weight_decay, config::Spec("decoupled weight decay coefficient").non_negative());
  v.field("amsgrad", amsgrad, config::Spec("use the running maximum of the second moment (AMSGrad)"));
  v.field("decay_biases_and_norms", decay_biases_and_norms,
          config::Spec("also apply weight decay to biases and normalisation weights (tensors of rank < 2)"));
}

void ScheduleConfig::visit(config::Visitor& v) {
  v.field("name", name, config::Spec("learning-rate schedule after warmup").one_of({"constant", "linear", "cosine"}));
  v.field("warmup_steps", warmup_steps,
          config::Spec("steps of linear warmup from lr/warmup_steps to lr").non_negative());
  v.field("min_lr_ratio", min_lr_ratio,
          config::Spec("final learning rate as a fraction of lr (linear and cosine)").unit_interval());
}

void EarlyStoppingConfig::visit(config::Visitor& v) {
  v.field("monitor", monitor,
          config::Spec("validation metric that decides the best checkpoint and early stopping"));
  v.field("mode", mode, config::Spec("whether lower or higher values of the monitor are better").one_of({"min", "max"}));
  v.field("patience", patience,
          config::Spec("evaluations without improvement before stopping; 0 never stops").non_negative());
  v.field("min_delta", min_delta, config::Spec("smallest change that counts as an improvement").non_negative());
  v.field("min_steps", min_steps, config::Spec("never stop before this many steps").non_negative());
}

void EmaConfig::visit(config::Visitor& v) {
  v.field("decay", decay,
          config::Spec("weight EMA decay per step (e.g. 0.999); 0 turns the average off").min(0.0).less_than(1.0));
}

void TrainConfig::visit(config::Visitor& v) {
  v.field("seed", seed, config::Spec("seed of initialisation, shuffling and dropout").non_negative());
  v.field("init_from", init_from,
          config::Spec("checkpoint whose weights a fresh run starts from (same task, tokenizer and architecture; "
                       "fresh optimizer, schedule and data position); ignored when the run resumes"));
  v.field("max_steps", max_steps, config::Spec("optimizer steps to run; 0 uses epochs").non_negative());
  v.field("epochs", epochs, config::Spec("passes over the training data; 0 uses max_steps").non_negative());
  v.field("batch_size", batch_size,
          config::Spec("items per optimizer step over all ranks and accumulation micro-steps").positive());
  v.field("grad_accumulation", grad_accumulation, config::Spec("micro-steps per optimizer step").min(1));
  v.field("eval_batch_size", eval_batch_size,
          config::Spec("items per evaluation batch and rank; 0 uses the training micro-batch size").non_negative());
  v.field("shuffle", shuffle, config::Spec("reshuffle the training items every epoch"));
  v.field("drop_last", drop_last,
          config::Spec("drop an epoch's incomplete last batch instead of completing it from the epoch's start"));
  v.field("bucket_batches", bucket_batches,
          config::Spec("batch items of similar cost together within windows of this many batches; 0 off").non_negative());
  v.field("prefetch", prefetch, config::Spec("build the next batch on a background thread"));
  v.field("profile", profile,
          config::Spec("log a per-step breakdown (data, forward, backward, sync, optimizer, top operators) at the "
                       "end and write <run>/profile.json"));
  v.field("max_grad_norm", max_grad_norm,
          config::Spec("clip the global gradient L2 norm to this; 0 disables clipping").non_negative());
  v.field("precision", precision,
          config::Spec("auto: bf16 autocast on CUDA and on CPUs with avx512_bf16 or amx_bf16, fp32 elsewhere; "
                       "fp32 and bf16 force it (weights and optimizer state stay fp32)")
              .one_of({"auto", "fp32", "bf16"}));
  v.field("log_every", log_every, config::Spec("steps between training metric rows").positive());
  v.field("eval_every", eval_every, config::Spec("steps between validations; 0 validates at the end only").non_negative());
  v.field("eval_max_batches", eval_max_batches,
          config::Spec("validate on the first N one-process evaluation batches of items, whatever the number of "
                       "ranks; 0 evaluates the whole split").non_negative());
  v.field("checkpoint_every", checkpoint_every,
          config::Spec("steps between checkpoints; 0 saves at the end and on interrupt only").non_negative());
  v.field("keep_last_k", keep_last_k, config::Spec("newest step checkpoints to keep besides best.ckpt").min(1));
  v.field("nonfinite", nonfinite,
          config::Spec("on a non-finite loss or gradient: stop the run, or skip the update and continue")
              .one_of({"stop", "skip_step"}));
  v.field("max_consecutive_skips", max_consecutive_skips,
          config::Spec("with nonfinite=skip_step, stop after this many skipped steps in a row").min(1));
  v.field("stall_timeout_s", stall_timeout_s,
          config::Spec("seconds a training step may take before the run is ended as stalled (exit code 6); 0 off")
              .non_negative());
  v.section("optimizer", optimizer);
  v.section("schedule", schedule);
  v.section("early_stopping", early_stopping);
  v.section("ema", ema);

  v.check(max_steps > 0 || epochs > 0, "max_steps", "set max_steps or epochs (both are 0)");
  v.check(max_steps == 0 || epochs == 0, "epochs",
          "set either max_steps (" + std::to_string(max_steps) + ") or epochs (" + std::to_string(epochs) +
              "), not both");
  v.check(batch_size % grad_accumulation == 0, "batch_size",
          "must be a multiple of grad_accumulation (" + std::to_string(grad_accumulation) + "), got " +
              std::to_string(batch_size));
  v.check(max_steps == 0 || schedule.warmup_steps <= max_steps, "schedule",
          "warmup_steps (" + std::to_string(schedule.warmup_steps) + ") exceeds max_steps (" +
              std::to_string(max_steps) + ")");
}

void RunConfig::visit(config::Visitor& v) {
  v.field("name", name, config::Spec("run name; the run folder is output_dir/name").required());
  v.field("output_dir", output_dir, config::Spec("folder that holds run folders"));
  v.field("device", device, config::Spec("where to train").one_of({"auto", "cpu", "cuda"}));
  v.field("threads", threads,
          config::Spec("intra-op threads; 0 takes OMP_NUM_THREADS when set, else every core available").non_negative());
  v.field("log_level", log_level,
          config::Spec("log level; empty keeps the command line's --log-level")
              .one_of({"", "trace", "debug", "info", "warn", "error", "off"}));
  v.field("resume", resume,
          config::Spec("auto: newest valid checkpoint of the run folder, none: start afresh, or the path of a "
                       "checkpoint (relative to the working directory)"));
  v.field("tensorboard", tensorboard, config::Spec("write TensorBoard event files to the run folder"));
  v.check(!name.empty() && name.find('/') == std::string::npos, "name",
          "must be a non-empty folder name without '/', got '" + name + "'");
}

}  // namespace kmidi::train

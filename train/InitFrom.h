#pragma once
// train.init_from: a fresh run that starts from another run's weights, e.g.
// fine-tuning a pre-trained generator on labelled data. Weights only: the
// optimizer state, the learning-rate schedule, the step count and the data
// position start afresh (step 0). When the checkpoint holds a weight average
// (EMA), that average is loaded: it is what the run's validation measured.
//
// The checkpoint is refused with a UsageError (exit code 2) that names the
// checkpoint, the job's config file and every difference found, when it
//   - was trained for another task;
//   - carries other artifacts than the job's task produces (tokenizer.json
//     with other ids or settings: the differing keys with both values);
//   - was built with another architecture: a key of the task's `model`
//     section differs (both values named), or a tensor's name or shape does.
//     Regularisation keys (names containing "dropout") may differ, and so may
//     statements of token ids (vocab_size, pad_id, bos_id, eos_id, mask_id),
//     which the tokenizer check decides.
// An unreadable, truncated or corrupt checkpoint is a DataError (exit code 3).
//
// A run that resumes (run.resume is a checkpoint path, or auto with
// checkpoints in the run folder) ignores init_from: its own checkpoint holds
// newer weights and the optimizer state that goes with them.

#include <cstdint>
#include <string>

namespace kmidi::train {

struct JobConfig;
class Task;
class TaskRegistry;

/// Whether `kmidi train` continues the run in `run_dir` rather than starting it.
/// An explicit run.resume checkpoint, checked before the run folder exists:
/// DataError when it is no file or not a checkpoint, UsageError (naming both
/// tasks) when it was trained for another task. "auto" and "none" pass.
void check_resume_checkpoint(const JobConfig& job);

bool job_will_resume(const JobConfig& job, const std::string& run_dir);

/// The checks that need no task: the file verifies, it was trained for the
/// job's task, and the architecture keys of its config match the job's.
/// Throws as described above. Call before anything is written.
void check_init_from(const JobConfig& job, const TaskRegistry& registry);

/// What load_init_from() loaded.
struct InitFromResult {
  int64_t step = 0;       ///< the step the checkpoint was saved at (information)
  bool used_ema = false;  ///< the weights are the checkpoint's average
};

/// check_init_from(), then the artifact checks, then copies the checkpoint's
/// weights into `task`'s model (parameters and buffers).
InitFromResult load_init_from(Task& task, const JobConfig& job, const TaskRegistry& registry);

}  // namespace kmidi::train

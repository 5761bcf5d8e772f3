#pragma once
// Where a training step's time goes (train.profile: true).
//
// Phases are wall-clock spans of the training thread inside each step:
//   data       waiting for the loader's batches and moving them to the device
//   forward    the task's forward pass (under autocast)
//   backward   loss.backward()
//   sync       gradient all-reduce and the step's collectives (0 on one process)
//   optimizer  clipping, the finiteness probe, the AdamW update and the EMA
//   other      the rest of the step (step time minus the phases above)
// Operators are LibTorch's RecordFunction events (aten ops and autograd
// nodes) on the training thread during steps; an operator's self time
// excludes the operators it called, so self times add up to the time spent
// in operators and never count one nanosecond twice.
//
// The first profiled step is warm-up (allocations, oneDNN primitive
// creation) and is excluded when there are more. The report goes to the log
// as a table and to <run>/profile.json (main rank).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kmidi::train {
class TrainingObserver;
}

namespace kmidi::train::profile {

enum class Phase { kData, kForward, kBackward, kSync, kOptimizer };
constexpr int kPhaseCount = 5;
const char* phase_name(Phase phase);

/// Time of one operator over the counted steps.
struct OpTime {
  std::string name;
  int64_t calls = 0;
  double self_s = 0, total_s = 0;  ///< total includes the operators it called
};

struct Report {
  int64_t steps = 0;                  ///< steps counted (warm-up excluded)
  int64_t warmup_steps = 0;           ///< steps profiled but not counted
  double step_s = 0;                  ///< summed wall time of the counted steps
  double phase_s[kPhaseCount] = {};   ///< summed per phase
  double other_s = 0;                 ///< step_s minus the phases
  double op_self_s = 0;               ///< every operator's self time, summed
  std::vector<OpTime> ops;            ///< by self time, largest first

  /// The table for the log: phases (ms/step, share of the step) and the top
  /// `top` operators by self time.
  std::string table(size_t top = 15) const;
  /// profile.json's content.
  std::string json(size_t top = 40) const;
};

/// Collects phases and operators while it is the active profiler. One at a
/// time per process (the trainer's); phase scopes and step marks with no
/// active profiler cost one branch.
class StepProfiler {
 public:
  StepProfiler();
  ~StepProfiler();  ///< deactivates and removes the operator callback
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  /// Marks the calling thread as the training thread and starts a step.
  void begin_step();
  void end_step();
  void add_phase(Phase phase, double seconds);
  Report report() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// The active profiler, or nullptr.
StepProfiler* active();

/// Adds its lifetime to `phase` of the active profiler's current step.
class PhaseScope {
 public:
  explicit PhaseScope(Phase phase);
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase phase_;
  int64_t start_ns_ = -1;
};

/// The trainer's observer for train.profile: activates a StepProfiler when
/// training begins; at the end logs Report::table() and writes
/// <run>/profile.json (main rank).
std::shared_ptr<TrainingObserver> make_profile_observer();

}  // namespace kmidi::train::profile

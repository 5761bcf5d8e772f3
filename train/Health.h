#pragma once
// Run health: what went wrong or slowly during training (skipped steps,
// stalls, the slowest step, the share of time spent waiting for data), and
// the stalled-step watchdog. Torch-free.
//
// The trainer records each event once, where it happens (Trainer::train_step,
// the watchdog's callback); observers and the final JSON line only read it.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace kmidi::train {

/// Exit code of a run ended by the stalled-step watchdog (train.stall_timeout_s);
/// listed with the others in README "Exit codes".
inline constexpr int kExitStalled = 6;

/// Step timings over a run. A step is timed from the request for its first
/// batch to the end of its update; evaluation and checkpoints are not in it.
struct StepTimes {
  int64_t slowest_step = 0;      ///< 0: no step timed yet
  double slowest_step_ms = 0.0;
  double data_wait_s = 0.0;      ///< waiting for batches (loader_->next())
  double step_s = 0.0;           ///< whole steps, data wait included
  void record(int64_t step, double data_wait_seconds, double step_seconds);
  /// data_wait_s / step_s; 0 before any step.
  double data_wait_share() const { return step_s > 0 ? data_wait_s / step_s : 0.0; }
};

/// The health of a run over all its sessions (resumes included).
struct RunHealth {
  int64_t skipped_steps = 0;  ///< non-finite steps whose update was skipped
  int64_t stalls = 0;         ///< steps the watchdog declared stalled
  StepTimes times;
};

/// {"skipped_steps","stalls","slowest_step","slowest_step_ms","data_wait_s","data_wait_share"}
/// as a compact JSON object (the `health` block of `kmidi train`'s last line).
std::string health_json(const RunHealth& health);
/// The same fields as numbers, for a metrics.jsonl row.
std::map<std::string, double> health_numbers(const RunHealth& health);

/// Calls `on_stall(step, seconds)` from its own thread when a step has been
/// running for `timeout` without finishing: once per step, however long it
/// stays stuck. A zero timeout starts no thread and never fires.
class StallWatchdog {
 public:
  using OnStall = std::function<void(int64_t step, double seconds)>;
  StallWatchdog(std::chrono::milliseconds timeout, OnStall on_stall);
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

  /// Starts timing `step` (1 for the first).
  void step_started(int64_t step);
  /// Stops timing until the next step_started.
  void step_finished();

 private:
  void watch();

  std::chrono::milliseconds timeout_;
  OnStall on_stall_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool running_ = false;     ///< a step is being timed
  bool fired_ = false;       ///< on_stall was called for the current step
  bool stop_ = false;
  int64_t step_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::thread thread_;
};

}  // namespace kmidi::train

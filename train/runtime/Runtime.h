#pragma once
// Process-level settings for training and evaluation, and the stop signals.

#include <csignal>
#include <cstdint>
#include <string>

namespace kmidi::train {

/// What configure_process() set.
struct ProcessSettings {
  int threads = 0;           ///< intra-op threads in use
  const char* threads_from = "";  ///< "run.threads", "OMP_NUM_THREADS" or "available cores"
  bool malloc_tuned = false;
};

/// Sets intra-op threads (`threads` > 0, else OMP_NUM_THREADS when set, else
/// the cores this process may run on shared among the `local_processes` of
/// the job on this machine) and tunes glibc malloc:
/// M_MMAP_THRESHOLD at its maximum and a large M_TRIM_THRESHOLD, so that the
/// large activation and gradient buffers freed every step are kept in the
/// heap and reused instead of being unmapped and mapped again (page faults
/// and zeroing on every step). Call once at the start of a job.
ProcessSettings configure_process(int64_t threads, int local_processes = 1);

/// Number of CPU cores this process may run on (its affinity mask).
int available_cores();

/// One line naming what a job runs on, recorded in checkpoints and the
/// registry: "<device> x <world_size> process(es); CPU <model name> (<cores>
/// cores available)", e.g. "cpu x 1 process; CPU AMD EPYC 7B13 (2 cores available)".
std::string describe_hardware(const std::string& device, int world_size);

/// While alive, SIGINT and SIGTERM ask the process to stop: the first sets a
/// flag that the trainer checks between steps (it saves a checkpoint and
/// throws kmidi::Interrupted); a second one ends the process at once with
/// exit status 130. The previous handlers come back on destruction, unless
/// an exception is unwinding it: then the process is ending with that
/// error's exit code, and a first stop signal is ignored so that it stays so.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// Whether a stop was asked (also true after request()).
  static bool requested();
  /// The signal number that asked, or 0.
  static int signal_number();
  /// Asks for a stop as a signal would (e.g. from a test or an observer).
  static void request();
  /// Forgets a previous request (a new job in the same process).
  static void reset();

 private:
  int exceptions_at_start_ = 0;
  struct sigaction previous_int_ {}, previous_term_ {};
};

}  // namespace kmidi::train

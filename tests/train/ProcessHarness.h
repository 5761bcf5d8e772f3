#pragma once
// Test helpers that start real processes (ranks, launchers, daemons) with a
// controlled environment and collect their exit status and output. Tests of
// distributed training use them with the test driver today and with
// `kmidi train` later: only the command changes.

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kmidi::testing {

struct ProcessResult {
  int exit_code = -1;      ///< exit status, or -1 when killed by a signal
  int signal = 0;          ///< the signal that ended it, or 0
  bool timed_out = false;  ///< killed by wait() at its deadline
  double seconds = 0.0;    ///< from start to exit
  std::string out, err;
  std::string out_path;  ///< where stdout was written (kept when a test fails)
};

class Process {
 public:
  /// Starts `argv` with this process's environment minus every launcher
  /// variable (RANK, WORLD_SIZE, MASTER_*, OMPI_*, SLURM_*, TORCHELASTIC_*...),
  /// plus `env`. stdout and stderr go to files in `log_dir` named `name`.
  /// The process leads a process group of its own; when it ends, what is left
  /// of its group (a launcher's workers) is killed, unless `keep_group` (a
  /// daemon's parent exits before the daemon has left the group).
  static Process start(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       const std::string& log_dir, const std::string& name, bool keep_group = false);
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  /// Kills the process (SIGKILL) if it still runs.
  ~Process();

  pid_t pid() const { return pid_; }
  /// Waits at most `timeout_s`; at the deadline kills it and sets timed_out.
  ProcessResult wait(double timeout_s);
  /// The result if the process has exited, without blocking.
  std::optional<ProcessResult> poll();
  void signal(int sig);

 private:
  Process() = default;
  ProcessResult finish(int status);
  pid_t pid_ = -1;
  bool keep_group_ = false;
  double started_ = 0.0;
  std::string out_path_, err_path_;
};

/// A TCP port that was free a moment ago on 127.0.0.1.
int free_port();

/// A fresh empty folder test::scratch_dir(prefix.N), removed after a passing
/// run (kept and printed after a failing one).
std::string make_temp_dir(const std::string& prefix);

/// Monotonic seconds.
double now_seconds();

/// The launcher variables Process::start removes from the inherited environment.
bool is_launcher_variable(const std::string& name);

/// Runs `argv` to completion (timeout_s at most) in `log_dir`.
ProcessResult run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          const std::string& log_dir, const std::string& name, double timeout_s,
                          bool keep_group = false);

/// Text for failure messages: exit status and the tails of stdout and stderr.
std::string describe(const ProcessResult& result);

}  // namespace kmidi::testing

#pragma once
// Heartbeats through the rendezvous store, so that a rank that dies or is
// stopped is named within a bounded time instead of leaving the others
// waiting forever. Private to train/.

#include <c10/util/intrusive_ptr.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace c10d {
class Store;
}

namespace kmidi::train::detail {

inline constexpr std::chrono::milliseconds kMaxHeartbeatStale{20000};
inline constexpr std::chrono::milliseconds kMaxExitGrace{5000};

/// Every time limit of failure detection, derived from distributed.timeout_s.
/// The defaults (timeout 300 s) fit a launcher's 30 s between SIGTERM and
/// SIGKILL: a silent rank is lost after 20 s, a failed process ends itself
/// within 5 s of the failure (cluster/README.md, "Failures and timeouts").
struct FailureTimings {
  std::chrono::milliseconds timeout{300000};            ///< rendezvous, store, one collective
  std::chrono::milliseconds heartbeat_interval{2000};   ///< between two heartbeats
  std::chrono::milliseconds heartbeat_stale{20000};     ///< silent this long: the rank is lost
  /// After a failure is seen, how long the process may take to stop by itself
  /// before a last-resort thread ends it.
  std::chrono::milliseconds exit_grace{5000};

  /// stale = min(timeout / 2, 20 s), interval = max(stale / 10, 50 ms),
  /// exit_grace = timeout - stale within [1 s, 5 s].
  static FailureTimings from_timeout_s(double timeout_s);
};

/// What the watchdog thread, the threads waiting on collectives and the
/// collectives' completion callbacks share. Outlives the watchdog.
struct FailureState {
  std::mutex mutex;
  std::condition_variable changed;  ///< a failure was recorded or a collective completed
  std::optional<std::string> failure;
  std::chrono::steady_clock::time_point last_round;  ///< the watchdog's last completed round
  bool rounds_started = false;
  /// Collectives this rank has started; published by the watchdog, so that a
  /// timed-out rank can tell which ranks are behind.
  std::atomic<int64_t> collectives_started{0};
};

/// Store keys, relative to the job attempt's prefix.
std::string heartbeat_key(int rank);
std::string exited_key(int rank);
std::string abort_reason_key(int rank);
std::string progress_key(int rank);
inline constexpr const char* kAbortedKey = "aborted";
inline constexpr const char* kFinishedKey = "finished";

class Watchdog {
 public:
  /// `store` should be a connection of its own: a store operation that hangs
  /// (its host stopped) must not block the training thread's store use.
  /// `store_owner` describes who hosts the store, for messages.
  Watchdog(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, FailureTimings timings,
           std::string store_owner, bool store_hosted_by_rank0);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void start();

  const std::shared_ptr<FailureState>& state() const { return state_; }
  const FailureTimings& timings() const { return timings_; }

  /// The failure seen so far, if any. Also declares one when the watchdog's
  /// own rounds have stalled for longer than heartbeat_stale (the store's host
  /// hangs), which the watchdog thread, blocked in the store, cannot do itself.
  std::optional<std::string> check();

  /// Stops the thread and waits for it (clean shutdown).
  void stop();
  /// Stops the thread without waiting: it may be blocked on an unreachable store.
  void abandon();

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  int rank_, world_size_;
  FailureTimings timings_;
  std::string store_owner_;
  bool store_hosted_by_rank0_;
  std::shared_ptr<FailureState> state_;
  std::shared_ptr<bool> stop_;  ///< guarded by state_->mutex; shared with an abandoned thread
  std::thread thread_;
};

/// Records `message` in `state` unless a failure is recorded already, wakes
/// every waiter, and starts the last-resort exit: if the process still runs
/// `grace` later, it prints the failure and exits with kExitPeerFailed.
/// Returns the failure that is now recorded.
std::string record_failure(const std::shared_ptr<FailureState>& state, const std::string& message,
                           std::chrono::milliseconds grace);

}  // namespace kmidi::train::detail

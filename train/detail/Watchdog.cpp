#include "train/detail/Watchdog.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/Errors.h"

namespace kmidi::train::detail {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

FailureTimings FailureTimings::from_timeout_s(double timeout_s) {
  FailureTimings t;
  t.timeout = milliseconds(static_cast<int64_t>(std::llround(timeout_s * 1000.0)));
  // Capped so that every window fits inside the 30 s a launcher waits between
  // SIGTERM and SIGKILL (torchrun 1.13's fixed grace, Slurm's default KillWait).
  t.heartbeat_stale = std::min(milliseconds(t.timeout.count() / 2), kMaxHeartbeatStale);
  t.heartbeat_interval = std::max(milliseconds(t.heartbeat_stale.count() / 10), milliseconds(50));
  t.exit_grace = std::clamp(t.timeout - t.heartbeat_stale, milliseconds(1000), kMaxExitGrace);
  return t;
}

std::string heartbeat_key(int rank) { return "heartbeat/" + std::to_string(rank); }
std::string exited_key(int rank) { return "exited/" + std::to_string(rank); }
std::string abort_reason_key(int rank) { return "abort_reason/" + std::to_string(rank); }
std::string progress_key(int rank) { return "progress/" + std::to_string(rank); }

namespace {

std::string seconds_text(milliseconds ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return text;
}

std::string error_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    const std::string text = c10_error->what_without_backtrace();
    return text.substr(0, text.find('\n'));
  }
  return e.what();
}

}  // namespace

std::string record_failure(const std::shared_ptr<FailureState>& state, const std::string& message,
                           milliseconds grace) {
  std::string recorded;
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    if (!state->failure) {
      // Logged before anyone can see the failure: a thread still inside the
      // logger while the main thread exits would race the logger's teardown.
      spdlog::error("distributed failure: {}", message);
      state->failure = message;
      first = true;
    }
    recorded = *state->failure;
  }
  state->changed.notify_all();
  if (first) {
    // The last resort: a process blocked where no exception can reach it (a
    // GPU kernel waiting for a dead peer, a stuck store call) must still end.
    std::thread([state, grace] {
      std::this_thread::sleep_for(grace);
      std::string text;
      {
        std::lock_guard<std::mutex> lock(state->mutex);
        text = state->failure.value_or("unknown");
      }
      std::fprintf(stderr, "kmidi: distributed failure: %s (the process did not stop within %s of it; exiting)\n",
                   text.c_str(), seconds_text(grace).c_str());
      std::fflush(stderr);
      std::_Exit(kExitPeerFailed);
    }).detach();
  }
  return recorded;
}

namespace {

/// What the watchdog thread needs, copied so that an abandoned thread never
/// touches the Watchdog object again.
struct Round {
  c10::intrusive_ptr<c10d::Store> store;
  std::shared_ptr<FailureState> state;
  std::shared_ptr<bool> stop;
  int rank = 0, world_size = 1;
  FailureTimings timings;
  std::string store_owner;
  bool store_hosted_by_rank0 = false;

  bool stopping() const {
    std::lock_guard<std::mutex> lock(state->mutex);
    return *stop;
  }

  std::string reasons_from_store() const {
    std::string reasons;
    for (int r = 0; r < world_size; ++r) {
      const std::string key = abort_reason_key(r);
      if (!store->check({key})) continue;
      const auto bytes = store->get(key);
      if (!reasons.empty()) reasons += "; ";
      reasons += std::string(bytes.begin(), bytes.end());
    }
    return reasons.empty() ? "another rank aborted the job" : reasons;
  }

  void run() const {
    // Rank 0 watches every rank; the others watch rank 0, and learn about the
    // rest through the abort key that rank 0 sets.
    std::vector<int> watched;
    if (rank == 0) {
      for (int r = 1; r < world_size; ++r) watched.push_back(r);
    } else {
      watched.push_back(0);
    }
    std::vector<int64_t> last_beat(static_cast<size_t>(world_size), -1);
    std::vector<steady_clock::time_point> last_change(static_cast<size_t>(world_size), steady_clock::now());
    int64_t published_progress = -1;

    while (!stopping()) {
      try {
        store->add(heartbeat_key(rank), 1);
        const int64_t progress = state->collectives_started.load();
        if (progress != published_progress) {
          const std::string value = std::to_string(progress);
          store->set(progress_key(rank), std::vector<uint8_t>(value.begin(), value.end()));
          published_progress = progress;
        }
        if (store->add(kAbortedKey, 0) > 0) {
          const std::string reasons = reasons_from_store();
          if (!stopping()) record_failure(state, reasons, timings.exit_grace);
          return;
        }
        for (const int r : watched) {
          const int64_t beat = store->add(heartbeat_key(r), 0);
          const auto now = steady_clock::now();
          const auto i = static_cast<size_t>(r);
          if (beat != last_beat[i]) {
            last_beat[i] = beat;
            last_change[i] = now;
            continue;
          }
          const auto silent = std::chrono::duration_cast<milliseconds>(now - last_change[i]);
          if (silent <= timings.heartbeat_stale || store->check({exited_key(r)})) continue;
          const std::string message = "rank " + std::to_string(r) + " of " + std::to_string(world_size) +
                                      " sent no heartbeat for " + seconds_text(silent) +
                                      ": it died, was stopped, or its node is unreachable";
          if (stopping()) return;
          record_failure(state, message, timings.exit_grace);
          // Tell the ranks that only watch rank 0.
          store->set(abort_reason_key(rank), std::vector<uint8_t>(message.begin(), message.end()));
          store->add(kAbortedKey, 1);
          return;
        }
      } catch (const std::exception& e) {
        if (stopping()) return;
        const std::string message =
            store_hosted_by_rank0
                ? "rank 0, which hosts the rendezvous store (" + store_owner +
                      "), is unreachable: it died or its node is down (" + error_text(e) + ")"
                : "lost the rendezvous store (" + store_owner + "): " + error_text(e);
        record_failure(state, message, timings.exit_grace);
        return;
      }
      std::unique_lock<std::mutex> lock(state->mutex);
      state->last_round = steady_clock::now();
      state->changed.wait_for(lock, timings.heartbeat_interval, [&] { return *stop; });
    }
  }
};

}  // namespace

Watchdog::Watchdog(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, FailureTimings timings,
                   std::string store_owner, bool store_hosted_by_rank0)
    : store_(std::move(store)),
      rank_(rank),
      world_size_(world_size),
      timings_(timings),
      store_owner_(std::move(store_owner)),
      store_hosted_by_rank0_(store_hosted_by_rank0),
      state_(std::make_shared<FailureState>()),
      stop_(std::make_shared<bool>(false)) {}

Watchdog::~Watchdog() {
  if (thread_.joinable()) stop();
}

void Watchdog::start() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->last_round = steady_clock::now();
    state_->rounds_started = true;
  }
  Round round{store_, state_, stop_, rank_, world_size_, timings_, store_owner_, store_hosted_by_rank0_};
  thread_ = std::thread([round = std::move(round)] { round.run(); });
}

void Watchdog::stop() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    *stop_ = true;
    state_->rounds_started = false;
  }
  state_->changed.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::abandon() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    *stop_ = true;
    state_->rounds_started = false;
  }
  state_->changed.notify_all();
  // The thread only touches what it shares by pointer once stop is set, but a
  // store call in flight must finish first: let it go instead of joining.
  if (thread_.joinable()) thread_.detach();
}

std::optional<std::string> Watchdog::check() {
  std::string stalled;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->failure) return state_->failure;
    if (!state_->rounds_started) return std::nullopt;
    const auto silent = steady_clock::now() - state_->last_round;
    if (silent <= timings_.heartbeat_stale + timings_.heartbeat_interval) return std::nullopt;
    stalled = "the rendezvous store (" + store_owner_ + ") has not answered for " +
              seconds_text(std::chrono::duration_cast<milliseconds>(silent)) +
              (store_hosted_by_rank0_ ? ": rank 0 hangs or its node is unreachable"
                                      : ": its host hangs or is unreachable");
  }
  return record_failure(state_, stalled, timings_.exit_grace);
}

}  // namespace kmidi::train::detail

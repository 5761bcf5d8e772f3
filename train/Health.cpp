#include "train/Health.h"

#include <nlohmann/json.hpp>

namespace kmidi::train {

void StepTimes::record(int64_t step, double data_wait_seconds, double step_seconds) {
  data_wait_s += data_wait_seconds;
  step_s += step_seconds;
  if (slowest_step == 0 || step_seconds * 1000.0 > slowest_step_ms) {
    slowest_step = step;
    slowest_step_ms = step_seconds * 1000.0;
  }
}

std::string health_json(const RunHealth& health) {
  nlohmann::ordered_json j;
  j["skipped_steps"] = health.skipped_steps;
  j["stalls"] = health.stalls;
  j["slowest_step"] = health.times.slowest_step;
  j["slowest_step_ms"] = health.times.slowest_step_ms;
  j["data_wait_s"] = health.times.data_wait_s;
  j["data_wait_share"] = health.times.data_wait_share();
  return j.dump();
}

std::map<std::string, double> health_numbers(const RunHealth& health) {
  return {{"skipped_steps", static_cast<double>(health.skipped_steps)},
          {"stalls", static_cast<double>(health.stalls)},
          {"slowest_step", static_cast<double>(health.times.slowest_step)},
          {"slowest_step_ms", health.times.slowest_step_ms},
          {"data_wait_s", health.times.data_wait_s},
          {"data_wait_share", health.times.data_wait_share()}};
}

StallWatchdog::StallWatchdog(std::chrono::milliseconds timeout, OnStall on_stall)
    : timeout_(timeout), on_stall_(std::move(on_stall)) {
  if (timeout_.count() > 0) thread_ = std::thread([this] { watch(); });
}

StallWatchdog::~StallWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StallWatchdog::step_started(int64_t step) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = true;
    fired_ = false;
    step_ = step;
    started_ = std::chrono::steady_clock::now();
  }
  changed_.notify_all();
}

void StallWatchdog::step_finished() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
  }
  changed_.notify_all();
}

void StallWatchdog::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    if (!running_ || fired_) {
      changed_.wait(lock);
      continue;
    }
    const auto deadline = started_ + timeout_;
    if (std::chrono::steady_clock::now() < deadline) {
      changed_.wait_until(lock, deadline);
      continue;
    }
    fired_ = true;
    const int64_t step = step_;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    // The callback may take long (a checkpoint) or end the process: call it
    // unlocked, so that the training thread is never blocked by the watchdog.
    lock.unlock();
    on_stall_(step, seconds);
    lock.lock();
  }
}

}  // namespace kmidi::train

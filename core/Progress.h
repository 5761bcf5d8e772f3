#pragma once
// Progress for long loops: a bar with rate and ETA on a terminal, a plain
// periodic log line otherwise (files, CI logs). Silent on ranks other than 0.

#include <chrono>
#include <cstdint>
#include <string>

namespace kmidi {

class Progress {
 public:
  /// `total` <= 0 means unknown (no percentage, no ETA).
  Progress(std::string label, int64_t total, std::string unit = "it",
           double log_interval_seconds = 10.0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t n = 1) { update(done_ + n); }
  void update(int64_t done);
  /// Text shown after the counters, e.g. "loss 3.21 lr 3.0e-04".
  void set_postfix(std::string text) { postfix_ = std::move(text); }
  /// Prints the final state once; later calls do nothing.
  void finish();

  int64_t done() const { return done_; }
  double rate() const;  ///< units per second since start

 private:
  void render(bool final_line);
  std::string label_, unit_, postfix_;
  int64_t total_, done_ = 0, start_done_ = 0;
  double log_interval_;
  bool enabled_, terminal_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace kmidi

#pragma once
// metrics.jsonl: one JSON object per line, e.g.
//   {"step":100,"split":"train","epoch":0,"loss":2.31,"lr":0.0003,"grad_norm":1.2,
//    "throughput":812.5,"throughput_unit":"tokens","elapsed_s":41.2}
//   {"step":100,"split":"validation","loss":2.45,...}
// Appended and flushed row by row: a log, readable while the run goes on.

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace kmidi::train {

class MetricsLog {
 public:
  /// Opens `path` for appending. With `keep_through_step` >= 0 (a resumed
  /// run), first drops rows of steps after it: they belong to the part of
  /// the interrupted run that the resume repeats. With -1, starts the file afresh.
  MetricsLog(std::string path, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  /// Writes {"step", "split", numbers..., texts...}. Non-finite numbers become null.
  void write(int64_t step, const std::string& split, const std::map<std::string, double>& numbers,
             const std::map<std::string, std::string>& texts = {});
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace kmidi::train

#pragma once
// What a dataset does with an item whose source data cannot be used (a
// missing or corrupt audio or MIDI file): fail the run, or skip the item and
// say so. A skip is recorded with its reason for the run's report; it is never
// silent and never replaced by made-up data. Torch-free.

#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/Errors.h"

namespace kmidi::data {

/// The `on_error` setting of a data source.
enum class OnError { kFail, kSkip };

/// Parses "fail" or "skip"; throws UsageError otherwise.
OnError parse_on_error(const std::string& name);
std::string to_string(OnError mode);

/// One skipped item.
struct SkippedItem {
  std::string path;    ///< the file that could not be used
  std::string reason;  ///< the DataError's message
};

/// Applies an OnError mode and keeps the list of skips. Thread-safe: loader
/// threads may share one.
class ErrorPolicy {
 public:
  explicit ErrorPolicy(OnError mode) : mode_(mode) {}

  /// Runs `load()`. A kmidi::DataError is rethrown under kFail; under kSkip it
  /// is recorded with `path` and nullopt is returned. Other exceptions (bugs,
  /// usage errors) always propagate.
  template <class Load>
  auto attempt(const std::string& path, Load&& load) -> std::optional<std::invoke_result_t<Load>> {
    try {
      return std::forward<Load>(load)();
    } catch (const DataError& e) {
      if (mode_ == OnError::kFail) throw;
      record(path, e.what());
      return std::nullopt;
    }
  }

  /// Records a skip decided by the caller.
  void record(const std::string& path, const std::string& reason);

  OnError mode() const { return mode_; }
  /// A copy of the skips so far, in the order they happened.
  std::vector<SkippedItem> skipped() const;
  size_t skipped_count() const;
  /// "N item(s) skipped:" then one "  PATH: REASON" line each; "" when none.
  std::string report() const;

 private:
  OnError mode_;
  mutable std::mutex mutex_;
  std::vector<SkippedItem> skipped_;
};

}  // namespace kmidi::data

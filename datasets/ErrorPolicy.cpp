#include "datasets/ErrorPolicy.h"

namespace kmidi::data {

OnError parse_on_error(const std::string& name) {
  if (name == "fail") return OnError::kFail;
  if (name == "skip") return OnError::kSkip;
  throw UsageError("on_error: expected 'fail' or 'skip', got '" + name + "'");
}

std::string to_string(OnError mode) { return mode == OnError::kFail ? "fail" : "skip"; }

void ErrorPolicy::record(const std::string& path, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  skipped_.push_back({path, reason});
}

std::vector<SkippedItem> ErrorPolicy::skipped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_;
}

size_t ErrorPolicy::skipped_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_.size();
}

std::string ErrorPolicy::report() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (skipped_.empty()) return "";
  std::string text = std::to_string(skipped_.size()) + (skipped_.size() == 1 ? " item" : " items") + " skipped:\n";
  for (const SkippedItem& item : skipped_) text += "  " + item.path + ": " + item.reason + "\n";
  return text;
}

}  // namespace kmidi::data

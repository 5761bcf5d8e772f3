#include "train/Task.h"

#include <torch/torch.h>

#include "core/Errors.h"
#include "core/Strings.h"

namespace kmidi::train {

Task::~Task() = default;

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain: return "train";
    case Split::kValidation: return "validation";
    case Split::kTest: return "test";
  }
  return "unknown";
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "validation") return Split::kValidation;
  if (name == "test") return Split::kTest;
  throw UsageError("unknown split '" + name + "'; expected train, validation or test");
}

MetricValues Task::finalize(const MetricValues& sums, Split) const {
  MetricValues out;
  const auto loss = sums.find("loss_sum");
  const auto units = sums.find("units");
  if (loss != sums.end() && units != sums.end() && units->second > 0) out["loss"] = loss->second / units->second;
  return out;
}

void Task::check_artifacts(const std::map<std::string, std::string>& saved) const {
  const auto mine = artifacts();
  for (const auto& [name, bytes] : mine) {
    const auto it = saved.find(name);
    if (it == saved.end()) {
      throw UsageError("the checkpoint has no '" + name + "', which this task needs");
    }
    if (it->second != bytes) {
      throw UsageError("the checkpoint's '" + name + "' differs from the one this config produces (" +
                       std::to_string(it->second.size()) + " vs " + std::to_string(bytes.size()) +
                       " bytes); the weights were trained for other data");
    }
  }
}

bool Task::applies_weight_decay(const std::string&, const at::Tensor& parameter) const {
  return parameter.dim() >= 2;
}

void TaskRegistry::add_entry(const std::string& name, TaskEntry entry) {
  if (!entries_.emplace(name, std::move(entry)).second) {
    throw std::logic_error("task '" + name + "' is registered twice");
  }
}

const TaskEntry& TaskRegistry::at(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it != entries_.end()) return it->second;
  const std::vector<std::string> known = names();
  std::string msg = "task: unknown task '" + name + "'";
  if (auto near = strings::closest(name, known)) msg += " (did you mean '" + *near + "'?)";
  msg += "; registered: " + (known.empty() ? std::string("none") : strings::join(known, ", "));
  throw config::ConfigError(msg);
}

std::vector<std::string> TaskRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

}  // namespace kmidi::train

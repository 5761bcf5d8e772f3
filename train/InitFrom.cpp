#include "train/InitFrom.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "core/Errors.h"
#include "core/Strings.h"
#include "train/Checkpoint.h"
#include "train/Job.h"

namespace fs = std::filesystem;

namespace kmidi::train {
namespace {

constexpr size_t kMaxListed = 6;  // differences named in one message

/// Every field of a config as "section.key" -> its value as text.
class Flatten final : public config::Visitor {
 public:
  std::vector<std::pair<std::string, std::string>> values;

  void field(std::string_view k, bool& v, const config::Spec&) override { put(k, v ? "true" : "false"); }
  void field(std::string_view k, int& v, const config::Spec&) override { put(k, std::to_string(v)); }
  void field(std::string_view k, int64_t& v, const config::Spec&) override { put(k, std::to_string(v)); }
  void field(std::string_view k, double& v, const config::Spec&) override { put(k, fmt::format("{}", v)); }
  void field(std::string_view k, float& v, const config::Spec&) override { put(k, fmt::format("{}", v)); }
  void field(std::string_view k, std::string& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, config::Path& v, const config::Spec&) override { put(k, v.str()); }
  void field(std::string_view k, std::vector<int64_t>& v, const config::Spec&) override { put(k, list(v)); }
  void field(std::string_view k, std::vector<double>& v, const config::Spec&) override { put(k, list(v)); }
  void field(std::string_view k, std::vector<std::string>& v, const config::Spec&) override { put(k, list(v)); }
  void field(std::string_view k, std::vector<config::Path>& v, const config::Spec&) override {
    std::vector<std::string> s;
    for (const auto& p : v) s.push_back(p.str());
    put(k, list(s));
  }
  void section(std::string_view k, config::Section& s, const config::Spec&) override {
    prefix_.push_back(std::string(k));
    s.visit(*this);
    prefix_.pop_back();
  }
  bool reading() const override { return false; }
  [[noreturn]] void fail(std::string_view key, std::string_view message) override {
    throw std::logic_error("config flatten: " + std::string(key) + ": " + std::string(message));
  }

 protected:
  std::optional<size_t> begin_list(std::string_view k, size_t current_size, const config::Spec&) override {
    prefix_.push_back(std::string(k));
    return current_size;
  }
  void list_item(size_t index, config::Section& item) override {
    prefix_.back() += "[" + std::to_string(index) + "]";
    item.visit(*this);
    prefix_.back().erase(prefix_.back().rfind('['));
  }
  void end_list() override { prefix_.pop_back(); }

 private:
  template <class T>
  static std::string list(const std::vector<T>& v) {
    std::vector<std::string> s;
    for (const auto& x : v) s.push_back(fmt::format("{}", x));
    return "[" + strings::join(s, ", ") + "]";
  }
  void put(std::string_view k, std::string value) {
    std::string key;
    for (const auto& p : prefix_) key += p + ".";
    values.emplace_back(key + std::string(k), std::move(value));
  }
  std::vector<std::string> prefix_;
};

/// Keys of the `model` section that decide which weights fit: all but
/// regularisation and token-id statements (the tokenizer check decides those).
std::vector<std::pair<std::string, std::string>> architecture_keys(config::Section& root) {
  static const std::set<std::string> kIdStatements = {"vocab_size", "pad_id", "bos_id", "eos_id", "mask_id"};
  Flatten flat;
  root.visit(flat);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [key, value] : flat.values) {
    if (!strings::starts_with(key, "model.")) continue;
    const std::string leaf = key.substr(key.rfind('.') + 1);
    if (leaf.find("dropout") != std::string::npos || kIdStatements.count(leaf)) continue;
    out.emplace_back(key, value);
  }
  return out;
}

std::string quoted(const nlohmann::json& j) {
  std::string s = j.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

/// Differences between two JSON documents as "path is A in the checkpoint and B in the job's".
void json_differences(const nlohmann::json& saved, const nlohmann::json& mine, const std::string& path,
                      std::vector<std::string>& out) {
  const std::string where = path.empty() ? std::string("the document") : path;
  if (saved.type() != mine.type()) {
    out.push_back(where + " is " + quoted(saved) + " in the checkpoint and " + quoted(mine) + " in the job's");
  } else if (saved.is_object()) {
    std::set<std::string> keys;
    for (auto it = saved.begin(); it != saved.end(); ++it) keys.insert(it.key());
    for (auto it = mine.begin(); it != mine.end(); ++it) keys.insert(it.key());
    for (const std::string& k : keys) {
      const std::string sub = path.empty() ? k : path + "." + k;
      if (!saved.contains(k)) {
        out.push_back(sub + " is absent in the checkpoint and " + quoted(mine[k]) + " in the job's");
      } else if (!mine.contains(k)) {
        out.push_back(sub + " is " + quoted(saved[k]) + " in the checkpoint and absent in the job's");
      } else {
        json_differences(saved[k], mine[k], sub, out);
      }
    }
  } else if (saved.is_array()) {
    if (saved.size() != mine.size()) {
      out.push_back(where + " has " + std::to_string(saved.size()) + " entries in the checkpoint and " +
                    std::to_string(mine.size()) + " in the job's");
    }
    for (size_t i = 0; i < std::min(saved.size(), mine.size()); ++i) {
      json_differences(saved[i], mine[i], path + "[" + std::to_string(i) + "]", out);
    }
  } else if (saved != mine) {
    out.push_back(where + " is " + quoted(saved) + " in the checkpoint and " + quoted(mine) + " in the job's");
  }
}

std::string refusal(const JobConfig& job, const std::string& what) {
  return "train.init_from: " + job.train.init_from.str() + " cannot start the job of " +
         (job.file.empty() ? std::string("this config") : job.file) + ": " + what;
}

/// The checkpoint's own config, read with the job's task schema.
std::unique_ptr<JobConfig> saved_job_config(const CheckpointFile& file, const JobConfig& job,
                                            const TaskRegistry& registry) {
  auto saved = std::make_unique<JobConfig>();
  saved->task_config = registry.at(job.task).make_config();
  try {
    const config::Document doc = config::Document::load_string(std::string(file.bytes(checkpoint_section::kConfig)),
                                                               file.path() + ": config.yaml", fs::current_path().string());
    doc.read_into(*saved);
  } catch (const config::ConfigError& e) {
    throw UsageError(refusal(job, std::string("its config.yaml cannot be read to compare the architecture: ") + e.what()));
  }
  return saved;
}

void check_architecture(const CheckpointFile& file, const JobConfig& job, const TaskRegistry& registry) {
  auto saved = saved_job_config(file, job, registry);
  const auto theirs = architecture_keys(*saved);
  const auto ours = architecture_keys(const_cast<JobConfig&>(job));  // visiting to write does not modify
  std::map<std::string, std::string> saved_values(theirs.begin(), theirs.end());
  std::vector<std::string> differences;
  for (const auto& [key, value] : ours) {
    const auto it = saved_values.find(key);
    const std::string saved_value = it == saved_values.end() ? std::string("absent") : it->second;
    if (saved_value != value) {
      differences.push_back(key + " is " + saved_value + " in the checkpoint's config and " + value + " in the job's");
    }
  }
  if (!differences.empty()) {
    throw UsageError(refusal(job, "the architecture differs: " + strings::join(differences, "; ")));
  }
}

void check_artifacts_match(const CheckpointFile& file, const Task& task, const JobConfig& job) {
  const auto saved = file.artifacts();
  for (const auto& [name, bytes] : task.artifacts()) {
    const auto it = saved.find(name);
    if (it == saved.end()) throw UsageError(refusal(job, "the checkpoint has no " + name + ", which the job's task needs"));
    if (it->second == bytes) continue;
    std::vector<std::string> differences;
    const auto a = nlohmann::json::parse(it->second, nullptr, false);
    const auto b = nlohmann::json::parse(bytes, nullptr, false);
    if (!a.is_discarded() && !b.is_discarded()) json_differences(a, b, "", differences);
    // The shallowest first: settings and sizes say more than the n-th vocabulary entry.
    auto depth = [](const std::string& d) {
      const std::string path = d.substr(0, d.find(' '));
      return std::count(path.begin(), path.end(), '.') + std::count(path.begin(), path.end(), '[');
    };
    std::stable_sort(differences.begin(), differences.end(),
                     [&](const std::string& x, const std::string& y) { return depth(x) < depth(y); });
    if (differences.size() > kMaxListed) {
      const size_t all = differences.size();
      differences.resize(kMaxListed);
      differences.push_back("... (" + std::to_string(all) + " differences in all)");
    }
    if (differences.empty()) {
      differences.push_back(std::to_string(it->second.size()) + " bytes in the checkpoint and " +
                            std::to_string(bytes.size()) + " in the job's");
    }
    throw UsageError(refusal(job, "its " + name + " differs from the job's data (the weights were trained with other "
                                      "ids): " + strings::join(differences, "; ")));
  }
}

std::string saved_task(const CheckpointFile& file) {
  const auto meta = nlohmann::json::parse(file.bytes(checkpoint_section::kMeta), nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) throw DataError(file.path() + ": meta.json is not a JSON object");
  return meta.value("task", std::string());
}

void check_file(const CheckpointFile& file, const JobConfig& job, const TaskRegistry& registry) {
  const std::string task = saved_task(file);
  if (task != job.task) {
    throw UsageError(refusal(job, "the checkpoint was trained for task '" + task + "', the job is task '" + job.task + "'"));
  }
  check_architecture(file, job, registry);
}

}  // namespace

bool job_will_resume(const JobConfig& job, const std::string& run_dir) {
  if (job.run.resume == "none") return false;
  if (job.run.resume != "auto") return true;  // a checkpoint path
  return !CheckpointStore(run_dir + "/checkpoints", 1).list().empty();
}

void check_resume_checkpoint(const JobConfig& job) {
  if (job.run.resume == "auto" || job.run.resume == "none") return;
  if (!std::filesystem::is_regular_file(job.run.resume)) {
    throw DataError(job.run.resume + ": run.resume names no checkpoint file");
  }
  const CheckpointFile file(job.run.resume);
  const std::string task = saved_task(file);
  if (task != job.task) {
    throw UsageError(job.run.resume + ": the checkpoint was trained for task '" + task + "', this job is task '" +
                     job.task + "'");
  }
}

void check_init_from(const JobConfig& job, const TaskRegistry& registry) {
  const CheckpointFile file(job.train.init_from.str());
  check_file(file, job, registry);
}

InitFromResult load_init_from(Task& task, const JobConfig& job, const TaskRegistry& registry) {
  const CheckpointFile file(job.train.init_from.str());
  check_file(file, job, registry);
  check_artifacts_match(file, task, job);
  NamedTensorList target;
  for (const auto& item : task.model().named_parameters(true)) target.emplace_back(item.key(), item.value());
  for (const auto& item : task.model().named_buffers(true)) target.emplace_back(item.key(), item.value());
  InitFromResult result;
  try {
    load_named_tensors(file.tensors(checkpoint_section::kModel), target, file.path() + ": model");
    if (file.has(checkpoint_section::kEma)) {
      NamedTensorList params;
      for (const auto& item : task.model().named_parameters(true)) params.emplace_back(item.key(), item.value());
      load_named_tensors(file.tensors(checkpoint_section::kEma), params, file.path() + ": ema");
      result.used_ema = true;
    }
  } catch (const DataError& e) {
    throw UsageError(refusal(job, std::string("the architecture differs: ") + e.what()));
  }
  const auto meta = nlohmann::json::parse(file.bytes(checkpoint_section::kMeta), nullptr, false);
  result.step = meta.value("step", int64_t{0});
  return result;
}

}  // namespace kmidi::train

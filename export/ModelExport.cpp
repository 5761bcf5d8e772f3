#include "export/ModelExport.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "core/BuildInfo.h"
#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "core/Strings.h"
#include "datasets/corpus/PrepareConfig.h"
#include "onnx/CheckedWrite.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "train/Checkpoint.h"
#include "train/Distributed.h"
#include "train/DistributedEnv.h"
#include "train/Job.h"

namespace kmidi::exporter {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Re-throws the exception in flight with `where` in front of its message,
/// keeping kmidi's error kinds (and so the exit codes); anything else
/// (LibTorch errors, std exceptions from a task) becomes a CheckFailed: the
/// export was refused because a step of it failed.
[[noreturn]] void rethrow_with(const std::string& where) {
  try {
    throw;
  } catch (const CheckFailed& e) {
    throw CheckFailed(where + ": " + e.what());
  } catch (const DataError& e) {
    throw DataError(where + ": " + e.what());
  } catch (const UsageError& e) {
    throw UsageError(where + ": " + e.what());
  } catch (const c10::Error& e) {
    throw CheckFailed(where + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw CheckFailed(where + ": " + e.what());
  }
}

std::string iso_date_utc(double unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// The losses of the last rows of `split` at or before `step` in metrics.jsonl.
std::optional<double> last_loss(const std::string& metrics_path, const std::string& split, int64_t step) {
  std::ifstream in(metrics_path);
  if (!in) return std::nullopt;
  std::optional<double> loss;
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_discarded() || !row.is_object()) continue;  // a line cut by a crash: the rest still counts
    if (row.value("split", std::string()) != split || !row.contains("step") || !row["step"].is_number_integer()) {
      continue;
    }
    if (row["step"].get<int64_t>() > step) continue;
    const auto it = row.find("loss");
    if (it != row.end() && it->is_number()) loss = it->get<double>();
  }
  return loss;
}

std::string graph_stem(const std::string& model, const train::GraphExport& g) {
  if (!g.file_stem.empty()) return g.file_stem;
  return g.suffix.empty() ? model : model + "_" + g.suffix;
}

/// Keys the pipeline owns; a task must not set them itself.
const std::set<std::string>& pipeline_keys() {
  static const std::set<std::string> keys{onnx::meta::kFormatVersion, onnx::meta::kConfigSha256,
                                          onnx::meta::kGitCommit, onnx::meta::kTrainStep};
  return keys;
}

void validate_graphs(const std::string& model, const std::vector<train::GraphExport>& graphs) {
  std::set<std::string> stems;
  for (const train::GraphExport& g : graphs) {
    const std::string stem = graph_stem(model, g);
    const std::string what = "graph '" + stem + "'";
    for (const char c : stem) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
        throw UsageError(what + ": file stems are lower-case letters, digits and '_' (they are registry ids)");
      }
    }
    if (!stems.insert(stem).second) throw UsageError(what + ": two graphs of the task have this file name");
    if (!g.emit) throw UsageError(what + ": the task gives no emit function");
    if (!g.sample_inputs || !g.reference) {
      throw UsageError(what + ": the task gives no sample_inputs or reference; every export is compared with LibTorch");
    }
    if (g.parity_shapes.empty()) {
      throw UsageError(what + ": the task declares no parity shapes; every export is compared with LibTorch");
    }
    for (const auto& [key, value] : g.metadata) {
      if (pipeline_keys().count(key)) throw UsageError(what + ": metadata key " + key + " is set by the exporter");
    }
  }
}

/// The path and string fields of a config, by dotted key, in declaration
/// order. Lists are skipped (no job names its data inside one).
class DataFields final : public config::Visitor {
 public:
  std::vector<std::pair<std::string, std::string>> paths;
  std::map<std::string, std::string> strings;

  void field(std::string_view, bool&, const config::Spec&) override {}
  void field(std::string_view, int&, const config::Spec&) override {}
  void field(std::string_view, int64_t&, const config::Spec&) override {}
  void field(std::string_view, double&, const config::Spec&) override {}
  void field(std::string_view, float&, const config::Spec&) override {}
  void field(std::string_view key, std::string& value, const config::Spec&) override {
    strings[prefix_ + std::string(key)] = value;
  }
  void field(std::string_view key, config::Path& value, const config::Spec&) override {
    if (!value.empty()) paths.emplace_back(prefix_ + std::string(key), value.str());
  }
  void field(std::string_view, std::vector<int64_t>&, const config::Spec&) override {}
  void field(std::string_view, std::vector<double>&, const config::Spec&) override {}
  void field(std::string_view, std::vector<std::string>&, const config::Spec&) override {}
  void field(std::string_view, std::vector<config::Path>&, const config::Spec&) override {}
  void section(std::string_view key, config::Section& value, const config::Spec&) override {
    const std::string outer = prefix_;
    prefix_ += std::string(key) + ".";
    value.visit(*this);
    prefix_ = outer;
  }
  bool reading() const override { return false; }
  [[noreturn]] void fail(std::string_view key, std::string_view message) override {
    throw std::logic_error("DataFields: " + std::string(key) + ": " + std::string(message));
  }

 protected:
  std::optional<size_t> begin_list(std::string_view, size_t, const config::Spec&) override { return std::nullopt; }
  void list_item(size_t, config::Section&) override {}
  void end_list() override {}

 private:
  std::string prefix_;
};

std::optional<TrainingDataset> declared(const corpus::DatasetInfo& d, const std::string& source) {
  if (d.id.empty()) return std::nullopt;
  return TrainingDataset{d.id, d.license, d.version, source};
}

/// The data set in the resolved prepare config that `kmidi prepare` kept in its report.
std::optional<TrainingDataset> dataset_of_report(const std::string& report_path) {
  const auto report = nlohmann::json::parse(files::read_all(report_path), nullptr, false);
  if (!report.is_object() || !report.contains("config") || !report["config"].is_string()) {
    throw DataError(report_path + ": not a prepare report; expected a JSON object with the prepare config under \"config\"");
  }
  const config::Document doc = config::Document::load_string(
      report["config"].get<std::string>(), report_path + " (config)", fs::path(report_path).parent_path().string());
  corpus::PrepareConfig prepare;
  doc.read_into(prepare);
  return declared(prepare.dataset, report_path);
}

/// Registry fields of the published files: the ONNX file is the entry's file.
void fill_published_fields(registry::RegistryEntry& e, const std::optional<TrainingDataset>& dataset) {
  if (!e.exports) e.exports = registry::ExportInfo{};
  e.exports->onnx_path = e.file;
  e.exports->onnx_sha256 = e.exports->sha256;
  if (!e.training) e.training = registry::TrainingInfo{};
  if (!dataset) return;
  e.training->dataset_id = dataset->id;
  e.training->dataset_license = dataset->license;
  if (!dataset->version.empty()) e.training->dataset_version = dataset->version;
}

}  // namespace

std::optional<TrainingDataset> training_dataset(train::JobConfig& job, std::vector<std::string>* looked_at) {
  if (!job.task_config) return std::nullopt;
  DataFields fields;
  job.task_config->visit(fields);
  // Stated in the job itself (a task whose data no prepare config made).
  for (const auto& [key, value] : fields.strings) {
    const bool dataset_id = key == "dataset.id" || (key.size() > 11 && key.compare(key.size() - 11, 11, ".dataset.id") == 0);
    if (!dataset_id) continue;
    const std::string section = key.substr(0, key.size() - 2);  // "data.dataset."
    if (looked_at) looked_at->push_back(section + "id: '" + value + "'");
    if (value.empty()) continue;
    const auto other = [&](const char* name) {
      const auto it = fields.strings.find(section + name);
      return it == fields.strings.end() ? std::string() : it->second;
    };
    return TrainingDataset{value, other("license"), other("version"), "the job's " + section.substr(0, section.size() - 1)};
  }
  for (const auto& [key, path] : fields.paths) {
    const bool prepare_config = key == "prepare" || (key.size() > 8 && key.compare(key.size() - 8, 8, ".prepare") == 0);
    std::error_code ec;
    std::optional<TrainingDataset> found;
    if (prepare_config) {
      if (looked_at) looked_at->push_back(key + ": " + path);
      found = declared(corpus::load_prepare_config(path).dataset, path);
    } else if (fs::is_regular_file(fs::path(path) / "prepare_report.json", ec)) {
      const std::string report = (fs::path(path) / "prepare_report.json").string();
      if (looked_at) looked_at->push_back(key + ": " + report);
      found = dataset_of_report(report);
    }
    if (found) return found;
  }
  return std::nullopt;
}

std::string model_name(const train::JobConfig& job) {
  std::string name;
  for (const char c : job.run.name) {
    const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    name += ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9')) ? lower : '_';
  }
  if (name.find_first_not_of('_') == std::string::npos) {
    throw config::ConfigError("run.name: '" + job.run.name +
                              "' gives no model name; expected letters or digits (files and registry ids derive from it)");
  }
  return name;
}

std::string select_checkpoint(const train::JobConfig& job, const std::string& checkpoint,
                              std::vector<std::string>* skipped) {
  if (checkpoint.empty()) throw UsageError("export: no checkpoint given; expected a .ckpt file or 'auto'");
  if (checkpoint != "auto") {
    const std::string problem = train::checkpoint_problem(checkpoint);
    if (!problem.empty()) throw DataError(problem);
    return checkpoint;
  }
  const std::string dir = train::run_folder(job) + "/checkpoints";
  std::vector<std::string> reasons;
  const auto found = train::CheckpointStore(dir, 0).latest_valid(&reasons);
  if (skipped) *skipped = reasons;
  if (!found) {
    throw DataError(dir + ": no valid step checkpoint to export" +
                    (reasons.empty() ? std::string(" (none found)") : "; skipped: " + strings::join(reasons, "; ")));
  }
  return *found;
}

registry::TrainingInfo training_info(const train::JobConfig& job, const std::string& meta_json, int64_t step) {
  registry::TrainingInfo info;
  const auto meta = nlohmann::json::parse(meta_json, nullptr, false);
  const std::string run = train::run_folder(job);
  info.run_id = job.run.name;
  info.batch_size = job.train.batch_size;
  info.learning_rate = job.train.optimizer.lr;
  if (!job.train.optimizer.name.empty()) info.optimizer = job.train.optimizer.name;
  if (meta.is_object()) {
    if (meta.contains("epoch") && meta["epoch"].is_number_integer()) info.epochs = meta["epoch"].get<int64_t>();
    if (meta.contains("created_unix") && meta["created_unix"].is_number()) {
      info.training_date = iso_date_utc(meta["created_unix"].get<double>());
    }
    if (meta.contains("elapsed_seconds") && meta["elapsed_seconds"].is_number()) {
      info.duration_seconds = std::max(0.0, meta["elapsed_seconds"].get<double>());
    }
    const std::string commit = meta.value("git_commit", std::string());
    if (!commit.empty()) info.git_commit = commit;
    const std::string hardware = meta.value("hardware", std::string());
    if (!hardware.empty()) info.hardware = hardware;
  }
  info.train_loss = last_loss(run + "/metrics.jsonl", "train", step);
  info.val_loss = last_loss(run + "/metrics.jsonl", "validation", step);
  const std::string test_metrics = run + "/eval/test-step" + std::to_string(step) + "/metrics.json";
  if (fs::exists(test_metrics)) {
    const auto j = nlohmann::json::parse(files::read_all(test_metrics), nullptr, false);
    if (j.is_object() && j.contains("metrics") && j["metrics"].contains("loss") && j["metrics"]["loss"].is_number()) {
      info.test_loss = j["metrics"]["loss"].get<double>();
    }
  }
  // JSON has no NaN or infinity: a diverged loss is left out rather than written invalid.
  for (std::optional<double>* loss : {&info.train_loss, &info.val_loss, &info.test_loss}) {
    if (*loss && !std::isfinite(**loss)) loss->reset();
  }
  return info;
}

ModelExportResult export_model(train::JobConfig& job, const train::TaskRegistry& registry,
                               const ExportOptions& options) {
  const auto start = Clock::now();
  if (options.out_dir.empty()) throw UsageError("export: no output folder given (--out)");
  ModelExportResult result;
  result.model = model_name(job);
  result.task = job.task;
  result.checkpoint = select_checkpoint(job, options.checkpoint, &result.skipped_checkpoints);
  for (const std::string& reason : result.skipped_checkpoints) {
    spdlog::warn("{}: skipped {}", result.model, reason);
  }

  // The export always runs on the CPU in fp32 (what parity is defined on), in
  // one process even inside a launcher's allocation (e.g. Slurm variables set).
  const auto context =
      train::DistributedContext::create(train::DistributedConfig{}, "cpu", train::LaunchEnvironment{});
  std::unique_ptr<train::Task> task = train::make_task(job, registry, *context);
  const train::LoadedCheckpoint loaded =
      train::load_checkpoint_weights(*task, job.task, result.checkpoint, options.use_ema);
  result.step = loaded.step;
  result.used_ema = loaded.used_ema;
  task->model().eval();
  spdlog::info("{}: exporting {} (step {}{})", result.model, result.checkpoint, result.step,
               result.used_ema ? ", EMA weights" : "");

  std::vector<train::GraphExport> graphs = task->graphs();
  if (graphs.empty()) throw UsageError("task '" + job.task + "' has no ONNX export (Task::graphs() is empty)");
  validate_graphs(result.model, graphs);

  // Registry entries name their training data: found before any work, so
  // that a job without it fails in a second, not after the parity runs.
  std::vector<std::string> looked_at;
  std::optional<TrainingDataset> dataset;
  try {
    dataset = training_dataset(job, &looked_at);
  } catch (...) {
    rethrow_with(result.model + ": the training data's prepare config");
  }
  const bool has_entries =
      std::any_of(graphs.begin(), graphs.end(), [](const train::GraphExport& g) { return !g.registry_task.empty(); });
  if (has_entries && !dataset) {
    throw DataError(result.model + ": the registry entry needs the training data's id and licence, and the job's "
                    "data names no prepare config that declares them (add `dataset: {id: ..., license: ...}` to the "
                    "prepare config; looked at: " +
                    (looked_at.empty() ? std::string("no data.prepare and no prepared folder") : strings::join(looked_at, "; ")) +
                    ")");
  }

  const std::string config_text = loaded.config_yaml.empty() ? config::to_yaml(job) : loaded.config_yaml;
  const std::string config_sha256 = hash::sha256_hex(config_text);
  const std::string git_commit = build::git_commit();

  std::vector<std::unique_ptr<onnx::StagedModel>> staged;
  std::map<std::string, std::string> candidates;  // suffix -> checked candidate file
  for (size_t gi = 0; gi < graphs.size(); ++gi) {
    const train::GraphExport& g = graphs[gi];
    const auto graph_start = Clock::now();
    GraphResult gr;
    gr.suffix = g.suffix;
    const std::string stem = graph_stem(result.model, g);
    gr.file_name = stem + ".onnx";
    gr.path = (fs::path(options.out_dir) / gr.file_name).string();
    const std::string where = result.model + ": graph '" + stem + "'";

    std::string bytes;
    try {
      onnx::ModelOptions mo;
      mo.graph_name = stem;
      mo.doc = g.description;
      onnx::ModelBuilder builder(mo);
      builder.set_metadata(onnx::meta::kFormatVersion, onnx::meta::kCurrentFormatVersion);
      g.emit(builder);
      builder.set_metadata(onnx::meta::kConfigSha256, config_sha256);
      builder.set_metadata(onnx::meta::kGitCommit, git_commit);
      builder.set_metadata(onnx::meta::kTrainStep, std::to_string(result.step));
      for (const auto& [key, value] : g.metadata) builder.set_metadata(key, value);
      bytes = builder.build();
    } catch (...) {
      rethrow_with(where + ": emit");
    }

    const onnx::FileCheck parity = [&](const std::string& candidate) {
      for (size_t si = 0; si < g.parity_shapes.size(); ++si) {
        const auto [batch, length] = g.parity_shapes[si];
        const std::string shape = "batch " + std::to_string(batch) + ", length " + std::to_string(length);
        data::NamedTensors inputs, reference;
        try {
          torch::NoGradGuard no_grad;
          inputs = g.sample_inputs(batch, length, 1000 + si);
          reference = g.reference(inputs);
        } catch (...) {
          rethrow_with(where + ": LibTorch reference at " + shape);
        }
        const onnx::ParityReport report =
            onnx::onnxruntime_parity(candidate, inputs, reference, options.tolerance);
        report.require_passed(where + ": onnxruntime parity at " + shape);
        ++gr.parity_runs;
        for (const auto& o : report.outputs) {
          gr.max_abs_diff = std::max(gr.max_abs_diff, o.max_abs_diff);
          gr.max_rel_diff = std::max(gr.max_rel_diff, o.max_rel_diff);
        }
      }
    };
    staged.push_back(std::make_unique<onnx::StagedModel>(gr.path, bytes, std::vector<onnx::FileCheck>{parity}));
    candidates[g.suffix] = staged.back()->candidate();
    gr.sha256 = hash::sha256_hex(bytes);
    gr.bytes = static_cast<int64_t>(bytes.size());
    gr.seconds = seconds_since(graph_start);
    spdlog::info("{}: {} checked ({} parity runs, max abs diff {:.3g})", result.model, gr.file_name, gr.parity_runs,
                 gr.max_abs_diff);
    result.graphs.push_back(gr);
  }

  for (size_t gi = 0; gi < graphs.size(); ++gi) {
    if (!graphs[gi].extra_check) continue;
    const auto check_start = Clock::now();
    try {
      graphs[gi].extra_check(candidates);
    } catch (...) {
      rethrow_with(result.model + ": extra check of graph '" + graph_stem(result.model, graphs[gi]) + "'");
    }
    result.graphs[gi].seconds += seconds_since(check_start);
  }

  // The registry entries are validated against the schema before anything
  // is published (pointing at the checked candidates), so that a model whose
  // entry the manifest would refuse writes no file.
  const registry::TrainingInfo training = training_info(job, loaded.meta_json, result.step);
  std::vector<size_t> entry_graphs;
  for (size_t gi = 0; gi < graphs.size(); ++gi) {
    const train::GraphExport& g = graphs[gi];
    if (g.registry_task.empty()) continue;
    registry::RegistryEntry e;
    e.id = graph_stem(result.model, g);
    e.file = fs::path(staged[gi]->candidate()).filename().string();
    e.format = "onnx";
    e.task = g.registry_task;
    e.input_size = g.registry_input_size;
    e.output_size = g.registry_output_size;
    e.status = "trained";
    e.training = training;
    registry::ExportInfo exports;
    exports.sha256 = result.graphs[gi].sha256;
    e.exports = exports;
    fill_published_fields(e, dataset);
    result.entries.push_back(std::move(e));
    entry_graphs.push_back(gi);
  }
  if (!result.entries.empty()) {
    try {
      registry::validate_manifest_text(registry::to_json(result.entries), options.out_dir,
                                       "registry entries of " + result.model);
    } catch (...) {
      rethrow_with(result.model);
    }
  }

  // Every check passed: publish. (Each rename is atomic; a crash between two
  // leaves some files new and some old, each one complete and checked.)
  for (auto& s : staged) s->commit();
  for (size_t i = 0; i < entry_graphs.size(); ++i) {
    result.entries[i].file = result.graphs[entry_graphs[i]].file_name;
    result.entries[i].exports->onnx_path = result.entries[i].file;
  }
  result.seconds = seconds_since(start);
  return result;
}

std::string describe(const ModelExportResult& r) {
  std::ostringstream out;
  out << r.model << " (task " << r.task << "): step " << r.step << (r.used_ema ? " (EMA weights)" : "") << " from "
      << r.checkpoint << "\n";
  for (const std::string& s : r.skipped_checkpoints) out << "  skipped " << s << "\n";
  for (const GraphResult& g : r.graphs) {
    char line[512];
    std::snprintf(line, sizeof line, "  %-32s %10lld bytes  %2lld parity runs  max abs diff %.3g  max rel diff %.3g  %.2f s\n",
                  g.file_name.c_str(), static_cast<long long>(g.bytes), static_cast<long long>(g.parity_runs),
                  g.max_abs_diff, g.max_rel_diff, g.seconds);
    out << line;
  }
  char total[64];
  std::snprintf(total, sizeof total, "  total %.2f s\n", r.seconds);
  out << total;
  return out.str();
}

}  // namespace kmidi::exporter

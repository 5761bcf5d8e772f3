#include "export/NightlyExport.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Hash.h"
#include "core/Strings.h"
#include "train/Job.h"

namespace kmidi::exporter {
namespace {

namespace fs = std::filesystem;

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

bool is_job_config(const fs::path& file) {
  try {
    return config::Document::load_file(file.string()).top_level_string("task").has_value();
  } catch (const std::exception&) {
    return true;  // unreadable YAML: export it, so that its error shows in the summary
  }
}

}  // namespace

bool NightlyResult::all_ok() const {
  if (!registry_written) return false;
  return std::all_of(models.begin(), models.end(), [](const ModelOutcome& m) { return m.ok; });
}

std::vector<std::string> find_model_configs(const std::vector<std::string>& sources) {
  std::vector<std::string> configs;
  for (const std::string& source : sources) {
    std::error_code ec;
    if (fs::is_directory(source, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(source, ec)) {
        const std::string ext = entry.path().extension().string();
        if (!entry.is_regular_file() || (ext != ".yaml" && ext != ".yml")) continue;
        if (is_job_config(entry.path())) found.push_back(entry.path().string());
        else spdlog::info("{}: no top-level 'task:' key, not a model config; skipped", entry.path().string());
      }
      std::sort(found.begin(), found.end());
      configs.insert(configs.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(source, ec)) {
      configs.push_back(source);
    } else {
      throw UsageError(source + ": no such config file or folder");
    }
  }
  if (configs.empty()) throw UsageError("export --all: no model config found in " + strings::join(sources, ", "));
  return configs;
}

NightlyResult export_all(const std::vector<std::string>& configs, const train::TaskRegistry& registry,
                         const NightlyOptions& options) {
  if (options.out_dir.empty()) throw UsageError("export --all: no output folder given (--out)");
  NightlyResult result;
  result.registry_path = (fs::path(options.out_dir) / "registry.json").string();
  std::vector<registry::RegistryEntry> previous;
  if (fs::exists(result.registry_path)) {
    try {
      // Schema only: a run killed between publishing files and writing the
      // manifest leaves entries whose hashes no longer match; those are handled below.
      previous = registry::read_registry(result.registry_path, /*check_files=*/false);
    } catch (const std::exception& e) {
      throw CheckFailed(result.registry_path + ": the previous manifest does not validate, so it cannot be updated "
                        "(fix or remove it): " + first_line(e.what()));
    }
  }

  ExportOptions export_options;
  export_options.out_dir = options.out_dir;
  export_options.use_ema = options.use_ema;
  export_options.tolerance = options.tolerance;
  std::map<std::string, std::string> names;  // model name -> config that exported it
  for (const std::string& config : configs) {
    ModelOutcome outcome;
    outcome.config = config;
    try {
      auto job = train::load_job_config(config, {}, registry);
      outcome.model = model_name(*job);
      const auto [it, fresh] = names.emplace(outcome.model, config);
      if (!fresh) {
        throw config::ConfigError(config + ": run.name gives model '" + outcome.model + "', which " + it->second +
                                  " exported already in this run");
      }
      outcome.result = export_model(*job, registry, export_options);
      outcome.ok = true;
    } catch (const config::ConfigError& e) {
      outcome.error = std::string("config error: ") + first_line(e.what());
    } catch (const UsageError& e) {
      outcome.error = std::string("usage error: ") + first_line(e.what());
    } catch (const DataError& e) {
      outcome.error = std::string("data error: ") + first_line(e.what());
    } catch (const CheckFailed& e) {
      outcome.error = std::string("check failed: ") + first_line(e.what());
    } catch (const c10::Error& e) {
      outcome.error = std::string("internal error (LibTorch): ") + first_line(e.what_without_backtrace());
    } catch (const std::exception& e) {
      outcome.error = std::string("internal error: ") + first_line(e.what());
    }
    if (!outcome.ok) spdlog::error("{}: export failed: {}", config, outcome.error);
    result.models.push_back(std::move(outcome));
  }

  std::vector<registry::RegistryEntry> entries;
  std::set<std::string> ids;
  for (const ModelOutcome& m : result.models) {
    if (!m.ok) continue;
    for (const registry::RegistryEntry& e : m.result.entries) {
      ids.insert(e.id);
      entries.push_back(e);
    }
  }
  for (const registry::RegistryEntry& e : previous) {
    if (ids.count(e.id)) continue;  // replaced by tonight's entry
    // A failed (or absent) model keeps yesterday's entry while it still
    // describes the file there; otherwise the entry would lie, so it goes.
    const std::string file = (fs::path(options.out_dir) / e.file).string();
    std::string problem;
    if (!fs::is_regular_file(file)) problem = "its file " + e.file + " is gone";
    else if (e.exports && e.exports->sha256 && *e.exports->sha256 != hash::sha256_file(file)) {
      problem = "its file " + e.file + " changed since the entry was written";
    }
    if (!problem.empty()) {
      spdlog::warn("{}: dropping the previous entry '{}': {}", result.registry_path, e.id, problem);
      result.dropped_entries.push_back(e.id + ": " + problem);
      continue;
    }
    ids.insert(e.id);
    entries.push_back(e);
  }
  std::sort(entries.begin(), entries.end(),
            [](const registry::RegistryEntry& a, const registry::RegistryEntry& b) { return a.id < b.id; });
  try {
    registry::write_registry(result.registry_path, entries);
    result.registry_written = true;
  } catch (const std::exception& e) {
    result.registry_error = first_line(e.what());
    spdlog::error("{}: not written: {}", result.registry_path, result.registry_error);
  }
  return result;
}

std::string summary_table(const NightlyResult& result) {
  std::ostringstream out;
  char line[1024];
  std::snprintf(line, sizeof line, "%-24s %-6s %8s %6s %9s  %s\n", "model", "status", "step", "files", "seconds",
                "config / error");
  out << line;
  for (const ModelOutcome& m : result.models) {
    const std::string name = m.model.empty() ? "?" : m.model;
    if (m.ok) {
      std::snprintf(line, sizeof line, "%-24s %-6s %8lld %6zu %9.2f  %s\n", name.c_str(), "ok",
                    static_cast<long long>(m.result.step), m.result.graphs.size(), m.result.seconds, m.config.c_str());
    } else {
      std::snprintf(line, sizeof line, "%-24s %-6s %8s %6s %9s  %s: %s\n", name.c_str(), "FAILED", "-", "-", "-",
                    m.config.c_str(), m.error.c_str());
    }
    out << line;
  }
  const auto failed = std::count_if(result.models.begin(), result.models.end(), [](const auto& m) { return !m.ok; });
  out << result.models.size() - static_cast<size_t>(failed) << " of " << result.models.size() << " models exported; ";
  for (const std::string& d : result.dropped_entries) out << "dropped previous registry entry " << d << "\n";
  if (result.registry_written) out << result.registry_path << " written\n";
  else out << result.registry_path << " NOT written: " << result.registry_error << "\n";
  return out.str();
}

}  // namespace kmidi::exporter

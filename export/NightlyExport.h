#pragma once
// `kmidi export --all` (scripts/nightly_export.sh): every model config ->
// export_model() -> registry.json, with a summary table.
//
// What the output folder holds after a run:
//   - each model that exported: its new, checked files;
//   - each model that failed: its previous files, untouched (export_model
//     writes nothing for a failed model);
//   - registry.json, rewritten atomically and validated first (schema, ids,
//     files present, sha256 matching): the new entries of the models that
//     exported; for every other id, the previous manifest's entry unchanged.
//     So a model that failed tonight keeps yesterday's entry, which still
//     describes yesterday's file (its sha256 matches it) and yesterday's
//     training metadata; a model that never exported has no entry. A previous
//     entry whose file is gone or no longer matches its sha256 is dropped
//     (reported in the summary) rather than carried over as a lie. The run's
//     failure shows in the summary and the exit status, not in the manifest
//     (its schema has no field for it).
// A previous registry.json that fails the schema stops the run before any
// export: it is an error, never a warning (../shared/CONTRACTS.md).

#include <string>
#include <vector>

#include "export/ModelExport.h"

namespace kmidi::exporter {

struct NightlyOptions {
  std::string out_dir;  ///< REQUIRED: files and registry.json land here
  bool use_ema = true;
  onnx::Tolerance tolerance;
};

/// One config's outcome.
struct ModelOutcome {
  std::string config;     ///< the config file
  std::string model;      ///< model_name(), "" when the config could not be read
  bool ok = false;
  std::string error;      ///< "<kind>: <first line of the message>" when !ok
  ModelExportResult result;  ///< when ok
};

struct NightlyResult {
  std::vector<ModelOutcome> models;  ///< in config order
  std::string registry_path;
  bool registry_written = false;
  std::string registry_error;        ///< why registry.json was not written
  /// Previous entries left out because their file is gone or changed (e.g. a
  /// run killed after publishing files and before writing the manifest):
  /// "<id>: <reason>".
  std::vector<std::string> dropped_entries;
  bool all_ok() const;
};

/// The model configs named by `sources`: each a YAML file, or a folder whose
/// *.yaml / *.yml files with a top-level `task:` key are job configs (others,
/// e.g. prepare configs, are skipped), sorted by name. Throws UsageError for a
/// path that does not exist and when nothing is found.
std::vector<std::string> find_model_configs(const std::vector<std::string>& sources);

/// Exports every config in order (one failing does not stop the others), then
/// writes registry.json as described above. Never throws for a model's
/// failure: see the result. Throws CheckFailed (before exporting) when the
/// previous registry.json does not validate, UsageError without out_dir.
NightlyResult export_all(const std::vector<std::string>& configs, const train::TaskRegistry& registry,
                         const NightlyOptions& options);

/// The summary table: one row per model (status, step, files, seconds, error),
/// then the registry line.
std::string summary_table(const NightlyResult& result);

}  // namespace kmidi::exporter

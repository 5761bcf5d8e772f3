#pragma once
// `kmidi export`: one trained model -> its checked ONNX files, generic over
// tasks. The task states its graphs (train::Task::graphs()); this file does
// the rest: checkpoint choice, metadata, checks, atomic publication.
//
//   1. the task is built from the job config and the checkpoint's weights
//      loaded as `kmidi evaluate` loads them (train::load_checkpoint_weights);
//   2. for each GraphExport: emit, metadata, onnx checker + shape inference,
//      write to a temporary file beside the target, onnxruntime parity at
//      every parity shape against GraphExport::reference;
//   3. every GraphExport::extra_check on the candidate files;
//   4. only then every candidate is renamed into place.
// Any failure throws: no file of the model is written at the target and the
// previous files stay as they were.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "onnx/check/Parity.h"
#include "export/registry/Registry.h"

namespace kmidi::train {
struct JobConfig;
class TaskRegistry;
}  // namespace kmidi::train

namespace kmidi::exporter {

struct ExportOptions {
  /// A checkpoint file, or "auto": the newest step checkpoint of the run that
  /// verifies (newer corrupt or truncated ones are skipped and reported).
  std::string checkpoint = "auto";
  std::string out_dir;        ///< REQUIRED: the files land here
  bool use_ema = true;        ///< export the checkpoint's weight average when it has one
  onnx::Tolerance tolerance;  ///< parity tolerance (fp32 default 1e-4 / 1e-4)
};

/// One written graph.
struct GraphResult {
  std::string suffix;      ///< GraphExport::suffix
  std::string file_name;   ///< "<stem>.onnx", relative to the output folder
  std::string path;        ///< the written file
  std::string sha256;
  int64_t bytes = 0;
  int64_t parity_runs = 0;
  double max_abs_diff = 0.0;  ///< over every parity run and output
  double max_rel_diff = 0.0;
  double seconds = 0.0;       ///< emit + checks + parity of this graph
};

/// What export_model() did.
struct ModelExportResult {
  std::string model;            ///< model_name(job)
  std::string task;
  std::string checkpoint;       ///< the checkpoint used
  std::vector<std::string> skipped_checkpoints;  ///< newer invalid ones, with the reason
  int64_t step = 0;
  bool used_ema = false;
  std::vector<GraphResult> graphs;
  /// Registry entries of the graphs that declare a registry task; paths are
  /// relative to the output folder.
  std::vector<registry::RegistryEntry> entries;
  double seconds = 0.0;         ///< the whole model, task building included
};

/// The model's name in file names and registry ids: run.name lower-cased,
/// every character outside [a-z0-9_] replaced by '_'. Throws
/// config::ConfigError when nothing of it is left.
std::string model_name(const train::JobConfig& job);

/// The checkpoint that ExportOptions::checkpoint selects for `job`: the given
/// file when it verifies, else DataError with its problem; for "auto" the
/// newest valid step checkpoint of <run>/checkpoints (`skipped` gets the
/// reasons of newer invalid ones), else DataError listing them.
std::string select_checkpoint(const train::JobConfig& job, const std::string& checkpoint,
                              std::vector<std::string>* skipped);

/// Exports the model of `job` (a config read with `registry`) to options.out_dir.
/// Files: "<out>/<stem>.onnx" with stem GraphExport::file_stem, else
/// model_name(job), plus "_<suffix>" for a non-empty suffix. Metadata of every
/// file: kmidi.format_version, kmidi.model_family and kmidi.profile (from the
/// emitter), kmidi.config_sha256 (SHA-256 of the config the checkpoint was
/// trained with), kmidi.git_commit (the commit kmidi was built from, "unknown"
/// outside a checkout), kmidi.train_step, then GraphExport::metadata.
/// Registry entries (graphs with a registry task) carry exports.onnx_path (the
/// file itself) and training.dataset_id / dataset_license from
/// training_dataset(); a job whose data declares no data set is a DataError
/// found before any graph is emitted.
/// Throws CheckFailed when a check refuses a graph (checker, shape inference,
/// parity, extra_check), DataError for checkpoint and file problems,
/// UsageError for a task that exports nothing or declares a graph wrongly.
ModelExportResult export_model(train::JobConfig& job, const train::TaskRegistry& registry,
                               const ExportOptions& options);

/// The registry's training block from a checkpoint and its run: step-based
/// losses from <run>/metrics.jsonl (last train and validation rows at or
/// before the checkpoint's step), test loss from <run>/eval/test-step<N>/metrics.json
/// when that evaluation exists, run id, date, hardware, git commit and
/// duration from the checkpoint's meta.json, batch size, learning rate and
/// optimizer from the job config. Fields that are unknown stay absent.
registry::TrainingInfo training_info(const train::JobConfig& job, const std::string& meta_json, int64_t step);

/// The data set a model was trained on, as its prepare config declares it
/// (`dataset: {id:, license:, version:}`).
struct TrainingDataset {
  std::string id, license, version;
  std::string source;  ///< the prepare config or prepare_report.json it came from
};

/// Finds the job's data set: a `dataset` section of its task config with a
/// non-empty `id` (for data no prepare config made) states it outright;
/// otherwise the path fields of the task sections, in declaration order: a
/// field named `prepare` is a prepare config; a folder holding
/// prepare_report.json was made by `kmidi prepare` (its report keeps the
/// resolved prepare config). The first one that declares a data set wins.
/// Returns nullopt when none does (`looked_at` then lists what was read).
/// Throws config::ConfigError / DataError when a prepare config or report
/// that the job names cannot be read.
std::optional<TrainingDataset> training_dataset(train::JobConfig& job, std::vector<std::string>* looked_at = nullptr);

/// Human-readable lines: one per graph (file, size, parity runs, max diffs, seconds).
std::string describe(const ModelExportResult& result);

}  // namespace kmidi::exporter

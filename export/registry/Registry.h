#pragma once
// The registry manifest (registry.json) the runtime engines read to find
// kmidi's models: typed entries, validation against the JSON Schema in
// export/schema/registry.schema.json (compiled in), and an atomic writer that
// validates before it writes. Field meanings: ../shared/CONTRACTS.md.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kmidi::registry {

/// How a model was trained; every field optional.
struct TrainingInfo {
  std::optional<std::string> dataset_id, dataset_version, dataset_license;
  std::optional<int64_t> epochs, batch_size;
  std::optional<double> learning_rate;
  std::optional<std::string> optimizer, loss;
  std::optional<double> train_loss, val_loss, test_loss;
  std::optional<std::string> run_id, git_commit;
  std::optional<std::string> training_date;  ///< ISO 8601 date or date-time
  std::optional<std::string> hardware;
  std::optional<double> duration_seconds;
};

/// Integrity of the published files (hex SHA-256).
struct ExportInfo {
  std::optional<std::string> sha256;       ///< of `file`
  std::optional<std::string> onnx_path;    ///< relative to the manifest's folder
  std::optional<std::string> onnx_sha256;  ///< of `onnx_path`
};

/// One model of the manifest. Paths are relative to the manifest's folder.
struct RegistryEntry {
  std::string id;      ///< ^[a-z0-9_]+$, unique
  std::string file;
  std::string format;  ///< rtneural-json | onnx | coreml | pytorch | tensorflow
  std::string task;    ///< emotion_embedding, melody_generation, ... (CONTRACTS.md)
  int64_t input_size = 0;   ///< 1..128
  int64_t output_size = 0;  ///< 1..2^24
  std::string status;  ///< stub | training | trained | production | deprecated
  std::optional<TrainingInfo> training;
  std::optional<ExportInfo> exports;
  std::optional<std::string> model_card;  ///< path of a Markdown model card
  std::optional<std::string> license;
};

/// The JSON Schema text the validator uses (export/schema/registry.schema.json).
std::string_view registry_schema();

/// Validates manifest JSON against the schema, then: ids unique; an entry with
/// status trained or production has training.dataset_id and dataset_license,
/// and, when its format is onnx, exports.onnx_path; paths inside `base_dir`
/// and present there; exports.sha256 / onnx_sha256 equal to the files' hashes. Throws CheckFailed listing every problem (the schema reports
/// its first), each as "models[I] (id "ID") at /json/pointer: what; expected X,
/// got Y"; its first line names the first problem. Throws DataError when
/// `text` is not JSON (with the byte offset). `origin` names the manifest.
/// With `check_files` false, the files are not looked at (for
/// a manifest whose files may have changed since, e.g. the previous night's).
void validate_manifest_text(std::string_view text, const std::string& base_dir, const std::string& origin,
                            bool check_files = true);

/// validate_manifest_text on a file; paths resolve against its folder.
void validate_manifest(const std::string& path);

/// Reads and validates a manifest into entries (`check_files` as for validate_manifest_text).
std::vector<RegistryEntry> read_registry(const std::string& path, bool check_files = true);

/// The manifest JSON of `entries` (fields in CONTRACTS.md's order, 2-space indent).
std::string to_json(const std::vector<RegistryEntry>& entries);

/// Validates `entries` as they will be written (files resolved beside `path`),
/// then replaces `path` atomically. Nothing is written when validation fails.
void write_registry(const std::string& path, const std::vector<RegistryEntry>& entries);

/// Sets entry.exports->sha256 (and onnx_sha256 when onnx_path is set) from the
/// files under `base_dir`. Throws DataError when a file cannot be read.
void fill_hashes(RegistryEntry& entry, const std::string& base_dir);

}  // namespace kmidi::registry

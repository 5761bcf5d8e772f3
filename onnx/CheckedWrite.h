#pragma once
// The one way kmidi writes an ONNX file: checked on a temporary file first,
// renamed into place only when every check passed.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace kmidi::onnx {

/// A check run on the candidate file before it replaces the target (e.g. an
/// onnxruntime parity run). Throws (CheckFailed, ...) to refuse the file.
using FileCheck = std::function<void(const std::string& candidate_path)>;

/// Writes `bytes` to a temporary file beside `path` (".<name>.partial.<pid>.<n>"),
/// runs check_model and then each of `checks` on it, and only then renames it
/// over `path`. On any failure the exception propagates, the temporary file is
/// removed and `path` keeps its previous content (or stays absent).
/// Leftovers of crashed earlier writes of the same target (their process is
/// gone) are removed first.
///
/// Fault injection (files::fault_point, detail = `path`): "onnx_write_candidate"
/// right after the temporary file is complete, "onnx_write_checked" after the
/// checks passed and before the rename.
void write_checked_model(const std::string& path, std::string_view bytes, const std::vector<FileCheck>& checks = {});

/// Two-phase form of write_checked_model for files that must be published
/// together (a model's full and incremental graphs): the constructor writes
/// and checks the candidate beside `path` (check_model, then `checks`);
/// commit() renames it into place. Destroyed without commit() (a later check
/// failed, an exception), the candidate is removed and `path` is untouched.
/// Same candidate naming, stale-candidate cleanup and fault points as
/// write_checked_model ("onnx_write_checked" fires in commit()).
class StagedModel {
 public:
  StagedModel(std::string path, std::string_view bytes, const std::vector<FileCheck>& checks = {});
  ~StagedModel();
  StagedModel(const StagedModel&) = delete;
  StagedModel& operator=(const StagedModel&) = delete;

  const std::string& target() const { return target_; }
  /// The checked temporary file (valid until commit() or destruction).
  const std::string& candidate() const { return candidate_; }
  /// Renames the candidate over the target; throws DataError when the rename fails.
  void commit();

 private:
  std::string target_, candidate_;
  bool committed_ = false;
};

}  // namespace kmidi::onnx

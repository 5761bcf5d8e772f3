#pragma once
// Checkpoint files: everything a run needs to continue bit-exactly, in one
// self-checking file.
//
// Format (version 1, little-endian):
//   header   "KMIDICKP" | uint32 format_version
//   sections repeated until the trailer:
//            uint32 name_length | name | uint64 payload_length | payload
//   trailer  "KMIDIEND" | uint64 offset of the trailer | uint32 CRC-32C of every byte before the trailer
// Sections:
//   meta.json    training state: step, epoch, sampler position, schedule,
//                early stopping, best metric, RNG seed, world size at save (information only)
//   config.yaml  the resolved job config
//   model        tensor table: parameters and buffers by registered name
//   optimizer    tensor table: AdamW state by parameter name
//   ema          tensor table: weight averages (only when EMA is on)
//   rng          tensor table: torch generator states ("cpu", "cuda:N")
//   artifact/F   the task's file F (e.g. artifact/tokenizer.json), verbatim
// Tensor table: uint32 count, then per tensor:
//   uint32 name_length | name | uint8 dtype | uint32 rank | int64 dims[rank] | uint64 byte_count | raw bytes
//   dtype codes (frozen): 1 float32, 2 float64, 3 bfloat16, 4 float16, 5 int64,
//   6 int32, 7 int16, 8 int8, 9 uint8, 10 bool.
// A reader refuses a newer format_version with the reason; unknown sections
// are ignored, so a version may add sections without a bump.
//
// Files are written atomically (temp + fsync + rename + folder fsync); the
// trailer and CRC make truncation and corruption detectable on load. Nothing
// in a checkpoint depends on the rank or the world size.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "train/Optimizer.h"

namespace kmidi::train {

inline constexpr uint32_t kCheckpointFormatVersion = 1;

namespace checkpoint_section {
inline constexpr const char* kMeta = "meta.json";
inline constexpr const char* kConfig = "config.yaml";
inline constexpr const char* kModel = "model";
inline constexpr const char* kOptimizer = "optimizer";
inline constexpr const char* kEma = "ema";
inline constexpr const char* kRng = "rng";
inline constexpr const char* kArtifactPrefix = "artifact/";
}  // namespace checkpoint_section

struct CheckpointContents {
  std::string meta_json;
  std::string config_yaml;
  NamedTensorList model, optimizer, ema, rng;  ///< ema empty when EMA is off
  std::map<std::string, std::string> artifacts;
};

/// Writes `contents` to `path` atomically. Tensors may live on any device.
void write_checkpoint(const std::string& path, const CheckpointContents& contents);

/// A verified checkpoint, mapped read-only; sections are decoded on demand.
class CheckpointFile {
 public:
  /// Maps and verifies the file; throws DataError naming the file and what
  /// is wrong (truncated, checksum mismatch, newer format, bad section at byte N).
  explicit CheckpointFile(const std::string& path);
  ~CheckpointFile();
  CheckpointFile(const CheckpointFile&) = delete;
  CheckpointFile& operator=(const CheckpointFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t format_version() const { return version_; }
  bool has(const std::string& section) const { return sections_.count(section) > 0; }
  /// The payload of `section`; throws DataError when absent.
  std::string_view bytes(const std::string& section) const;
  /// A tensor-table section decoded into CPU tensors.
  NamedTensorList tensors(const std::string& section) const;
  /// Every artifact/F section, by F.
  std::map<std::string, std::string> artifacts() const;
  /// The whole contents (all tensors on the CPU).
  CheckpointContents read_all() const;

 private:
  std::string path_;
  const char* data_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  std::map<std::string, std::pair<size_t, size_t>> sections_;  // name -> (offset, length)
};

/// Empty when `path` is a complete checkpoint with a matching checksum;
/// otherwise the reason it is not.
std::string checkpoint_problem(const std::string& path);

/// Loads a tensor table into named tensors of a model (parameters and
/// buffers), copying in place. Throws DataError listing missing and
/// unexpected names and shape or dtype mismatches (`what` names the source).
void load_named_tensors(const NamedTensorList& saved, const NamedTensorList& target, const std::string& what);

/// The checkpoints folder of a run: step-NNNNNNNNNN.ckpt files, best.ckpt,
/// and the task's artifacts beside them.
class CheckpointStore {
 public:
  CheckpointStore(std::string dir, int64_t keep_last_k);

  const std::string& dir() const { return dir_; }
  std::string step_path(int64_t step) const;
  std::string best_path() const { return dir_ + "/best.ckpt"; }

  /// Step checkpoints present, oldest first.
  std::vector<std::pair<int64_t, std::string>> list() const;
  /// Writes step `step`, then deletes step files beyond the newest keep_last_k.
  void save(int64_t step, const CheckpointContents& contents);
  /// Makes best.ckpt the checkpoint of `step` (a hard link, or a copy where
  /// links are not supported), atomically.
  void mark_best(int64_t step);
  /// Writes the artifacts beside the checkpoints (atomically, when changed).
  void write_artifacts(const std::map<std::string, std::string>& artifacts) const;
  /// The newest checkpoint that verifies. Newer corrupt or truncated ones
  /// are reported (warning with the reason) and skipped; `skipped` receives
  /// the reasons when given.
  std::optional<std::string> latest_valid(std::vector<std::string>* skipped = nullptr) const;
  /// Removes temporary files left by a process killed while writing.
  void remove_stale_temporaries() const;

 private:
  std::string dir_;
  int64_t keep_last_k_;
};

}  // namespace kmidi::train

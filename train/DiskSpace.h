#pragma once
// The free-space check at training start: a run refuses to begin when its
// checkpoints cannot fit, instead of failing at the first checkpoint write.
// Torch-free.

#include <cstdint>
#include <string>

namespace kmidi::train {

/// Free bytes available to this process on the file system that holds `path`,
/// or its nearest existing parent folder when `path` does not exist yet.
struct FreeSpace {
  uint64_t bytes = 0;
  std::string checked_path;  ///< the existing folder that statvfs was asked about
};
/// Throws DataError naming the path when no parent can be examined.
FreeSpace free_space(const std::string& path);

/// Bytes a run's checkpoints may need at their peak: keep_last_k step files,
/// the one being written (checkpoints are written to a temporary file and
/// renamed), and best.ckpt when it is none of those, less what the run's
/// existing checkpoints already take (they are replaced, not added to).
/// Saturates instead of overflowing.
uint64_t checkpoint_space_needed(uint64_t checkpoint_bytes, int64_t keep_last_k, uint64_t existing_bytes);

/// Bytes taken by the *.ckpt files of `dir` (hard links counted once); 0 when
/// it does not exist.
uint64_t existing_checkpoint_bytes(const std::string& dir);

/// Throws DataError with the numbers (bytes needed, bytes free, the path)
/// when checkpoints of `checkpoint_bytes` cannot fit into `dir` with
/// `keep_last_k` kept. Writes nothing.
void require_checkpoint_space(const std::string& dir, uint64_t checkpoint_bytes, int64_t keep_last_k);

}  // namespace kmidi::train

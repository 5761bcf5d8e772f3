#include "train/DiskSpace.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "core/Errors.h"

namespace fs = std::filesystem;

namespace kmidi::train {

namespace {

std::string mebibytes(uint64_t bytes) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max() : a + b;
}

}  // namespace

FreeSpace free_space(const std::string& path) {
  fs::path probe = fs::absolute(fs::path(path)).lexically_normal();
  std::error_code ec;
  while (!fs::exists(probe, ec) && probe.has_parent_path() && probe.parent_path() != probe) probe = probe.parent_path();
  struct statvfs st {};
  if (::statvfs(probe.c_str(), &st) != 0) {
    throw DataError(path + ": cannot read the free space of its file system (at " + probe.string() +
                    "): " + std::strerror(errno));
  }
  FreeSpace out;
  out.bytes = static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
  out.checked_path = probe.string();
  return out;
}

uint64_t checkpoint_space_needed(uint64_t checkpoint_bytes, int64_t keep_last_k, uint64_t existing_bytes) {
  const uint64_t files = static_cast<uint64_t>(keep_last_k < 0 ? 0 : keep_last_k) + 2;
  const uint64_t total = checkpoint_bytes > std::numeric_limits<uint64_t>::max() / files
                             ? std::numeric_limits<uint64_t>::max()
                             : checkpoint_bytes * files;
  return total > existing_bytes ? total - existing_bytes : 0;
}

uint64_t existing_checkpoint_bytes(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  uint64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".ckpt") continue;
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (!seen.insert({st.st_dev, st.st_ino}).second) continue;  // best.ckpt linked to a step file
    total = saturating_add(total, static_cast<uint64_t>(st.st_size));
  }
  return total;
}

void require_checkpoint_space(const std::string& dir, uint64_t checkpoint_bytes, int64_t keep_last_k) {
  const uint64_t existing = existing_checkpoint_bytes(dir);
  const uint64_t needed = checkpoint_space_needed(checkpoint_bytes, keep_last_k, existing);
  const FreeSpace free = free_space(dir);
  if (needed <= free.bytes) return;
  throw DataError("not enough free disk space for the checkpoints in " + dir + ": need " + std::to_string(needed) +
                  " bytes (" + mebibytes(needed) + ": (train.keep_last_k " + std::to_string(keep_last_k) +
                  " + 2) checkpoints of about " + std::to_string(checkpoint_bytes) + " bytes, less " +
                  std::to_string(existing) + " bytes that the run's checkpoints already take), but " +
                  std::to_string(free.bytes) + " bytes (" + mebibytes(free.bytes) + ") are free on the file system of " +
                  free.checked_path + "; free some space, lower train.keep_last_k or choose another run.output_dir");
}

}  // namespace kmidi::train

#include "onnx/CheckedWrite.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/Errors.h"
#include "core/Files.h"
#include "onnx/ModelCheck.h"

namespace kmidi::onnx {
namespace {

namespace fs = std::filesystem;

std::string partial_prefix(const fs::path& target) { return "." + target.filename().string() + ".partial."; }

/// Removes candidates left by processes that no longer exist (a crash, a kill -9).
void remove_stale_candidates(const fs::path& target) {
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = partial_prefix(target);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    fs::remove(entry.path(), ec);
  }
}

/// Removes the candidate unless it was renamed into place.
struct CandidateGuard {
  std::string path;
  bool keep = false;
  ~CandidateGuard() {
    if (!keep) ::unlink(path.c_str());
  }
};

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // some filesystems refuse; the rename already happened
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

StagedModel::StagedModel(std::string path, std::string_view bytes, const std::vector<FileCheck>& checks)
    : target_(std::move(path)) {
  const fs::path target(target_);
  if (target.filename().empty()) throw UsageError("write_checked_model: '" + target_ + "' names no file");
  if (target.has_parent_path()) files::ensure_dir(target.parent_path().string());
  remove_stale_candidates(target);

  static std::atomic<int> counter{0};
  candidate_ = (target.parent_path() / (partial_prefix(target) + std::to_string(::getpid()) + "." +
                                        std::to_string(counter++)))
                   .string();
  CandidateGuard guard{candidate_};
  files::write_atomic(candidate_, bytes);
  files::fault_point("onnx_write_candidate", target_);

  check_model(bytes, target_);
  for (const FileCheck& check : checks) check(candidate_);
  guard.keep = true;  // from here on the destructor owns the candidate
}

StagedModel::~StagedModel() {
  if (!committed_) ::unlink(candidate_.c_str());
}

void StagedModel::commit() {
  if (committed_) return;
  files::fault_point("onnx_write_checked", target_);
  if (::rename(candidate_.c_str(), target_.c_str()) != 0) {
    throw DataError(target_ + ": cannot rename the checked file " + candidate_ + " into place: " +
                    std::strerror(errno));
  }
  committed_ = true;
  fsync_dir(fs::path(target_).parent_path());
}

void write_checked_model(const std::string& path, std::string_view bytes, const std::vector<FileCheck>& checks) {
  StagedModel staged(path, bytes, checks);
  staged.commit();
}

}  // namespace kmidi::onnx

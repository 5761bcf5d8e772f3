#pragma once
// File I/O that never leaves a half-written file where a good one was, and
// reads that name the file when they fail.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace kmidi::files {

/// Writes to a temporary file beside `target`; commit() flushes, fsyncs,
/// renames over the target and fsyncs the folder. Without commit() (an
/// exception, an early return) the temporary file is removed and the target
/// is untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  /// An adapter for writers that take a callback (e.g. torch serialization).
  std::function<size_t(const void*, size_t)> writer();
  void commit();

  const std::string& target() const { return target_; }
  const std::string& temp_path() const { return temp_; }
  size_t bytes_written() const { return written_; }

 private:
  void flush_buffer();
  void write_out(const char* data, size_t size);
  std::string target_, temp_;
  int fd_ = -1;
  std::string buffer_;
  size_t written_ = 0;
  bool committed_ = false;
};

/// Replaces `path` atomically with `bytes`.
void write_atomic(const std::string& path, std::string_view bytes);

/// Whole file contents; throws DataError naming the file.
std::string read_all(const std::string& path);

/// Creates `dir` and its parents; throws DataError naming it on failure.
void ensure_dir(const std::string& dir);

/// Test hook: when the environment variable KMIDI_FAULT is "POINT" or
/// "POINT:SUBSTRING" and `point` matches (and `detail` contains SUBSTRING),
/// the process kills itself with SIGKILL, as a crash or an OOM kill would.
void fault_point(std::string_view point, std::string_view detail);

}  // namespace kmidi::files

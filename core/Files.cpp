#include "core/Files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/Errors.h"

namespace fs = std::filesystem;

namespace kmidi::files {
namespace {

std::string errno_text() { return std::strerror(errno); }

constexpr size_t kBufferSize = 1 << 20;

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // some filesystems refuse; the rename itself already happened
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  const fs::path parent = fs::path(target_).parent_path();
  if (!parent.empty()) ensure_dir(parent.string());
  std::random_device rd;
  const std::string suffix = ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd() % 1000000);
  temp_ = target_ + suffix;
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw DataError(temp_ + ": cannot create temporary file: " + errno_text());
  buffer_.reserve(kBufferSize);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write_out(const char* data, size_t size) {
  size_t off = 0;
  while (off < size) {
    const ssize_t n = ::write(fd_, data + off, size - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw DataError(target_ + ": write failed: " + errno_text());
    }
    off += static_cast<size_t>(n);
  }
}

void AtomicFile::flush_buffer() {
  write_out(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFile::write(const void* data, size_t size) {
  if (committed_) throw std::logic_error(target_ + ": write after commit");
  const char* p = static_cast<const char*>(data);
  written_ += size;
  // The buffer keeps its first size: growing it would copy it, and the big
  // blocks a long run of files frees would fragment the heap.
  if (buffer_.size() + size > kBufferSize) {
    flush_buffer();
    if (size >= kBufferSize) write_out(p, size);
    else buffer_.append(p, size);
    fault_point("atomic_write", target_);
    return;
  }
  buffer_.append(p, size);
}

std::function<size_t(const void*, size_t)> AtomicFile::writer() {
  return [this](const void* data, size_t size) {
    write(data, size);
    return size;
  };
}

void AtomicFile::commit() {
  if (committed_) return;
  flush_buffer();
  fault_point("atomic_write", target_);
  if (::fsync(fd_) != 0) throw DataError(target_ + ": fsync failed: " + errno_text());
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw DataError(target_ + ": close failed: " + errno_text());
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    throw DataError(target_ + ": cannot rename " + temp_ + " into place: " + errno_text());
  }
  committed_ = true;
  fsync_dir(fs::path(target_).parent_path().string());
}

void write_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open: " + errno_text());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw DataError(path + ": read failed");
  return ss.str();
}

void ensure_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw DataError(dir + ": cannot create folder: " + ec.message());
}

void fault_point(std::string_view point, std::string_view detail) {
  const char* spec = std::getenv("KMIDI_FAULT");
  if (!spec || !*spec) return;
  std::string_view s(spec);
  const size_t colon = s.find(':');
  const std::string_view name = s.substr(0, colon);
  if (name != point) return;
  if (colon != std::string_view::npos && detail.find(s.substr(colon + 1)) == std::string_view::npos) return;
  ::kill(::getpid(), SIGKILL);
}

}  // namespace kmidi::files

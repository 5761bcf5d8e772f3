#include "train/io/TensorBoard.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Crc32c.h"

namespace kmidi::train {
namespace tensorboard {
namespace {

// Protocol buffer wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }

template <class T>
void put_little_endian(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // kmidi targets little-endian hosts only
  out.append(bytes, sizeof(T));
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes.data(), bytes.size());
}

/// Event fields 1 (wall_time) and 2 (step).
std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_key(e, 1, kFixed64);
  put_little_endian(e, wall_time);
  if (step != 0) {  // proto3 omits default values
    put_key(e, 2, kVarint);
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

}  // namespace

std::string frame_record(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  const uint64_t length = data.size();
  put_little_endian(out, length);
  put_little_endian(out, hash::mask_crc32c(hash::crc32c_extend(0, &length, sizeof length)));
  out.append(data.data(), data.size());
  put_little_endian(out, hash::mask_crc32c(hash::crc32c(data)));
  return out;
}

std::string file_version_event(double wall_time) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string scalars_event(double wall_time, int64_t step, const Scalars& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;
    put_bytes(v, 1, tag);
    put_key(v, 2, kFixed32);
    put_little_endian(v, static_cast<float>(value));
    put_bytes(summary, 1, v);
  }
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::string session_start_event(double wall_time, int64_t step) {
  std::string log;
  put_key(log, 1, kVarint);
  put_varint(log, 1);  // SessionLog.START
  std::string e = event_header(wall_time, step);
  put_bytes(e, 7, log);
  return e;
}

}  // namespace tensorboard

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  files::ensure_dir(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  const auto seconds = static_cast<long long>(now_seconds());
  // The counter keeps two writers of one process apart (a resume within the same second).
  static std::atomic<int> counter{0};
  path_ = dir + "/events.out.tfevents." + std::to_string(seconds) + "." + host + "." + std::to_string(::getpid()) +
          "." + std::to_string(counter.fetch_add(1));
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw DataError(path_ + ": cannot create TensorBoard event file: " + std::strerror(errno));
  write_record(tensorboard::file_version_event(now_seconds()));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write_record(const std::string& event) {
  const std::string record = tensorboard::frame_record(event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    throw DataError(path_ + ": write failed: " + std::strerror(errno));
  }
}

void TensorBoardWriter::add_scalars(int64_t step, const tensorboard::Scalars& values) {
  write_record(tensorboard::scalars_event(now_seconds(), step, values));
}

void TensorBoardWriter::session_start(int64_t step) {
  write_record(tensorboard::session_start_event(now_seconds(), step));
}

void TensorBoardWriter::flush() {
  if (std::fflush(file_) != 0) throw DataError(path_ + ": flush failed: " + std::strerror(errno));
}

}  // namespace kmidi::train

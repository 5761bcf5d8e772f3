#include "train/Checkpoint.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Strings.h"
#include "core/Crc32c.h"

namespace fs = std::filesystem;

namespace kmidi::train {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "kmidi checkpoints are written on little-endian hosts");

constexpr char kMagic[8] = {'K', 'M', 'I', 'D', 'I', 'C', 'K', 'P'};
constexpr char kEndMagic[8] = {'K', 'M', 'I', 'D', 'I', 'E', 'N', 'D'};
constexpr size_t kHeaderSize = 12;
constexpr size_t kTrailerSize = 20;

struct DtypeCode {
  uint8_t code;
  at::ScalarType type;
  const char* name;
};
constexpr DtypeCode kDtypes[] = {
    {1, at::kFloat, "float32"}, {2, at::kDouble, "float64"}, {3, at::kBFloat16, "bfloat16"},
    {4, at::kHalf, "float16"},  {5, at::kLong, "int64"},     {6, at::kInt, "int32"},
    {7, at::kShort, "int16"},   {8, at::kChar, "int8"},      {9, at::kByte, "uint8"},
    {10, at::kBool, "bool"},
};

uint8_t dtype_code(at::ScalarType t, const std::string& name) {
  for (const auto& d : kDtypes) {
    if (d.type == t) return d.code;
  }
  throw std::logic_error("checkpoint: tensor '" + name + "' has dtype " + std::string(c10::toString(t)) +
                         ", which the format does not store");
}

/// Streams bytes into the atomic file while extending the CRC.
class Sink {
 public:
  explicit Sink(files::AtomicFile& file) : file_(file) {}
  void write(const void* data, size_t size) {
    file_.write(data, size);
    crc_ = hash::crc32c_extend(crc_, data, size);
    offset_ += size;
  }
  template <class T>
  void put(T value) { write(&value, sizeof value); }
  void put_string32(const std::string& s) {
    put(static_cast<uint32_t>(s.size()));
    write(s.data(), s.size());
  }
  uint32_t crc() const { return crc_; }
  uint64_t offset() const { return offset_; }

 private:
  files::AtomicFile& file_;
  uint32_t crc_ = 0;
  uint64_t offset_ = 0;
};

std::vector<at::Tensor> host_copies(const NamedTensorList& tensors) {
  std::vector<at::Tensor> out;
  out.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) throw std::logic_error("checkpoint: tensor '" + name + "' is undefined");
    out.push_back(t.detach().to(at::kCPU).contiguous());
  }
  return out;
}

uint64_t table_size(const NamedTensorList& tensors, const std::vector<at::Tensor>& host) {
  uint64_t n = 4;
  for (size_t i = 0; i < tensors.size(); ++i) {
    n += 4 + tensors[i].first.size() + 1 + 4 + 8 * static_cast<uint64_t>(host[i].dim()) + 8 + host[i].nbytes();
  }
  return n;
}

void write_bytes_section(Sink& sink, const std::string& name, std::string_view payload) {
  sink.put_string32(name);
  sink.put(static_cast<uint64_t>(payload.size()));
  sink.write(payload.data(), payload.size());
}

void write_table_section(Sink& sink, const std::string& name, const NamedTensorList& tensors) {
  const std::vector<at::Tensor> host = host_copies(tensors);
  sink.put_string32(name);
  sink.put(table_size(tensors, host));
  sink.put(static_cast<uint32_t>(tensors.size()));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = host[i];
    sink.put_string32(tensors[i].first);
    sink.put(dtype_code(t.scalar_type(), tensors[i].first));
    sink.put(static_cast<uint32_t>(t.dim()));
    for (int64_t d : t.sizes()) sink.put(d);
    sink.put(static_cast<uint64_t>(t.nbytes()));
    sink.write(t.data_ptr(), t.nbytes());
  }
}

/// Bounds-checked reads from a mapped file, naming the byte offset on failure.
class Cursor {
 public:
  Cursor(const std::string& path, const char* data, size_t begin, size_t end)
      : path_(path), data_(data), pos_(begin), end_(end) {}
  const char* take(size_t n, const char* what) {
    if (n > end_ - pos_) {
      throw DataError(path_ + ": " + what + " at byte " + std::to_string(pos_) + " runs past its section (needs " +
                      std::to_string(n) + " bytes, " + std::to_string(end_ - pos_) + " left)");
    }
    const char* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  std::string string32(const char* what) {
    const auto n = get<uint32_t>(what);
    const char* p = take(n, what);
    return std::string(p, n);
  }
  size_t pos() const { return pos_; }
  bool done() const { return pos_ == end_; }

 private:
  const std::string& path_;
  const char* data_;
  size_t pos_, end_;
};

bool is_step_file(const std::string& name, int64_t* step) {
  if (!strings::starts_with(name, "step-") || !strings::ends_with(name, ".ckpt")) return false;
  const std::string digits = name.substr(5, name.size() - 10);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return false;
  *step = std::stoll(digits);
  return true;
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointContents& c) {
  files::AtomicFile file(path);
  Sink sink(file);
  sink.write(kMagic, sizeof kMagic);
  sink.put(kCheckpointFormatVersion);
  write_bytes_section(sink, checkpoint_section::kMeta, c.meta_json);
  write_bytes_section(sink, checkpoint_section::kConfig, c.config_yaml);
  write_table_section(sink, checkpoint_section::kModel, c.model);
  write_table_section(sink, checkpoint_section::kOptimizer, c.optimizer);
  if (!c.ema.empty()) write_table_section(sink, checkpoint_section::kEma, c.ema);
  write_table_section(sink, checkpoint_section::kRng, c.rng);
  for (const auto& [name, bytes] : c.artifacts) {
    write_bytes_section(sink, std::string(checkpoint_section::kArtifactPrefix) + name, bytes);
  }
  const uint64_t trailer_offset = sink.offset();
  const uint32_t crc = sink.crc();
  file.write(kEndMagic, sizeof kEndMagic);
  file.write(&trailer_offset, sizeof trailer_offset);
  file.write(&crc, sizeof crc);
  file.commit();
}

CheckpointFile::CheckpointFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open checkpoint: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw DataError(path + ": cannot stat checkpoint: " + std::strerror(errno));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < kHeaderSize + kTrailerSize) {
    ::close(fd);
    throw DataError(path + ": truncated checkpoint: " + std::to_string(size_) + " bytes, shorter than header and trailer (" +
                    std::to_string(kHeaderSize + kTrailerSize) + ")");
  }
  void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw DataError(path + ": cannot map checkpoint: " + std::strerror(errno));
  data_ = static_cast<const char*>(map);
  try {
    if (std::memcmp(data_, kMagic, sizeof kMagic) != 0) {
      throw DataError(path + ": not a kmidi checkpoint (no KMIDICKP magic at byte 0)");
    }
    std::memcpy(&version_, data_ + 8, 4);
    if (version_ == 0 || version_ > kCheckpointFormatVersion) {
      throw DataError(path + ": checkpoint format version " + std::to_string(version_) +
                      " is not supported by this kmidi (reads 1.." + std::to_string(kCheckpointFormatVersion) +
                      "); use a newer kmidi");
    }
    const char* trailer = data_ + size_ - kTrailerSize;
    uint64_t trailer_offset = 0;
    uint32_t stored_crc = 0;
    std::memcpy(&trailer_offset, trailer + 8, 8);
    std::memcpy(&stored_crc, trailer + 16, 4);
    if (std::memcmp(trailer, kEndMagic, sizeof kEndMagic) != 0 || trailer_offset != size_ - kTrailerSize) {
      throw DataError(path + ": truncated or incomplete checkpoint: no end marker at byte " +
                      std::to_string(size_ - kTrailerSize) + " (" + std::to_string(size_) + " bytes)");
    }
    const uint32_t crc = hash::crc32c_extend(0, data_, size_ - kTrailerSize);
    if (crc != stored_crc) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "checksum mismatch (stored %08x, computed %08x)", stored_crc, crc);
      throw DataError(path + ": corrupt checkpoint: " + buf);
    }
    Cursor cur(path_, data_, kHeaderSize, size_ - kTrailerSize);
    while (!cur.done()) {
      const std::string name = cur.string32("section name");
      const auto length = cur.get<uint64_t>("section length");
      const size_t offset = cur.pos();
      cur.take(length, ("section '" + name + "'").c_str());
      sections_[name] = {offset, static_cast<size_t>(length)};
    }
  } catch (...) {
    ::munmap(const_cast<char*>(data_), size_);
    data_ = nullptr;
    throw;
  }
}

CheckpointFile::~CheckpointFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

std::string_view CheckpointFile::bytes(const std::string& section) const {
  const auto it = sections_.find(section);
  if (it == sections_.end()) throw DataError(path_ + ": checkpoint has no '" + section + "' section");
  return std::string_view(data_ + it->second.first, it->second.second);
}

NamedTensorList CheckpointFile::tensors(const std::string& section) const {
  const auto it = sections_.find(section);
  if (it == sections_.end()) throw DataError(path_ + ": checkpoint has no '" + section + "' section");
  Cursor cur(path_, data_, it->second.first, it->second.first + it->second.second);
  const auto count = cur.get<uint32_t>("tensor count");
  NamedTensorList out;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t at_byte = cur.pos();
    std::string name = cur.string32("tensor name");
    const auto code = cur.get<uint8_t>("tensor dtype");
    const DtypeCode* dtype = nullptr;
    for (const auto& d : kDtypes) {
      if (d.code == code) dtype = &d;
    }
    if (!dtype) {
      throw DataError(path_ + ": section '" + section + "' tensor '" + name + "' at byte " + std::to_string(at_byte) +
                      " has unknown dtype code " + std::to_string(code));
    }
    const auto rank = cur.get<uint32_t>("tensor rank");
    if (rank > 16) throw DataError(path_ + ": tensor '" + name + "' at byte " + std::to_string(at_byte) + " has rank " + std::to_string(rank));
    std::vector<int64_t> dims(rank);
    for (auto& d : dims) d = cur.get<int64_t>("tensor dims");
    const auto nbytes = cur.get<uint64_t>("tensor byte count");
    // Check the size before allocating: a damaged table must not ask for terabytes.
    __uint128_t expected = c10::elementSize(dtype->type);
    for (int64_t d : dims) {
      if (d < 0) throw DataError(path_ + ": tensor '" + name + "' at byte " + std::to_string(at_byte) + " has a negative dimension");
      expected *= static_cast<uint64_t>(d);
      if (expected > (__uint128_t{1} << 62)) expected = __uint128_t{1} << 62;
    }
    if (expected != nbytes) {
      throw DataError(path_ + ": tensor '" + name + "' at byte " + std::to_string(at_byte) + " stores " +
                      std::to_string(nbytes) + " bytes but " + dtype->name + c10::str(dims) + " needs " +
                      std::to_string(static_cast<uint64_t>(expected)));
    }
    at::Tensor t = torch::empty(dims, torch::TensorOptions().dtype(dtype->type));
    std::memcpy(t.data_ptr(), cur.take(nbytes, "tensor data"), nbytes);
    out.emplace_back(std::move(name), std::move(t));
  }
  if (!cur.done()) throw DataError(path_ + ": section '" + section + "' has trailing bytes at byte " + std::to_string(cur.pos()));
  return out;
}

std::map<std::string, std::string> CheckpointFile::artifacts() const {
  std::map<std::string, std::string> out;
  const std::string prefix = checkpoint_section::kArtifactPrefix;
  for (const auto& [name, where] : sections_) {
    if (strings::starts_with(name, prefix)) out[name.substr(prefix.size())] = std::string(data_ + where.first, where.second);
  }
  return out;
}

CheckpointContents CheckpointFile::read_all() const {
  CheckpointContents c;
  c.meta_json = std::string(bytes(checkpoint_section::kMeta));
  c.config_yaml = std::string(bytes(checkpoint_section::kConfig));
  c.model = tensors(checkpoint_section::kModel);
  c.optimizer = tensors(checkpoint_section::kOptimizer);
  if (has(checkpoint_section::kEma)) c.ema = tensors(checkpoint_section::kEma);
  c.rng = tensors(checkpoint_section::kRng);
  c.artifacts = artifacts();
  return c;
}

std::string checkpoint_problem(const std::string& path) {
  try {
    CheckpointFile file(path);
    return "";
  } catch (const DataError& e) {
    return e.what();
  }
}

void load_named_tensors(const NamedTensorList& saved, const NamedTensorList& target, const std::string& what) {
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, t] : saved) by_name[name] = &t;
  std::vector<std::string> missing, problems;
  for (const auto& [name, t] : target) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      missing.push_back(name);
      continue;
    }
    const at::Tensor& s = *it->second;
    if (s.sizes() != t.sizes()) {
      problems.push_back("'" + name + "' has shape " + c10::str(s.sizes()) + ", the model expects " + c10::str(t.sizes()));
    } else if (s.scalar_type() != t.scalar_type()) {
      problems.push_back("'" + name + "' has dtype " + std::string(c10::toString(s.scalar_type())) +
                         ", the model expects " + c10::toString(t.scalar_type()));
    }
    by_name.erase(it);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : by_name) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !problems.empty()) {
    std::string msg = what + " does not match the model:";
    if (!missing.empty()) msg += " missing " + strings::join(missing, ", ") + ";";
    if (!unexpected.empty()) msg += " unexpected " + strings::join(unexpected, ", ") + ";";
    if (!problems.empty()) msg += " " + strings::join(problems, "; ");
    throw DataError(msg);
  }
  torch::NoGradGuard no_grad;
  std::map<std::string, const at::Tensor*> again;
  for (const auto& [name, t] : saved) again[name] = &t;
  for (const auto& [name, t] : target) {
    at::Tensor dst = t;
    dst.copy_(*again[name]);
  }
}

CheckpointStore::CheckpointStore(std::string dir, int64_t keep_last_k) : dir_(std::move(dir)), keep_last_k_(keep_last_k) {}

std::string CheckpointStore::step_path(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof name, "step-%010lld.ckpt", static_cast<long long>(step));
  return dir_ + "/" + name;
}

std::vector<std::pair<int64_t, std::string>> CheckpointStore::list() const {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    int64_t step = 0;
    if (entry.is_regular_file() && is_step_file(entry.path().filename().string(), &step)) {
      out.emplace_back(step, entry.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void CheckpointStore::save(int64_t step, const CheckpointContents& contents) {
  files::ensure_dir(dir_);
  write_checkpoint(step_path(step), contents);
  auto all = list();
  const int64_t excess = static_cast<int64_t>(all.size()) - keep_last_k_;
  for (int64_t i = 0; i < excess; ++i) {
    std::error_code ec;
    fs::remove(all[static_cast<size_t>(i)].second, ec);
    if (ec) spdlog::warn("cannot remove old checkpoint {}: {}", all[static_cast<size_t>(i)].second, ec.message());
  }
}

void CheckpointStore::mark_best(int64_t step) {
  const std::string source = step_path(step);
  const std::string temp = best_path() + ".tmp.link";
  std::error_code ec;
  fs::remove(temp, ec);
  fs::create_hard_link(source, temp, ec);
  if (ec) {
    // Filesystems without hard links: copy through an atomic file.
    files::write_atomic(best_path(), files::read_all(source));
    return;
  }
  fs::rename(temp, best_path(), ec);
  if (ec) throw DataError(best_path() + ": cannot move best checkpoint into place: " + ec.message());
}

void CheckpointStore::write_artifacts(const std::map<std::string, std::string>& artifacts) const {
  for (const auto& [name, bytes] : artifacts) {
    if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
      throw std::logic_error("task artifact name '" + name + "' must be a plain file name");
    }
    const std::string path = dir_ + "/" + name;
    std::error_code ec;
    if (fs::exists(path, ec) && files::read_all(path) == bytes) continue;
    files::write_atomic(path, bytes);
  }
}

std::optional<std::string> CheckpointStore::latest_valid(std::vector<std::string>* skipped) const {
  const auto all = list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const std::string problem = checkpoint_problem(it->second);
    if (problem.empty()) return it->second;
    spdlog::warn("skipping {}; falling back to an older checkpoint", problem);
    if (skipped) skipped->push_back(problem);
  }
  return std::nullopt;
}

void CheckpointStore::remove_stale_temporaries() const {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".ckpt.tmp.") != std::string::npos) {
      spdlog::info("removing {} left by an interrupted checkpoint write", entry.path().string());
      fs::remove(entry.path(), ec);
    }
  }
}

}  // namespace kmidi::train

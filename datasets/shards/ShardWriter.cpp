#include "datasets/shards/ShardWriter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <thread>

#include <zlib.h>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/shards/detail/Hdf5.h"

namespace kmidi::shards {

using detail::check;
using detail::Handle;

namespace fs = std::filesystem;

namespace {

constexpr size_t kFlushTokens = size_t{1} << 20;

Handle create_dataset(hid_t parent, const std::string& name, hid_t type, int64_t chunk, int deflate,
                      const std::string& where) {
  const std::string what = "cannot create dataset '" + name + "'";
  hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunks[1] = {static_cast<hsize_t>(chunk)};
  Handle space = detail::space_handle(H5Screate_simple(1, dims, maxdims), where, what);
  Handle dcpl = detail::plist_handle(H5Pcreate(H5P_DATASET_CREATE), where, what);
  check(H5Pset_chunk(dcpl.get(), 1, chunks), where, what);
  // No creation times in object headers: the same pieces make the same bytes.
  check(H5Pset_obj_track_times(dcpl.get(), false), where, what);
  if (deflate > 0) {
    check(H5Pset_shuffle(dcpl.get()), where, what);
    check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(deflate)), where, what);
  }
  return detail::dataset_handle(
      H5Dcreate2(parent, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), where, what);
}

/// Appends `count` elements of `mem_type` at `at` in a 1-D extendible dataset.
void append(hid_t dataset, hid_t mem_type, const void* data, int64_t at, int64_t count, const std::string& where,
            const std::string& name) {
  if (count == 0) return;
  const std::string what = "cannot write to '" + name + "'";
  hsize_t size[1] = {static_cast<hsize_t>(at + count)};
  check(H5Dset_extent(dataset, size), where, what);
  Handle file_space = detail::space_handle(H5Dget_space(dataset), where, what);
  hsize_t start[1] = {static_cast<hsize_t>(at)}, n[1] = {static_cast<hsize_t>(count)};
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, n, nullptr), where, what);
  Handle mem_space = detail::space_handle(H5Screate_simple(1, n, nullptr), where, what);
  check(H5Dwrite(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data), where, what);
}

/// One chunk of token ids as HDF5's shuffle and deflate filters would store
/// it: little-endian elements of `width` bytes, byte planes transposed, then
/// zlib at `level`. Identical bytes to the filters' own output, so readers
/// see an ordinary filtered chunk.
std::vector<unsigned char> filtered_chunk(const int32_t* ids, size_t count, size_t width, int level) {
  std::vector<unsigned char> planes(count * width);
  for (size_t i = 0; i < count; ++i) {
    const auto v = static_cast<uint32_t>(ids[i]);
    for (size_t b = 0; b < width; ++b) planes[b * count + i] = static_cast<unsigned char>(v >> (8 * b));
  }
  uLongf size = compressBound(static_cast<uLong>(planes.size()));
  std::vector<unsigned char> out(size);
  if (compress2(out.data(), &size, planes.data(), static_cast<uLong>(planes.size()), level) != Z_OK) {
    throw DataError("zlib could not compress a token chunk");
  }
  out.resize(size);
  return out;
}

/// Compresses `n_chunks` whole chunks on all cores (HDF5 filters one chunk at
/// a time on the calling thread, which made compression the slowest part of
/// a large prepare) and writes them in order with H5Dwrite_chunk.
void write_whole_chunks(hid_t dataset, const int32_t* ids, int64_t at, int64_t n_chunks, int64_t chunk, size_t width,
                        int level, const std::string& where) {
  std::vector<std::vector<unsigned char>> filtered(static_cast<size_t>(n_chunks));
  const int64_t workers = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, n_chunks);
  std::vector<std::thread> threads;
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::atomic<bool> failed{false};
  for (int64_t w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      try {
        for (int64_t c = next++; c < n_chunks && !failed; c = next++) {
          filtered[static_cast<size_t>(c)] = filtered_chunk(ids + c * chunk, static_cast<size_t>(chunk), width, level);
        }
      } catch (...) {
        if (!failed.exchange(true)) failure = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  const std::string what = "cannot write to 'tokens'";
  hsize_t size[1] = {static_cast<hsize_t>(at + n_chunks * chunk)};
  check(H5Dset_extent(dataset, size), where, what);
  for (int64_t c = 0; c < n_chunks; ++c) {
    const hsize_t offset[1] = {static_cast<hsize_t>(at + c * chunk)};
    const auto& bytes = filtered[static_cast<size_t>(c)];
    check(H5Dwrite_chunk(dataset, H5P_DEFAULT, 0, offset, bytes.size(), bytes.data()), where, what);
  }
}

/// A whole 1-D dataset written at once.
void write_column(hid_t parent, const std::string& name, hid_t file_type, hid_t mem_type, const void* data,
                  int64_t count, int64_t chunk, int deflate, const std::string& where) {
  Handle d = create_dataset(parent, name, file_type, std::max<int64_t>(1, std::min<int64_t>(chunk, std::max<int64_t>(count, 1))),
                            deflate, where);
  append(d.get(), mem_type, data, 0, count, where, name);
  check(d.close(), where, "cannot close '" + name + "'");
}

void write_strings(hid_t parent, const std::string& name, const std::vector<const char*>& values, int64_t chunk,
                   int deflate, const std::string& where) {
  Handle type = detail::vl_string_type(where);
  write_column(parent, name, type.get(), type.get(), values.data(), static_cast<int64_t>(values.size()), chunk, deflate,
               where);
}

std::string temp_name(const std::string& path) {
  static std::atomic<int> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

struct ShardWriter::State {
  std::string split;
  ShardVocab vocab;
  std::vector<LabelColumn> labels;
  ShardWriterOptions options;
  Handle file;
  Handle tokens;
  bool narrow = true;  // int16 on disk
  std::vector<int32_t> pending;
  int64_t written = 0;  // tokens already in the file
  std::vector<int64_t> offsets{0};
  std::vector<ShardItem> items;
};

ShardWriter::ShardWriter(std::string path, std::string split, ShardVocab vocab, std::vector<LabelColumn> labels,
                         ShardWriterOptions options)
    : path_(std::move(path)), temp_(temp_name(path_)), state_(std::make_unique<State>()) {
  detail::quiet_errors();
  if (options.chunk_elements < 1) throw UsageError(path_ + ": chunk_elements must be positive");
  if (options.deflate_level < 0 || options.deflate_level > 9) throw UsageError(path_ + ": deflate_level must be in 0..9");
  if (vocab.vocab_size <= 0) throw UsageError(path_ + ": vocab_size must be positive");
  State& s = *state_;
  s.split = std::move(split);
  s.vocab = std::move(vocab);
  s.labels = std::move(labels);
  s.options = std::move(options);
  s.narrow = s.vocab.vocab_size <= 32767;
  const fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty()) files::ensure_dir(parent.string());
  if (s.options.deflate_level > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) {
    throw DataError(path_ + ": this HDF5 library has no deflate filter");
  }
  Handle fapl = detail::plist_handle(H5Pcreate(H5P_FILE_ACCESS), temp_, "cannot create file access properties");
  // Cluster file systems often refuse locks; HDF5 then carries on without them.
  check(H5Pset_file_locking(fapl.get(), true, true), temp_, "cannot set file locking");
  s.file = detail::file_handle(H5Fcreate(temp_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), temp_,
                               "cannot create shard file");
  s.tokens = create_dataset(s.file.get(), "tokens", s.narrow ? H5T_STD_I16LE : H5T_STD_I32LE, s.options.chunk_elements,
                            s.options.deflate_level, temp_);
  s.pending.reserve(kFlushTokens + 65536);
}

ShardWriter::~ShardWriter() {
  if (committed_) return;
  state_->tokens.reset();
  state_->file.reset();
  ::unlink(temp_.c_str());
}

int64_t ShardWriter::num_items() const { return static_cast<int64_t>(state_->items.size()); }
int64_t ShardWriter::num_tokens() const { return state_->offsets.back(); }

void ShardWriter::add(const int32_t* tokens, size_t count, const ShardItem& item) {
  State& s = *state_;
  if (committed_) throw UsageError(path_ + ": add after commit");
  for (size_t i = 0; i < count; ++i) {
    if (tokens[i] < 0 || tokens[i] >= s.vocab.vocab_size) {
      throw UsageError(path_ + ": token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) + " of '" +
                       item.source + "' is outside [0, " + std::to_string(s.vocab.vocab_size) + ")");
    }
  }
  if (item.labels.size() != s.labels.size()) {
    throw UsageError(path_ + ": '" + item.source + "' has " + std::to_string(item.labels.size()) +
                     " label values for " + std::to_string(s.labels.size()) + " label columns");
  }
  if (item.sha256.size() != 64) throw UsageError(path_ + ": '" + item.source + "' needs a 64-character sha256");
  s.pending.insert(s.pending.end(), tokens, tokens + count);
  s.offsets.push_back(s.offsets.back() + static_cast<int64_t>(count));
  s.items.push_back(item);
  if (s.pending.size() >= kFlushTokens) flush_tokens();
}

void ShardWriter::flush_tokens() {
  State& s = *state_;
  const int64_t chunk = s.options.chunk_elements;
  const int64_t whole = s.written % chunk == 0 ? static_cast<int64_t>(s.pending.size()) / chunk : 0;
  if (s.options.deflate_level > 0 && whole > 1) {
    write_whole_chunks(s.tokens.get(), s.pending.data(), s.written, whole, chunk, s.narrow ? 2 : 4,
                       s.options.deflate_level, temp_);
    s.written += whole * chunk;
    s.pending.erase(s.pending.begin(), s.pending.begin() + whole * chunk);
    return;
  }
  append(s.tokens.get(), H5T_NATIVE_INT32, s.pending.data(), s.written, static_cast<int64_t>(s.pending.size()), temp_,
         "tokens");
  s.written += static_cast<int64_t>(s.pending.size());
  s.pending.clear();
}

void ShardWriter::commit() {
  if (committed_) return;
  State& s = *state_;
  flush_tokens();
  if (!s.pending.empty()) flush_tokens();  // the last, partial chunk
  const hid_t root = s.file.get();
  const int64_t n = num_items();
  const int64_t chunk = s.options.chunk_elements;
  const int deflate = s.options.deflate_level;
  write_column(root, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, s.offsets.data(), n + 1, chunk, deflate, temp_);

  Handle items_gcpl = detail::plist_handle(H5Pcreate(H5P_GROUP_CREATE), temp_, "cannot create group properties");
  check(H5Pset_obj_track_times(items_gcpl.get(), false), temp_, "cannot create group properties");
  Handle items = detail::group_handle(H5Gcreate2(root, "items", H5P_DEFAULT, items_gcpl.get(), H5P_DEFAULT), temp_,
                                      "cannot create group 'items'");
  std::vector<const char*> texts(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) texts[static_cast<size_t>(i)] = s.items[static_cast<size_t>(i)].source.c_str();
  write_strings(items.get(), "source", texts, chunk, deflate, temp_);
  for (int64_t i = 0; i < n; ++i) texts[static_cast<size_t>(i)] = s.items[static_cast<size_t>(i)].song_id.c_str();
  write_strings(items.get(), "song_id", texts, chunk, deflate, temp_);
  {
    std::string hashes;
    hashes.reserve(static_cast<size_t>(n) * 64);
    for (const ShardItem& it : s.items) hashes += it.sha256;
    Handle type = detail::type_handle(H5Tcopy(H5T_C_S1), temp_, "cannot create a string type");
    check(H5Tset_size(type.get(), 64), temp_, "cannot size a string type");
    check(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), temp_, "cannot pad a string type");
    write_column(items.get(), "sha256", type.get(), type.get(), hashes.data(), n, chunk, deflate, temp_);
  }
  std::vector<int64_t> notes;
  std::vector<double> seconds;
  for (const ShardItem& it : s.items) {
    notes.push_back(it.num_notes);
    seconds.push_back(it.duration_s);
  }
  write_column(items.get(), "num_notes", H5T_STD_I64LE, H5T_NATIVE_INT64, notes.data(), n, chunk, deflate, temp_);
  write_column(items.get(), "duration_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, seconds.data(), n, chunk, deflate, temp_);
  check(items.close(), temp_, "cannot close group 'items'");

  // Label columns keep the config's order: the group tracks creation order.
  Handle gcpl = detail::plist_handle(H5Pcreate(H5P_GROUP_CREATE), temp_, "cannot create group properties");
  check(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), temp_,
        "cannot track label order");
  check(H5Pset_obj_track_times(gcpl.get(), false), temp_, "cannot create group properties");
  Handle labels = detail::group_handle(H5Gcreate2(root, "labels", H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), temp_,
                                       "cannot create group 'labels'");
  for (size_t c = 0; c < s.labels.size(); ++c) {
    const LabelColumn& col = s.labels[c];
    if (col.kind == LabelKind::kNumber) {
      std::vector<double> values;
      for (const ShardItem& it : s.items) values.push_back(it.labels[c].number);
      write_column(labels.get(), col.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data(), n, chunk, deflate, temp_);
    } else {
      for (int64_t i = 0; i < n; ++i) texts[static_cast<size_t>(i)] = s.items[static_cast<size_t>(i)].labels[c].text.c_str();
      write_strings(labels.get(), col.name, texts, chunk, deflate, temp_);
    }
    Handle d = detail::dataset_handle(H5Dopen2(labels.get(), col.name.c_str(), H5P_DEFAULT), temp_,
                                      "cannot reopen label '" + col.name + "'");
    detail::write_attribute(d.get(), "kind", col.kind == LabelKind::kNumber ? "number" : "text", temp_);
  }
  check(labels.close(), temp_, "cannot close group 'labels'");

  detail::write_attribute(root, "format", kShardFormat, temp_);
  detail::write_attribute(root, "format_version", kShardFormatVersion, temp_);
  detail::write_attribute(root, "split", s.split, temp_);
  detail::write_attribute(root, "vocab_size", int64_t{s.vocab.vocab_size}, temp_);
  detail::write_attribute(root, "pad_id", int64_t{s.vocab.pad_id}, temp_);
  detail::write_attribute(root, "tokenizer_sha256", s.vocab.tokenizer_sha256, temp_);
  detail::write_attribute(root, "run_id", s.options.run_id, temp_);
  detail::write_attribute(root, "num_items", n, temp_);
  detail::write_attribute(root, "num_tokens", num_tokens(), temp_);

  check(s.tokens.close(), temp_, "cannot close 'tokens'");
  check(H5Fflush(root, H5F_SCOPE_GLOBAL), temp_, "cannot flush the shard");
  check(s.file.close(), temp_, "cannot close the shard");
  const int fd = ::open(temp_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string reason = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw DataError(temp_ + ": fsync failed: " + reason);
  }
  ::close(fd);
  files::fault_point("shard_commit", path_);
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    throw DataError(path_ + ": cannot rename " + temp_ + " into place: " + std::strerror(errno));
  }
  committed_ = true;
  const std::string dir = fs::path(path_).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace kmidi::shards

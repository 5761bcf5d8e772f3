#include "datasets/shards/ShardWriter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include <libdeflate.h>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/shards/detail/Hdf5.h"

namespace kmidi::shards {

using detail::check;
using detail::Handle;

namespace fs = std::filesystem;

namespace {

constexpr size_t kFlushTokens = size_t{1} << 20;

/// Access properties for a 1-D chunked dataset of `type`. Appends touch only
/// the last chunk: a cache of two keeps a writer's memory flat (the default
/// 1 MB per dataset, filled over a long shard, does not).
Handle dataset_access(hid_t type, int64_t chunk, const std::string& where, const std::string& what) {
  Handle dapl = detail::plist_handle(H5Pcreate(H5P_DATASET_ACCESS), where, what);
  const size_t chunk_bytes = static_cast<size_t>(chunk) * std::max<size_t>(H5Tget_size(type), 16);
  check(H5Pset_chunk_cache(dapl.get(), 11, 2 * chunk_bytes, 1.0), where, what);
  return dapl;
}

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
  const Handle dapl = dataset_access(type, chunk, where, what);
  return detail::dataset_handle(
      H5Dcreate2(parent, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), dapl.get()), where, what);
}

Handle open_dataset(hid_t parent, const std::string& name, hid_t type, int64_t chunk, const std::string& where) {
  const std::string what = "cannot reopen dataset '" + name + "'";
  const Handle dapl = dataset_access(type, chunk, where, what);
  return detail::dataset_handle(H5Dopen2(parent, name.c_str(), dapl.get()), where, what);
}

Handle open_group(hid_t parent, const std::string& name, const std::string& where) {
  return detail::group_handle(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), where, "cannot reopen group '" + name + "'");
}

/// The shard file's access properties, for creating it and for reopening it
/// after park().
Handle file_access(const std::string& where) {
  Handle fapl = detail::plist_handle(H5Pcreate(H5P_FILE_ACCESS), where, "cannot create file access properties");
  // Cluster file systems often refuse locks; HDF5 then carries on without them.
  check(H5Pset_file_locking(fapl.get(), true, true), where, "cannot set file locking");
  // The chunk index grows with the shard; HDF5's metadata cache would follow
  // it up to 32 MB. A writer only appends, so 512 KB is enough.
  H5AC_cache_config_t mdc;
  mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  check(H5Pget_mdc_config(fapl.get(), &mdc), where, "cannot read the metadata cache settings");
  mdc.set_initial_size = true;
  mdc.initial_size = size_t{256} << 10;
  mdc.max_size = size_t{512} << 10;
  mdc.min_size = std::min(mdc.min_size, mdc.initial_size);
  check(H5Pset_mdc_config(fapl.get(), &mdc), where, "cannot size the metadata cache");
  // HDF5 1.10's format indexes the chunks of an appended dataset with an
  // extensible array; the 1.8 default's B-tree held ~12 MB more in memory at
  // 600 M tokens. Readers need HDF5 >= 1.10 (Debian 12 ships 1.10.8).
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), where, "cannot select the HDF5 1.10 format");
  return fapl;
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

struct CompressorFree {
  void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
};
using Compressor = std::unique_ptr<libdeflate_compressor, CompressorFree>;

/// Compresses whole chunks of token ids on all cores (HDF5 filters one chunk
/// at a time on the calling thread, which made compression the slowest part
/// of a large prepare) and writes them in order with H5Dwrite_chunk. Each
/// chunk is stored as HDF5's shuffle and deflate filters store it:
/// little-endian elements of `width` bytes, byte planes transposed, then a
/// zlib stream (libdeflate's, which HDF5's deflate filter decodes like its
/// own). Compressors and buffers are made once, on the writer's thread, and
/// reused: a long shard must not grow the writer's memory.
class ChunkCompressor {
 public:
  ChunkCompressor(int level, int64_t chunk, size_t width) : chunk_(static_cast<size_t>(chunk)), width_(width) {
    const size_t workers = std::max(1u, std::thread::hardware_concurrency());
    for (size_t w = 0; w < workers; ++w) {
      compressors_.emplace_back(libdeflate_alloc_compressor(level));
      if (!compressors_.back()) throw DataError("libdeflate could not allocate a compressor (level " + std::to_string(level) + ")");
      planes_.emplace_back(chunk_ * width_);
    }
    bound_ = libdeflate_zlib_compress_bound(compressors_[0].get(), chunk_ * width_);
    out_.reserve(static_cast<size_t>(kBatch) * bound_);
  }

  /// Writes `n_chunks` whole chunks starting at element `at`, kBatch at a time.
  void write(hid_t dataset, const int32_t* ids, int64_t at, int64_t n_chunks, const std::string& where) {
    for (int64_t done = 0; done < n_chunks; done += kBatch) {
      write_batch(dataset, ids + done * static_cast<int64_t>(chunk_), at + done * static_cast<int64_t>(chunk_),
                  std::min<int64_t>(kBatch, n_chunks - done), where);
    }
  }

 private:
  static constexpr int64_t kBatch = 64;  // chunks compressed at once: bounds the output buffer

  void write_batch(hid_t dataset, const int32_t* ids, int64_t at, int64_t n_chunks, const std::string& where) {
    const size_t n = static_cast<size_t>(n_chunks);
    out_.resize(n * bound_);
    sizes_.assign(n, 0);
    std::atomic<size_t> next{0};
    auto work = [&](size_t w) {
      for (size_t c = next++; c < n; c = next++) sizes_[c] = compress(w, ids + c * chunk_, &out_[c * bound_]);
    };
    std::vector<std::thread> threads;
    for (size_t w = 1; w < std::min(compressors_.size(), n); ++w) threads.emplace_back(work, w);
    work(0);
    for (std::thread& t : threads) t.join();
    const std::string what = "cannot write to 'tokens'";
    if (std::find(sizes_.begin(), sizes_.end(), size_t{0}) != sizes_.end()) {
      throw DataError(where + ": libdeflate could not compress a token chunk");
    }
    hsize_t size[1] = {static_cast<hsize_t>(at + n_chunks * static_cast<int64_t>(chunk_))};
    check(H5Dset_extent(dataset, size), where, what);
    for (size_t c = 0; c < n; ++c) {
      const hsize_t offset[1] = {static_cast<hsize_t>(at) + c * chunk_};
      check(H5Dwrite_chunk(dataset, H5P_DEFAULT, 0, offset, sizes_[c], &out_[c * bound_]), where, what);
    }
  }

  /// One chunk into `out` (bound_ bytes); returns its size, 0 on failure.
  size_t compress(size_t worker, const int32_t* ids, unsigned char* out) {
    std::vector<unsigned char>& planes = planes_[worker];
    for (size_t i = 0; i < chunk_; ++i) {
      const auto v = static_cast<uint32_t>(ids[i]);
      for (size_t b = 0; b < width_; ++b) planes[b * chunk_ + i] = static_cast<unsigned char>(v >> (8 * b));
    }
    return libdeflate_zlib_compress(compressors_[worker].get(), planes.data(), planes.size(), out, bound_);
  }

  size_t chunk_, width_, bound_ = 0;
  std::vector<Compressor> compressors_;
  std::vector<std::vector<unsigned char>> planes_;
  std::vector<unsigned char> out_;
  std::vector<size_t> sizes_;
};

std::string temp_name(const std::string& path) {
  static std::atomic<int> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

/// Item metadata is appended every kItemFlush items, as tokens are every
/// kFlushTokens: a writer's memory does not grow with the shard.
constexpr size_t kItemFlush = 4096;

struct ShardWriter::State {
  std::string split;
  ShardVocab vocab;
  std::vector<LabelColumn> labels;
  ShardWriterOptions options;
  Handle file;
  Handle tokens;
  bool narrow = true;  // int16 on disk
  std::vector<int32_t> pending;
  std::unique_ptr<ChunkCompressor> compressor;  // made at the first whole-chunk flush
  int64_t written = 0;  // tokens already in the file
  int64_t total_tokens = 0;
  // Per-item columns (layout in Shard.h) and the items not yet appended.
  Handle vl_string, sha256_type;
  Handle offsets, items_group, source, song_id, sha256, num_notes, duration_s, labels_group;
  std::vector<Handle> label_columns;
  std::vector<ShardItem> pending_items;
  std::vector<int64_t> pending_ends;  // offsets[i + 1] of the pending items
  int64_t items_written = 0;

  bool parked = false;  // every HDF5 object below is closed until reopen()

  void create_item_columns(const std::string& where);
  void flush_items(const std::string& where);
  hid_t token_type() const { return narrow ? H5T_STD_I16LE : H5T_STD_I32LE; }
  /// Closes the file and every object in it, in order (a close can be where
  /// data reaches the disk, so failures are reported).
  void close_objects(const std::string& where);
  /// Opens again what close_objects() closed.
  void reopen(const std::string& where);
};

void ShardWriter::State::create_item_columns(const std::string& where) {
  const int64_t chunk = options.chunk_elements;
  const int deflate = options.deflate_level;
  const hid_t root = file.get();
  vl_string = detail::vl_string_type(where);
  sha256_type = detail::type_handle(H5Tcopy(H5T_C_S1), where, "cannot create a string type");
  check(H5Tset_size(sha256_type.get(), 64), where, "cannot size a string type");
  check(H5Tset_strpad(sha256_type.get(), H5T_STR_NULLPAD), where, "cannot pad a string type");
  offsets = create_dataset(root, "offsets", H5T_STD_I64LE, chunk, deflate, where);
  const int64_t zero = 0;
  append(offsets.get(), H5T_NATIVE_INT64, &zero, 0, 1, where, "offsets");

  Handle items_gcpl = detail::plist_handle(H5Pcreate(H5P_GROUP_CREATE), where, "cannot create group properties");
  check(H5Pset_obj_track_times(items_gcpl.get(), false), where, "cannot create group properties");
  items_group = detail::group_handle(H5Gcreate2(root, "items", H5P_DEFAULT, items_gcpl.get(), H5P_DEFAULT), where,
                                     "cannot create group 'items'");
  source = create_dataset(items_group.get(), "source", vl_string.get(), chunk, deflate, where);
  song_id = create_dataset(items_group.get(), "song_id", vl_string.get(), chunk, deflate, where);
  sha256 = create_dataset(items_group.get(), "sha256", sha256_type.get(), chunk, deflate, where);
  num_notes = create_dataset(items_group.get(), "num_notes", H5T_STD_I64LE, chunk, deflate, where);
  duration_s = create_dataset(items_group.get(), "duration_s", H5T_IEEE_F64LE, chunk, deflate, where);

  // Label columns keep the config's order: the group tracks creation order.
  Handle gcpl = detail::plist_handle(H5Pcreate(H5P_GROUP_CREATE), where, "cannot create group properties");
  check(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), where,
        "cannot track label order");
  check(H5Pset_obj_track_times(gcpl.get(), false), where, "cannot create group properties");
  labels_group = detail::group_handle(H5Gcreate2(root, "labels", H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), where,
                                      "cannot create group 'labels'");
  for (const LabelColumn& col : labels) {
    const bool number = col.kind == LabelKind::kNumber;
    label_columns.push_back(
        create_dataset(labels_group.get(), col.name, number ? H5T_IEEE_F64LE : vl_string.get(), chunk, deflate, where));
    detail::write_attribute(label_columns.back().get(), "kind", number ? "number" : "text", where);
  }
}

void ShardWriter::State::flush_items(const std::string& where) {
  const int64_t n = static_cast<int64_t>(pending_items.size());
  if (n == 0) return;
  const int64_t at = items_written;
  append(offsets.get(), H5T_NATIVE_INT64, pending_ends.data(), at + 1, n, where, "offsets");
  std::vector<const char*> texts(static_cast<size_t>(n));
  auto append_texts = [&](hid_t dataset, const std::string& name, auto field) {
    for (int64_t i = 0; i < n; ++i) texts[static_cast<size_t>(i)] = field(pending_items[static_cast<size_t>(i)]).c_str();
    append(dataset, vl_string.get(), texts.data(), at, n, where, name);
  };
  append_texts(source.get(), "source", [](const ShardItem& it) -> const std::string& { return it.source; });
  append_texts(song_id.get(), "song_id", [](const ShardItem& it) -> const std::string& { return it.song_id; });
  std::string hashes;
  hashes.reserve(static_cast<size_t>(n) * 64);
  for (const ShardItem& it : pending_items) hashes += it.sha256;
  append(sha256.get(), sha256_type.get(), hashes.data(), at, n, where, "sha256");
  std::vector<int64_t> notes;
  std::vector<double> seconds;
  for (const ShardItem& it : pending_items) {
    notes.push_back(it.num_notes);
    seconds.push_back(it.duration_s);
  }
  append(num_notes.get(), H5T_NATIVE_INT64, notes.data(), at, n, where, "num_notes");
  append(duration_s.get(), H5T_NATIVE_DOUBLE, seconds.data(), at, n, where, "duration_s");
  for (size_t c = 0; c < labels.size(); ++c) {
    if (labels[c].kind == LabelKind::kNumber) {
      std::vector<double> values;
      for (const ShardItem& it : pending_items) values.push_back(it.labels[c].number);
      append(label_columns[c].get(), H5T_NATIVE_DOUBLE, values.data(), at, n, where, labels[c].name);
    } else {
      append_texts(label_columns[c].get(), labels[c].name,
                   [c](const ShardItem& it) -> const std::string& { return it.labels[c].text; });
    }
  }
  items_written += n;
  pending_items.clear();
  pending_ends.clear();
}

void ShardWriter::State::close_objects(const std::string& where) {
  for (Handle& d : label_columns) check(d.close(), where, "cannot close a label column");
  check(labels_group.close(), where, "cannot close group 'labels'");
  for (Handle* d : {&offsets, &source, &song_id, &sha256, &num_notes, &duration_s}) {
    check(d->close(), where, "cannot close an item column");
  }
  check(items_group.close(), where, "cannot close group 'items'");
  check(tokens.close(), where, "cannot close 'tokens'");
  check(file.close(), where, "cannot close the shard");
}

void ShardWriter::State::reopen(const std::string& where) {
  const Handle fapl = file_access(where);
  file = detail::file_handle(H5Fopen(where.c_str(), H5F_ACC_RDWR, fapl.get()), where, "cannot reopen the shard");
  const int64_t chunk = options.chunk_elements;
  tokens = open_dataset(file.get(), "tokens", token_type(), chunk, where);
  offsets = open_dataset(file.get(), "offsets", H5T_STD_I64LE, chunk, where);
  items_group = open_group(file.get(), "items", where);
  source = open_dataset(items_group.get(), "source", vl_string.get(), chunk, where);
  song_id = open_dataset(items_group.get(), "song_id", vl_string.get(), chunk, where);
  sha256 = open_dataset(items_group.get(), "sha256", sha256_type.get(), chunk, where);
  num_notes = open_dataset(items_group.get(), "num_notes", H5T_STD_I64LE, chunk, where);
  duration_s = open_dataset(items_group.get(), "duration_s", H5T_IEEE_F64LE, chunk, where);
  labels_group = open_group(file.get(), "labels", where);
  for (size_t c = 0; c < labels.size(); ++c) {
    const hid_t type = labels[c].kind == LabelKind::kNumber ? H5T_IEEE_F64LE : vl_string.get();
    label_columns[c] = open_dataset(labels_group.get(), labels[c].name, type, chunk, where);
  }
  parked = false;
}

ShardWriter::ShardWriter(std::string path, std::string split, ShardVocab vocab, std::vector<LabelColumn> labels,
                         ShardWriterOptions options)
    : path_(std::move(path)), temp_(temp_name(path_)), state_(std::make_unique<State>()) {
  detail::quiet_errors();
  detail::bound_free_lists();
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
  const Handle fapl = file_access(temp_);
  // No times in the root group's header either (the 1.10 format keeps them there).
  Handle fcpl = detail::plist_handle(H5Pcreate(H5P_FILE_CREATE), temp_, "cannot create file creation properties");
  check(H5Pset_obj_track_times(fcpl.get(), false), temp_, "cannot create file creation properties");
  s.file = detail::file_handle(H5Fcreate(temp_.c_str(), H5F_ACC_EXCL, fcpl.get(), fapl.get()), temp_,
                               "cannot create shard file");
  s.tokens = create_dataset(s.file.get(), "tokens", s.token_type(), s.options.chunk_elements, s.options.deflate_level, temp_);
  s.create_item_columns(temp_);
}

ShardWriter::~ShardWriter() {
  if (committed_) return;
  state_.reset();  // closes every dataset, then the file (members close in reverse order)
  ::unlink(temp_.c_str());
}

int64_t ShardWriter::num_items() const {
  return state_->items_written + static_cast<int64_t>(state_->pending_items.size());
}
int64_t ShardWriter::num_tokens() const { return state_->total_tokens; }

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
  if (s.parked) s.reopen(temp_);
  const size_t flush_at = std::max(kFlushTokens, static_cast<size_t>(s.options.chunk_elements));
  // Write out before growing: a grown buffer would briefly exist twice.
  if (s.pending.size() + count > s.pending.capacity()) flush_whole_chunks();
  if (s.pending.size() + count > s.pending.capacity()) s.pending.reserve(std::max(flush_at, s.pending.size() + count) + 65536);
  s.pending.insert(s.pending.end(), tokens, tokens + count);
  s.total_tokens += static_cast<int64_t>(count);
  s.pending_ends.push_back(s.total_tokens);
  s.pending_items.push_back(item);
  if (s.pending.size() >= flush_at) flush_whole_chunks();
  if (s.pending_items.size() >= kItemFlush) s.flush_items(temp_);
}

/// Writes the pending tokens that fill whole chunks (compressed on all cores
/// when deflating) and keeps the rest, so every chunk but the shard's last is
/// written once, whole.
void ShardWriter::flush_whole_chunks() {
  State& s = *state_;
  const int64_t chunk = s.options.chunk_elements;
  const int64_t whole = static_cast<int64_t>(s.pending.size()) / chunk;
  if (whole == 0) return;
  if (s.options.deflate_level > 0) {
    if (!s.compressor) s.compressor = std::make_unique<ChunkCompressor>(s.options.deflate_level, chunk, s.narrow ? 2 : 4);
    s.compressor->write(s.tokens.get(), s.pending.data(), s.written, whole, temp_);
  } else {
    append(s.tokens.get(), H5T_NATIVE_INT32, s.pending.data(), s.written, whole * chunk, temp_, "tokens");
  }
  s.written += whole * chunk;
  s.pending.erase(s.pending.begin(), s.pending.begin() + whole * chunk);
}

void ShardWriter::park() {
  if (committed_) return;
  State& s = *state_;
  if (s.parked) return;
  flush_whole_chunks();
  s.flush_items(temp_);
  s.pending.shrink_to_fit();
  s.pending_items.shrink_to_fit();
  s.pending_ends.shrink_to_fit();
  s.compressor.reset();
  // A closed file holds no chunk caches, metadata cache or heaps: prepare
  // keeps one split's writer open at a time.
  s.close_objects(temp_);
  s.parked = true;
}

void ShardWriter::commit() {
  if (committed_) return;
  State& s = *state_;
  if (s.parked) s.reopen(temp_);
  flush_whole_chunks();
  append(s.tokens.get(), H5T_NATIVE_INT32, s.pending.data(), s.written, static_cast<int64_t>(s.pending.size()), temp_,
         "tokens");  // the last, partial chunk
  s.written += static_cast<int64_t>(s.pending.size());
  s.pending.clear();
  s.flush_items(temp_);
  const hid_t root = s.file.get();
  const int64_t n = num_items();
  for (Handle* d : {&s.offsets, &s.source, &s.song_id, &s.sha256, &s.num_notes, &s.duration_s}) {
    check(d->close(), temp_, "cannot close an item column");
  }
  for (Handle& d : s.label_columns) check(d.close(), temp_, "cannot close a label column");
  check(s.items_group.close(), temp_, "cannot close group 'items'");
  check(s.labels_group.close(), temp_, "cannot close group 'labels'");

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

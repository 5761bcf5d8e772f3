#include "datasets/shards/ShardReader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/Errors.h"
#include "datasets/shards/detail/Hdf5.h"

namespace kmidi::shards {

using detail::check;
using detail::Handle;

struct ShardReader::Handles {
  Handle file;
  Handle tokens;
  Handle items;   // group /items
  Handle labels;  // group /labels
};

namespace {

/// Opens 1-D dataset `name` of `parent`, checks it has `expected` entries and
/// selects [first, first + count) of it.
struct ColumnRange {
  Handle data, file_space, mem_space;
};

ColumnRange open_range(hid_t parent, const std::string& name, int64_t expected, int64_t first, int64_t count,
                       const std::string& where) {
  ColumnRange r;
  r.data = detail::dataset_handle(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), where, "missing dataset '" + name + "'");
  const int64_t n = detail::dataset_length(r.data.get(), where, name);
  if (n != expected) {
    throw DataError(where + ": '" + name + "' has " + std::to_string(n) + " entries, expected " + std::to_string(expected));
  }
  const std::string what = "cannot read '" + name + "'";
  r.file_space = detail::space_handle(H5Dget_space(r.data.get()), where, what);
  hsize_t start[1] = {static_cast<hsize_t>(first)}, size[1] = {static_cast<hsize_t>(count)};
  check(H5Sselect_hyperslab(r.file_space.get(), H5S_SELECT_SET, start, nullptr, size, nullptr), where, what);
  r.mem_space = detail::space_handle(H5Screate_simple(1, size, nullptr), where, what);
  return r;
}

template <class T>
std::vector<T> read_column(hid_t parent, const std::string& name, hid_t mem_type, int64_t expected, int64_t first,
                           int64_t count, const std::string& where) {
  std::vector<T> out(static_cast<size_t>(count));
  if (count == 0) return out;
  const ColumnRange r = open_range(parent, name, expected, first, count, where);
  check(H5Dread(r.data.get(), mem_type, r.mem_space.get(), r.file_space.get(), H5P_DEFAULT, out.data()), where,
        "cannot read '" + name + "'");
  return out;
}

std::vector<std::string> read_strings(hid_t parent, const std::string& name, int64_t expected, int64_t first,
                                      int64_t count, const std::string& where) {
  std::vector<std::string> out(static_cast<size_t>(count));
  if (count == 0) return out;
  const ColumnRange r = open_range(parent, name, expected, first, count, where);
  const std::string what = "cannot read '" + name + "'";
  Handle file_type = detail::type_handle(H5Dget_type(r.data.get()), where, "cannot read the type of '" + name + "'");
  if (H5Tget_class(file_type.get()) != H5T_STRING) throw DataError(where + ": '" + name + "' is not a string column");
  if (H5Tis_variable_str(file_type.get()) > 0) {
    Handle mem = detail::vl_string_type(where);
    std::vector<char*> raw(static_cast<size_t>(count), nullptr);
    check(H5Dread(r.data.get(), mem.get(), r.mem_space.get(), r.file_space.get(), H5P_DEFAULT, raw.data()), where, what);
    for (size_t i = 0; i < raw.size(); ++i) out[i] = raw[i] ? raw[i] : "";
    H5Dvlen_reclaim(mem.get(), r.mem_space.get(), H5P_DEFAULT, raw.data());
  } else {
    const size_t width = H5Tget_size(file_type.get());
    std::string buffer(width * static_cast<size_t>(count), '\0');
    check(H5Dread(r.data.get(), file_type.get(), r.mem_space.get(), r.file_space.get(), H5P_DEFAULT, buffer.data()),
          where, what);
    for (size_t i = 0; i < out.size(); ++i) {
      std::string s = buffer.substr(i * width, width);
      const size_t nul = s.find('\0');
      if (nul != std::string::npos) s.resize(nul);
      out[i] = std::move(s);
    }
  }
  return out;
}

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

}  // namespace

ShardReader::ShardReader(std::string path, ShardReaderOptions options)
    : path_(std::move(path)), options_(options), h5_(std::make_unique<Handles>()) {
  detail::quiet_errors();
  const std::string& w = path_;
  Handle fapl = detail::plist_handle(H5Pcreate(H5P_FILE_ACCESS), w, "cannot create file access properties");
  check(H5Pset_file_locking(fapl.get(), true, true), w, "cannot set file locking");
  if (!std::filesystem::exists(w)) throw DataError(w + ": no such shard file");
  if (H5Fis_hdf5(w.c_str()) <= 0) {
    detail::last_error();
    throw DataError(w + ": not an HDF5 file (or unreadable)");
  }
  h5_->file = detail::file_handle(H5Fopen(w.c_str(), H5F_ACC_RDONLY, fapl.get()), w, "cannot open shard");
  const hid_t root = h5_->file.get();
  if (!detail::has_attribute(root, "format") || detail::read_string_attribute(root, "format", w) != kShardFormat) {
    throw DataError(w + ": not a kmidi token shard (attribute format is not \"" + std::string(kShardFormat) + "\")");
  }
  format_version_ = detail::read_int_attribute(root, "format_version", w);
  if (format_version_ > kShardFormatVersion) {
    throw DataError(w + ": format_version " + std::to_string(format_version_) +
                    " was written by a newer kmidi; this build reads up to " + std::to_string(kShardFormatVersion));
  }
  if (format_version_ < 1) throw DataError(w + ": format_version " + std::to_string(format_version_) + " is invalid");
  split_ = detail::read_string_attribute(root, "split", w);
  vocab_size_ = static_cast<int32_t>(detail::read_int_attribute(root, "vocab_size", w));
  pad_id_ = static_cast<int32_t>(detail::read_int_attribute(root, "pad_id", w));
  tokenizer_sha256_ = detail::read_string_attribute(root, "tokenizer_sha256", w);
  run_id_ = detail::read_string_attribute(root, "run_id", w);
  const int64_t num_items = detail::read_int_attribute(root, "num_items", w);
  const int64_t num_tokens = detail::read_int_attribute(root, "num_tokens", w);

  Handle dapl = detail::plist_handle(H5Pcreate(H5P_DATASET_ACCESS), w, "cannot create dataset access properties");
  check(H5Pset_chunk_cache(dapl.get(), 10007, options_.chunk_cache_bytes, 1.0), w, "cannot size the chunk cache");
  h5_->tokens = detail::dataset_handle(H5Dopen2(root, "tokens", dapl.get()), w, "missing dataset 'tokens'");
  if (detail::dataset_length(h5_->tokens.get(), w, "tokens") != num_tokens) {
    throw DataError(w + ": 'tokens' has " + std::to_string(detail::dataset_length(h5_->tokens.get(), w, "tokens")) +
                    " entries but num_tokens says " + std::to_string(num_tokens));
  }
  {
    Handle type = detail::type_handle(H5Dget_type(h5_->tokens.get()), w, "cannot read the type of 'tokens'");
    if (H5Tget_class(type.get()) != H5T_INTEGER) throw DataError(w + ": 'tokens' is not an integer array");
    token_bits_ = static_cast<int>(H5Tget_size(type.get()) * 8);
  }
  offsets_ = read_column<int64_t>(root, "offsets", H5T_NATIVE_INT64, num_items + 1, 0, num_items + 1, w);
  if (offsets_.front() != 0 || offsets_.back() != num_tokens) {
    throw DataError(w + ": offsets must run from 0 to num_tokens (" + std::to_string(num_tokens) + "), got " +
                    std::to_string(offsets_.front()) + " to " + std::to_string(offsets_.back()));
  }
  for (size_t i = 1; i < offsets_.size(); ++i) {
    if (offsets_[i] < offsets_[i - 1]) {
      throw DataError(w + ": offsets decrease at item " + std::to_string(i - 1));
    }
  }

  h5_->items = detail::group_handle(H5Gopen2(root, "items", H5P_DEFAULT), w, "missing group 'items'");
  h5_->labels = detail::group_handle(H5Gopen2(root, "labels", H5P_DEFAULT), w, "missing group 'labels'");
  std::vector<std::string> names;
  check(H5Literate(h5_->labels.get(), H5_INDEX_CRT_ORDER, H5_ITER_INC, nullptr, collect_name, &names), w,
        "cannot list labels");
  for (const std::string& name : names) {
    Handle d = detail::dataset_handle(H5Dopen2(h5_->labels.get(), name.c_str(), H5P_DEFAULT), w,
                                      "cannot open label '" + name + "'");
    const std::string kind = detail::read_string_attribute(d.get(), "kind", w + " (label " + name + ")");
    if (kind != "number" && kind != "text") {
      throw DataError(w + ": label '" + name + "' has kind '" + kind + "', expected number or text");
    }
    labels_.push_back(LabelColumn{name, kind == "number" ? LabelKind::kNumber : LabelKind::kText});
  }
  // Any read checks that every column has num_items entries; without
  // metadata in memory one piece's read does, keeping the peak bounded.
  std::vector<ShardItem> read = read_items(0, options_.metadata_in_memory ? num_items : std::min<int64_t>(1, num_items));
  if (options_.metadata_in_memory) items_ = std::move(read);
}

std::vector<ShardItem> ShardReader::read_items(int64_t first, int64_t count) const {
  const std::string& w = path_;
  const int64_t n = size();
  const hid_t items = h5_->items.get();
  const auto sources = read_strings(items, "source", n, first, count, w);
  const auto songs = read_strings(items, "song_id", n, first, count, w);
  const auto hashes = read_strings(items, "sha256", n, first, count, w);
  const auto notes = read_column<int64_t>(items, "num_notes", H5T_NATIVE_INT64, n, first, count, w);
  const auto seconds = read_column<double>(items, "duration_s", H5T_NATIVE_DOUBLE, n, first, count, w);
  std::vector<ShardItem> out(static_cast<size_t>(count));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].source = sources[i];
    out[i].song_id = songs[i];
    out[i].sha256 = hashes[i];
    out[i].num_notes = notes[i];
    out[i].duration_s = seconds[i];
  }
  for (const LabelColumn& column : labels_) {
    if (column.kind == LabelKind::kNumber) {
      const auto values = read_column<double>(h5_->labels.get(), column.name, H5T_NATIVE_DOUBLE, n, first, count, w);
      for (size_t i = 0; i < out.size(); ++i) out[i].labels.push_back(LabelValue::of(values[i]));
    } else {
      const auto values = read_strings(h5_->labels.get(), column.name, n, first, count, w);
      for (size_t i = 0; i < out.size(); ++i) out[i].labels.push_back(LabelValue::of(values[i]));
    }
  }
  return out;
}

std::vector<ShardItem> ShardReader::items(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first + count > size()) {
    throw UsageError(path_ + ": items [" + std::to_string(first) + ", " + std::to_string(first + count) +
                     ") leave the shard of " + std::to_string(size()) + " items");
  }
  if (!items_.empty() || count == 0) {
    return std::vector<ShardItem>(items_.begin() + first, items_.begin() + first + count);
  }
  return read_items(first, count);
}

ShardItem ShardReader::item(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw UsageError(path_ + ": item " + std::to_string(index) + " is outside [0, " + std::to_string(size()) + ")");
  }
  if (!items_.empty()) return items_[static_cast<size_t>(index)];
  return read_items(index, 1).front();
}

size_t ShardReader::held_bytes() const {
  size_t bytes = offsets_.capacity() * sizeof(int64_t) + memory_.capacity() * sizeof(int32_t) +
                 items_.capacity() * sizeof(ShardItem);
  for (const ShardItem& it : items_) {
    bytes += it.source.capacity() + it.song_id.capacity() + it.sha256.capacity() + it.labels.capacity() * sizeof(LabelValue);
    for (const LabelValue& l : it.labels) bytes += l.text.capacity();
  }
  return bytes;
}

ShardReader::~ShardReader() = default;
ShardReader::ShardReader(ShardReader&&) noexcept = default;
ShardReader& ShardReader::operator=(ShardReader&&) noexcept = default;

int ShardReader::label_index(const std::string& name) const {
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (labels_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

void ShardReader::read(int64_t item, int64_t start, int64_t count, int32_t* out) const {
  if (item < 0 || item >= size()) {
    throw UsageError(path_ + ": item " + std::to_string(item) + " is outside [0, " + std::to_string(size()) + ")");
  }
  if (start < 0 || count < 0 || start + count > length(item)) {
    throw UsageError(path_ + ": tokens [" + std::to_string(start) + ", " + std::to_string(start + count) +
                     ") leave item " + std::to_string(item) + " of length " + std::to_string(length(item)));
  }
  read_flat(offset(item) + start, count, out);
}

std::vector<int32_t> ShardReader::read(int64_t item) const {
  std::vector<int32_t> out(static_cast<size_t>(length(item)));
  read(item, 0, length(item), out.data());
  return out;
}

void ShardReader::read_flat(int64_t first, int64_t count, int32_t* out) const {
  if (count == 0) return;
  if (first < 0 || count < 0 || first + count > num_tokens()) {
    throw UsageError(path_ + ": tokens [" + std::to_string(first) + ", " + std::to_string(first + count) +
                     ") leave the shard of " + std::to_string(num_tokens()) + " tokens");
  }
  if (!memory_.empty()) {
    std::memcpy(out, memory_.data() + first, static_cast<size_t>(count) * sizeof(int32_t));
    return;
  }
  const std::string what = "cannot read tokens [" + std::to_string(first) + ", " + std::to_string(first + count) + ")";
  Handle file_space = detail::space_handle(H5Dget_space(h5_->tokens.get()), path_, what);
  hsize_t start[1] = {static_cast<hsize_t>(first)}, n[1] = {static_cast<hsize_t>(count)};
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, n, nullptr), path_, what);
  Handle mem_space = detail::space_handle(H5Screate_simple(1, n, nullptr), path_, what);
  check(H5Dread(h5_->tokens.get(), H5T_NATIVE_INT32, mem_space.get(), file_space.get(), H5P_DEFAULT, out), path_, what);
}

void ShardReader::preload() {
  if (!memory_.empty() || num_tokens() == 0) return;
  std::vector<int32_t> all(static_cast<size_t>(num_tokens()));
  read_flat(0, num_tokens(), all.data());
  memory_ = std::move(all);
}

}  // namespace kmidi::shards

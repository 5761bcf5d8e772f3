#pragma once
// Reads a token shard (layout in Shard.h): offsets at open, tokens by piece
// on demand through a bounded HDF5 chunk cache (or all at once with
// preload()). Per-piece metadata (ShardItem) is read at open, or on demand
// with metadata_in_memory off, so that a reader of a corpus far larger than
// memory holds only the offsets (8 bytes a piece) and the chunk cache.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/shards/Shard.h"

namespace kmidi::shards {

struct ShardReaderOptions {
  /// Read every piece's ShardItem at open (fast item() for whole-shard
  /// scans); off: item() reads the piece's metadata from the file.
  bool metadata_in_memory = true;
  /// Bytes of decompressed token chunks kept per reader (HDF5 chunk cache).
  size_t chunk_cache_bytes = size_t{8} << 20;
};

class ShardReader {
 public:
  /// Opens `path` and loads offsets (and metadata, per `options`). Throws
  /// DataError naming the file when it is not a shard, is of a newer
  /// format_version, or its offsets and columns disagree.
  explicit ShardReader(std::string path, ShardReaderOptions options = {});
  ~ShardReader();
  ShardReader(ShardReader&&) noexcept;
  ShardReader& operator=(ShardReader&&) noexcept;

  const std::string& path() const { return path_; }
  const std::string& split() const { return split_; }
  int64_t format_version() const { return format_version_; }
  int32_t vocab_size() const { return vocab_size_; }
  int32_t pad_id() const { return pad_id_; }
  const std::string& tokenizer_sha256() const { return tokenizer_sha256_; }
  const std::string& run_id() const { return run_id_; }
  /// 16 or 32: the on-disk integer width of token ids.
  int token_bits() const { return token_bits_; }

  int64_t size() const { return static_cast<int64_t>(offsets_.size()) - 1; }
  int64_t num_tokens() const { return offsets_.back(); }
  int64_t offset(int64_t item) const { return offsets_[static_cast<size_t>(item)]; }
  int64_t length(int64_t item) const {
    return offsets_[static_cast<size_t>(item) + 1] - offsets_[static_cast<size_t>(item)];
  }
  /// Metadata of piece `index` (from memory, or read from the file).
  ShardItem item(int64_t index) const;
  /// Metadata of pieces [first, first + count), read in one pass per column.
  std::vector<ShardItem> items(int64_t first, int64_t count) const;
  const std::vector<LabelColumn>& label_columns() const { return labels_; }
  /// Index of a label column, or -1.
  int label_index(const std::string& name) const;

  /// Copies tokens [start, start + count) of piece `item` into `out`. Throws
  /// UsageError when the range leaves the piece. Safe from several threads
  /// (HDF5's thread-safe build serialises the reads; preloaded reads are memcpy).
  void read(int64_t item, int64_t start, int64_t count, int32_t* out) const;
  std::vector<int32_t> read(int64_t item) const;
  /// Copies tokens [first, first + count) of the flat array (for whole-shard scans).
  void read_flat(int64_t first, int64_t count, int32_t* out) const;
  /// Reads the whole token array into memory; later reads never touch the file.
  void preload();
  bool preloaded() const { return !memory_.empty() || num_tokens() == 0; }
  /// Bytes this reader holds on the heap for offsets, metadata and preloaded
  /// tokens (not HDF5's chunk cache, bounded by chunk_cache_bytes).
  size_t held_bytes() const;

 private:
  std::vector<ShardItem> read_items(int64_t first, int64_t count) const;

  std::string path_, split_, tokenizer_sha256_, run_id_;
  ShardReaderOptions options_;
  int64_t format_version_ = 0;
  int32_t vocab_size_ = 0, pad_id_ = 0;
  int token_bits_ = 16;
  std::vector<int64_t> offsets_;
  std::vector<ShardItem> items_;
  std::vector<LabelColumn> labels_;
  std::vector<int32_t> memory_;
  struct Handles;
  std::unique_ptr<Handles> h5_;
};

}  // namespace kmidi::shards

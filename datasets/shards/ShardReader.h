#pragma once
// Reads a token shard (layout in Shard.h): metadata at open, tokens by piece
// on demand (or all at once with preload()).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/shards/Shard.h"

namespace kmidi::shards {

class ShardReader {
 public:
  /// Opens `path` and loads offsets and metadata. Throws DataError naming the
  /// file when it is not a shard, is of a newer format_version, or its
  /// offsets and columns disagree.
  explicit ShardReader(std::string path);
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

  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  int64_t num_tokens() const { return offsets_.back(); }
  int64_t offset(int64_t item) const { return offsets_[static_cast<size_t>(item)]; }
  int64_t length(int64_t item) const {
    return offsets_[static_cast<size_t>(item) + 1] - offsets_[static_cast<size_t>(item)];
  }
  const ShardItem& item(int64_t index) const { return items_[static_cast<size_t>(index)]; }
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

 private:
  std::string path_, split_, tokenizer_sha256_, run_id_;
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

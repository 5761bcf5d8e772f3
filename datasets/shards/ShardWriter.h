#pragma once
// Writes one token shard (layout in Shard.h) under a temporary name and
// renames it into place on commit(): an interrupted write never leaves a half
// shard where a good one was.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/shards/Shard.h"

namespace kmidi::shards {

/// What a shard records about the tokenizer that produced it.
struct ShardVocab {
  int32_t vocab_size = 0;
  int32_t pad_id = 0;
  std::string tokenizer_sha256;
};

struct ShardWriterOptions {
  int64_t chunk_elements = 4096;  ///< small chunks keep random access by piece fast
  int deflate_level = 4;          ///< 0..9; 0 stores uncompressed
  std::string run_id;             ///< shared by the shards of one prepare run
};

class ShardWriter {
 public:
  /// Creates `<path>.tmp.<pid>.<n>` beside `path`. Throws DataError on I/O failure.
  ShardWriter(std::string path, std::string split, ShardVocab vocab, std::vector<LabelColumn> labels,
              ShardWriterOptions options = {});
  /// Without commit(), closes and removes the temporary file; `path` is untouched.
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  /// Appends one piece. Throws UsageError for an id outside [0, vocab_size) or
  /// labels that do not match the label columns (a caller bug).
  void add(const int32_t* tokens, size_t count, const ShardItem& item);
  /// Writes what fills whole chunks, frees the writer's buffers and closes
  /// the file until the next add() or commit(), which reopen it: for a writer
  /// that gets nothing for a long while (prepare writes the splits one after
  /// the other).
  void park();
  /// Writes offsets and metadata, flushes, fsyncs and renames over `path`.
  void commit();

  int64_t num_items() const;
  int64_t num_tokens() const;
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  struct State;
  void flush_whole_chunks();
  std::string path_, temp_;
  std::unique_ptr<State> state_;
  bool committed_ = false;
};

}  // namespace kmidi::shards

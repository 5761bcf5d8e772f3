#pragma once
// Token shards: one HDF5 file per split holding every piece's token ids in
// one flat array, with offsets and per-piece metadata. Torch-free.
//
// HDF5 1.10 file format (readers need HDF5 >= 1.10). Layout, format_version 1
// (attributes on the root group):
//   @format            "kmidi.token_shard"
//   @format_version    1 (readers refuse newer versions)
//   @split             "train" | "validation" | "test" | ...
//   @vocab_size, @pad_id   from the tokenizer
//   @tokenizer_sha256  sha256 of tokenizer.json's text; it must match the
//                      tokenizer.json beside the shard
//   @run_id            the prepare run that wrote it (same for all its shards)
//   @num_items, @num_tokens
//   /tokens            [num_tokens] int16 (vocab_size <= 32767) or int32;
//                      chunks of ~4096 elements, shuffle + deflate
//   /offsets           [num_items + 1] int64; piece i is tokens[offsets[i], offsets[i+1])
//   /items/source      [num_items] UTF-8 path relative to the corpus root
//   /items/song_id     [num_items] UTF-8: pieces sharing a song never span splits
//   /items/sha256      [num_items] 64-char hex of the source file's bytes
//   /items/num_notes   [num_items] int64, notes encoded
//   /items/duration_s  [num_items] float64, length of the piece in seconds
//   /labels/<name>     [num_items] float64 (NaN: missing), @kind "number";
//                      or UTF-8 ("" : missing), @kind "text"
//   /labels/emotion_source  text, written beside "valence" and "arousal":
//                      "real" (annotated), "pseudo" (predicted by a model) or
//                      "" (no emotion label); see kEmotionSourceLabel
// Every piece is stored as the tokenizer encodes it: BOS ... EOS.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace kmidi::shards {

constexpr const char* kShardFormat = "kmidi.token_shard";
constexpr int64_t kShardFormatVersion = 1;

enum class LabelKind { kNumber, kText };

/// The text label column that says where a piece's valence and arousal come
/// from, and its values (a missing label is "").
constexpr const char* kEmotionSourceLabel = "emotion_source";
constexpr const char* kEmotionSourceReal = "real";
constexpr const char* kEmotionSourcePseudo = "pseudo";

/// One label column of a shard, e.g. {"quadrant", kNumber} or {"style", kText}.
struct LabelColumn {
  std::string name;
  LabelKind kind = LabelKind::kNumber;
  bool operator==(const LabelColumn& o) const { return name == o.name && kind == o.kind; }
};

/// A label value: `number` for kNumber columns (NaN when missing), `text` for
/// kText columns ("" when missing).
struct LabelValue {
  double number = std::numeric_limits<double>::quiet_NaN();
  std::string text;
  static LabelValue of(double v) { LabelValue l; l.number = v; return l; }
  static LabelValue of(std::string v) { LabelValue l; l.text = std::move(v); return l; }
};

/// Per-piece metadata stored beside its tokens.
struct ShardItem {
  std::string source;   ///< path relative to the corpus root
  std::string song_id;  ///< pieces of one song share it
  std::string sha256;   ///< of the source file's bytes
  int64_t num_notes = 0;
  double duration_s = 0.0;
  std::vector<LabelValue> labels;  ///< aligned with the shard's label columns
};

/// The shard file name of a split: "<split>.h5".
inline std::string shard_file_name(const std::string& split) { return split + ".h5"; }

}  // namespace kmidi::shards

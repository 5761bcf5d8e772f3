#pragma once
// Next-token training data over prepared token shards (kmidi prepare's
// <split>.h5 with tokenizer.json beside it).
//
// Batch layout (B rows, T = the longest row in the batch, T <= max_length):
//   inputs  "input_ids"       int64   [B, T]   window[0 .. T-1], PAD after the row's end
//           "attention_mask"  bool    [B, T]   true on real tokens
//           "emotion"         float32 [B, 64]  only when the shards carry valence/arousal
//                                               labels: [emotion_scale x valence,
//                                               emotion_scale x arousal, intensity, 0...],
//                                               0 where a label is missing; all 0 (neutral)
//                                               for items without a label (emotion_source)
//                                               and for items condition dropout hides
//   targets "labels"          int64   [B, T]   window[1 .. T], PAD where there is no target
//   units            = number of target tokens that are not PAD (the loss's normaliser)
//   throughput_units = number of real input tokens
// The loss must use ignore_index = tokenizer().pad_id(): PAD never occurs
// inside a piece (pieces are BOS ... EOS), only as padding.
//
// Windowing of pieces longer than max_length + 1 tokens:
//   random_crop: one item per piece; each epoch reads a window of
//                max_length + 1 tokens at a start drawn from (seed, epoch,
//                item), uniformly over the piece. Call set_epoch() per epoch.
//   windows:     fixed windows starting every `stride` tokens (default
//                max_length, so every token is a target exactly once); the
//                last window of a piece may be shorter (padded).
// Shorter pieces are one item, padded.
//
// Emotion labels: the label column "emotion_source" (shards::kEmotionSourceLabel)
// says per piece whether its valence/arousal are real (annotated), pseudo
// (predicted by a model) or absent; shards written before that column existed
// count every piece with a finite valence or arousal as real.
// Condition dropout: a share condition_dropout of the labelled items is shown
// with the neutral (zero) vector, decided by (seed, epoch, item) alone, so a
// resumed run and any number of ranks see the same choice.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/Dataset.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace kmidi::shards {
class ShardReader;
struct ShardItem;
}

namespace kmidi::data {

struct TokenDatasetConfig : config::Section {
  config::Path dir;                        ///< kmidi prepare's output.dir
  int64_t max_length = 1024;               ///< T: tokens per row of input_ids
  std::string windowing = "random_crop";   ///< random_crop | windows
  int64_t stride = 0;                      ///< windows: step between starts; 0 means max_length
  int64_t seed = 0;                        ///< random_crop: with the epoch and item, picks the window
  bool preload = false;                    ///< read all tokens into memory at open
  double emotion_scale = 1.0;              ///< labelled valence and arousal are multiplied by this
  double condition_dropout = 0.0;          ///< share of labelled items shown neutral, in [0, 1)
  int64_t tokens_per_batch = 0;            ///< training token budget (Dataset::tokens_per_batch); 0: off
  /// Training transposition [lowest, highest] semitones per (seed, epoch, item); {} or {0, 0}: off (TokenAugment.h).
  std::vector<int64_t> transpose;
  void visit(config::Visitor& v) override;
};

class TokenShardDataset : public Dataset {
 public:
  /// Opens <config.dir>/<split>.h5 and <config.dir>/tokenizer.json. Throws
  /// DataError when either is unreadable or when the shard was written with
  /// another tokenizer than the tokenizer.json beside it.
  TokenShardDataset(const TokenDatasetConfig& config, const std::string& split);
  ~TokenShardDataset() override;

  size_t size() const override { return static_cast<size_t>(first_item_.back()); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_targets() const override { return true; }
  /// "<source path>@<first token>", e.g. "001.mid@0".
  std::string item_id(size_t index) const override;
  /// Target tokens of the item's row.
  int64_t item_cost(size_t index) const override;
  int64_t tokens_per_batch() const override { return config_.tokens_per_batch; }

  /// Selects the random_crop windows of `epoch` (thread-safe).
  void set_epoch(int64_t epoch) const override { epoch_.store(epoch); }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t pad_id() const { return tokenizer_->pad_id(); }
  /// Whether batches carry "emotion" (the shards have valence and arousal labels).
  bool has_emotion() const { return valence_ >= 0 && arousal_ >= 0; }
  enum class EmotionSource : uint8_t { kNone, kReal, kPseudo };
  /// Where the emotion label of item `index`'s piece comes from.
  EmotionSource emotion_source(size_t index) const;
  /// Whether condition dropout shows item `index` neutral in the current epoch.
  bool condition_dropped(size_t index) const;
  int64_t max_length() const { return config_.max_length; }
  /// Number of pieces in the shard (items may be windows of them).
  int64_t pieces() const;

 private:
  struct Item {
    int64_t piece;
    int64_t start;  // windows: first token; random_crop: unused (-1)
  };
  /// Piece and first token of item `index` (UsageError outside the dataset).
  Item item_at(size_t index) const;
  int64_t items_of_piece(int64_t piece) const;
  int64_t stride() const;
  /// First token and length of the row `item` reads this epoch.
  std::pair<int64_t, int64_t> window(const Item& item, size_t index) const;
  void read_emotion_sources();
  /// Moves the row's pitches by item `index`'s transposition this epoch (config.transpose).
  void transpose_row(std::vector<int32_t>& row, size_t index) const;
  EmotionSource emotion_source_of(const shards::ShardItem& item, int64_t piece, int column) const;

  TokenDatasetConfig config_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<shards::ShardReader> shard_;
  std::vector<int64_t> first_item_;  // [pieces + 1]: index of each piece's first item
  int valence_ = -1, arousal_ = -1, intensity_ = -1;  // label columns
  std::vector<EmotionSource> sources_;                 // per piece
  mutable std::atomic<int64_t> epoch_{0};
};

}  // namespace kmidi::data

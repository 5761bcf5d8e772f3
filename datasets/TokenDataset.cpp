#include "datasets/TokenDataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/Errors.h"
#include "core/SplitMix64.h"
#include "datasets/TokenAugment.h"
#include "datasets/shards/ShardReader.h"

namespace fs = std::filesystem;

namespace kmidi::data {
namespace {

constexpr int64_t kEmotionSize = 64;

using random::splitmix64;

float label_or_zero(double v) { return std::isfinite(v) ? static_cast<float>(v) : 0.0f; }

/// Salt that keeps condition dropout independent of the random crops.
constexpr uint64_t kConditionDropoutSalt = 0xC04D171011D50F75ull;

}  // namespace

void TokenDatasetConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("dir", dir, Spec("folder of kmidi prepare's shards and tokenizer.json (its output.dir)").required());
  v.field("max_length", max_length, Spec("tokens per row of input_ids (T)").min(1));
  v.field("windowing", windowing,
          Spec("long pieces: random_crop (a new window per epoch) or windows (fixed, every stride tokens)")
              .one_of({"random_crop", "windows"}));
  v.field("stride", stride, Spec("windows: tokens between window starts; 0 means max_length").min(0));
  v.field("seed", seed, Spec("random_crop: seeds the window of each item and epoch"));
  v.field("preload", preload, Spec("read every token into memory at start-up"));
  v.field("emotion_scale", emotion_scale, Spec("labelled valence and arousal are multiplied by this").positive());
  v.field("condition_dropout", condition_dropout,
          Spec("share of labelled items shown with the neutral emotion vector, per (seed, epoch, item)")
              .min(0.0)
              .less_than(1.0));
  v.field("transpose", transpose,
          Spec("training transposition [lowest, highest] semitones, drawn per (seed, epoch, item); [] off"));
  v.check(transpose_problem(transpose).empty(), "transpose", transpose_problem(transpose));
  v.field("tokens_per_batch", tokens_per_batch,
          Spec("training token budget per micro-batch (items x longest row); 0 off").non_negative());
}

TokenShardDataset::TokenShardDataset(const TokenDatasetConfig& config, const std::string& split) : config_(config) {
  if (config_.max_length < 1) throw UsageError("TokenDatasetConfig.max_length must be positive");
  const std::string dir = config_.dir.str();
  const std::string tokenizer_path = (fs::path(dir) / "tokenizer.json").string();
  tokenizer_ = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(tokenizer_path));
  // Metadata stays on disk: a training run's memory must not grow with the corpus.
  shards::ShardReaderOptions reader_options;
  reader_options.metadata_in_memory = false;
  shard_ = std::make_unique<shards::ShardReader>((fs::path(dir) / shards::shard_file_name(split)).string(),
                                                 reader_options);
  if (shard_->tokenizer_sha256() != tokenizer_->sha256()) {
    throw DataError(shard_->path() + ": was written with a different tokenizer than " + tokenizer_path +
                    " (sha256 " + shard_->tokenizer_sha256() + " vs " + tokenizer_->sha256() +
                    "); re-run kmidi prepare");
  }
  if (shard_->vocab_size() != tokenizer_->vocab_size() || shard_->pad_id() != tokenizer_->pad_id()) {
    throw DataError(shard_->path() + ": vocab_size " + std::to_string(shard_->vocab_size()) + " and pad_id " +
                    std::to_string(shard_->pad_id()) + " disagree with " + tokenizer_path);
  }
  if (config_.preload) shard_->preload();
  valence_ = shard_->label_index("valence");
  arousal_ = shard_->label_index("arousal");
  intensity_ = shard_->label_index("intensity");
  for (int index : {valence_, arousal_, intensity_}) {
    if (index >= 0 && shard_->label_columns()[static_cast<size_t>(index)].kind != shards::LabelKind::kNumber) {
      throw DataError(shard_->path() + ": label '" + shard_->label_columns()[static_cast<size_t>(index)].name +
                      "' must be numeric to feed the emotion vector");
    }
  }
  if (config_.condition_dropout < 0 || config_.condition_dropout >= 1) {
    throw UsageError("TokenDatasetConfig.condition_dropout must be in [0, 1), got " +
                     std::to_string(config_.condition_dropout));
  }
  read_emotion_sources();
  // Items are counted per piece (8 bytes a piece, not 16 a window): memory
  // stays far below the corpus even for windows of a large one.
  first_item_.reserve(static_cast<size_t>(shard_->size()) + 1);
  first_item_.push_back(0);
  for (int64_t p = 0; p < shard_->size(); ++p) first_item_.push_back(first_item_.back() + items_of_piece(p));
}

int64_t TokenShardDataset::stride() const { return config_.stride > 0 ? config_.stride : config_.max_length; }

int64_t TokenShardDataset::items_of_piece(int64_t piece) const {
  const int64_t len = shard_->length(piece);
  if (len < 2) return 0;  // no target at all
  if (config_.windowing == "random_crop" || len <= config_.max_length + 1) return 1;
  return (len - 1 + stride() - 1) / stride();  // starts 0, stride, ... below len - 1
}

TokenShardDataset::Item TokenShardDataset::item_at(size_t index) const {
  if (index >= size()) {
    throw UsageError("item " + std::to_string(index) + " is outside the dataset of " + std::to_string(size()));
  }
  const auto next = std::upper_bound(first_item_.begin(), first_item_.end(), static_cast<int64_t>(index));
  const auto piece = static_cast<int64_t>(next - first_item_.begin()) - 1;
  if (config_.windowing == "random_crop") return Item{piece, -1};
  return Item{piece, (static_cast<int64_t>(index) - first_item_[static_cast<size_t>(piece)]) * stride()};
}

TokenShardDataset::~TokenShardDataset() = default;

int64_t TokenShardDataset::pieces() const { return shard_->size(); }

void TokenShardDataset::read_emotion_sources() {
  sources_.assign(static_cast<size_t>(shard_->size()), EmotionSource::kNone);
  if (!has_emotion()) return;
  const int column = shard_->label_index(shards::kEmotionSourceLabel);
  if (column >= 0 && shard_->label_columns()[static_cast<size_t>(column)].kind != shards::LabelKind::kText) {
    throw DataError(shard_->path() + ": label '" + shards::kEmotionSourceLabel + "' must be text (real, pseudo or empty)");
  }
  constexpr int64_t kBlock = 4096;  // pieces of metadata read at a time
  for (int64_t first = 0; first < shard_->size(); first += kBlock) {
    const std::vector<shards::ShardItem> block = shard_->items(first, std::min(kBlock, shard_->size() - first));
    for (size_t i = 0; i < block.size(); ++i) {
      const int64_t p = first + static_cast<int64_t>(i);
      sources_[static_cast<size_t>(p)] = emotion_source_of(block[i], p, column);
    }
  }
}

TokenShardDataset::EmotionSource TokenShardDataset::emotion_source_of(const shards::ShardItem& it, int64_t piece,
                                                                      int column) const {
  if (column < 0) {  // shards from before the column: a finite label is an annotation
    const bool labelled = std::isfinite(it.labels[static_cast<size_t>(valence_)].number) ||
                          std::isfinite(it.labels[static_cast<size_t>(arousal_)].number);
    return labelled ? EmotionSource::kReal : EmotionSource::kNone;
  }
  const std::string& text = it.labels[static_cast<size_t>(column)].text;
  if (text == shards::kEmotionSourceReal) return EmotionSource::kReal;
  if (text == shards::kEmotionSourcePseudo) return EmotionSource::kPseudo;
  if (!text.empty()) {
    throw DataError(shard_->path() + ": item " + std::to_string(piece) + " ('" + it.source + "') has " +
                    shards::kEmotionSourceLabel + " '" + text + "'; expected real, pseudo or empty");
  }
  return EmotionSource::kNone;
}

TokenShardDataset::EmotionSource TokenShardDataset::emotion_source(size_t index) const {
  return sources_[static_cast<size_t>(item_at(index).piece)];
}

bool TokenShardDataset::condition_dropped(size_t index) const {
  if (config_.condition_dropout <= 0 || emotion_source(index) == EmotionSource::kNone) return false;
  const uint64_t h = splitmix64(splitmix64(static_cast<uint64_t>(config_.seed) ^ kConditionDropoutSalt) ^
                         splitmix64(static_cast<uint64_t>(epoch_.load()) + 1) ^ static_cast<uint64_t>(index));
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  return u < config_.condition_dropout;
}

std::pair<int64_t, int64_t> TokenShardDataset::window(const Item& item, size_t index) const {
  const int64_t len = shard_->length(item.piece);
  const int64_t row = config_.max_length + 1;
  if (item.start >= 0) return {item.start, std::min(row, len - item.start)};
  if (len <= row) return {0, len};
  const uint64_t h = splitmix64(splitmix64(static_cast<uint64_t>(config_.seed)) ^ splitmix64(static_cast<uint64_t>(epoch_.load()) + 1) ^
                         static_cast<uint64_t>(index));
  return {static_cast<int64_t>(h % static_cast<uint64_t>(len - row + 1)), row};
}

std::string TokenShardDataset::item_id(size_t index) const {
  const Item it = item_at(index);
  return shard_->item(it.piece).source + "@" + std::to_string(window(it, index).first);
}

int64_t TokenShardDataset::item_cost(size_t index) const { return window(item_at(index), index).second - 1; }

void TokenShardDataset::transpose_row(std::vector<int32_t>& row, size_t index) const {
  if (config_.transpose.empty()) return;
  const TranspositionRange range{static_cast<int>(config_.transpose.at(0)), static_cast<int>(config_.transpose.at(1))};
  if (range.off()) return;
  const int shift = draw_transposition(range, static_cast<uint64_t>(config_.seed), epoch_.load(), index);
  transpose_pitches(row.data(), row.size(), tokenizer_->vocab().range(tokenizer::TokenKind::kPitch), shift);
}

Batch TokenShardDataset::get_batch(const std::vector<int64_t>& indices) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  std::vector<std::pair<int64_t, int64_t>> windows;
  int64_t longest = 1;
  for (int64_t i : indices) {
    if (i < 0) throw UsageError("item " + std::to_string(i) + " is outside the dataset of " + std::to_string(size()));
    windows.push_back(window(item_at(static_cast<size_t>(i)), static_cast<size_t>(i)));
    longest = std::max(longest, windows.back().second - 1);
  }
  const int64_t t = longest;
  const int64_t pad = tokenizer_->pad_id();
  at::Tensor input_ids = at::full({b, t}, pad, at::kLong);
  at::Tensor labels = at::full({b, t}, pad, at::kLong);
  at::Tensor mask = at::zeros({b, t}, at::kBool);
  auto in = input_ids.accessor<int64_t, 2>();
  auto out = labels.accessor<int64_t, 2>();
  auto m = mask.accessor<bool, 2>();
  Batch batch;
  batch.indices = indices;
  std::vector<int32_t> buffer;
  for (int64_t r = 0; r < b; ++r) {
    const Item item = item_at(static_cast<size_t>(indices[static_cast<size_t>(r)]));
    const auto [start, len] = windows[static_cast<size_t>(r)];
    buffer.resize(static_cast<size_t>(len));
    shard_->read(item.piece, start, len, buffer.data());
    transpose_row(buffer, static_cast<size_t>(indices[static_cast<size_t>(r)]));
    for (int64_t k = 0; k + 1 < len; ++k) {
      in[r][k] = buffer[static_cast<size_t>(k)];
      out[r][k] = buffer[static_cast<size_t>(k) + 1];
      m[r][k] = true;
      batch.units += buffer[static_cast<size_t>(k) + 1] != pad;
    }
    batch.throughput_units += len - 1;
  }
  batch.inputs.set("input_ids", input_ids);
  batch.inputs.set("attention_mask", mask);
  if (has_emotion()) {
    at::Tensor emotion = at::zeros({b, kEmotionSize}, at::kFloat);
    auto e = emotion.accessor<float, 2>();
    const auto scale = static_cast<float>(config_.emotion_scale);
    for (int64_t r = 0; r < b; ++r) {
      const auto index = static_cast<size_t>(indices[static_cast<size_t>(r)]);
      if (emotion_source(index) == EmotionSource::kNone || condition_dropped(index)) continue;  // neutral
      const shards::ShardItem& it = shard_->item(item_at(index).piece);
      e[r][0] = scale * label_or_zero(it.labels[static_cast<size_t>(valence_)].number);
      e[r][1] = scale * label_or_zero(it.labels[static_cast<size_t>(arousal_)].number);
      if (intensity_ >= 0) e[r][2] = label_or_zero(it.labels[static_cast<size_t>(intensity_)].number);
    }
    batch.inputs.set("emotion", emotion);
  }
  batch.targets.set("labels", labels);
  return batch;
}

}  // namespace kmidi::data

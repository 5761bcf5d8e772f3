#pragma once
// Emotion recognition data: one item per clip (e.g. an EMOPIA clip), with its
// token sequence and/or its 128 emotion features, and, when labelled, its
// Russell quadrant.
//
// Sources:
//   - a split of kmidi prepare's shards (<prepared>/<split>.h5 with
//     tokenizer.json beside it): tokens from the shard, the quadrant from its
//     numeric "quadrant" label column (1..4), features computed from the
//     clip's MIDI file (<midi_root>/<item source>) through the feature cache;
//     a shard without a "quadrant" column gives an unlabelled split;
//   - a folder of MIDI files without labels (data.unlabelled_test): tokens
//     encoded with the prepared tokenizer.json, features computed likewise.
// Features are cached by the SHA-256 of the file's bytes in
// data.feature_cache (default <prepared>/emotion_features.cache; layout in
// datasets/features/EmotionFeatureCache.h), so they are computed once per file.
//
// Batch layout (B items; T = the longest row in the batch, T <= max_length):
//   inputs  "input_ids"        int64   [B, T]  the clip's first max_length tokens
//                                               (BOS first), PAD after its end
//           "attention_mask"   bool    [B, T]  true on real tokens
//           "features"         float32 [B, 128] EmotionFeatures.h (raw; the model standardises)
//   targets "quadrant"         int64   [B]     class id 0..3 for Q1..Q4
//           "valence_arousal"  float32 [B, 2]  the quadrant's signs: Q1 (+1, +1),
//                                               Q2 (-1, +1), Q3 (-1, -1), Q4 (+1, -1)
//   units = throughput_units = B
// Token inputs are present when inputs is tokens or both, features when
// features or both; targets only for labelled data.
//
// Conventions vs emotion (datasets/features/ScorePerturbation.h):
//   data.augment       training clips are perturbed per (train.seed, epoch,
//                      clip) before their features and tokens are computed
//                      (ScoreAugmentation.h); the parsed scores stay in
//                      memory, augmented features bypass the cache;
//   data.test_perturb  a perturbation spec applied to every test clip (e.g.
//                      "no_pedal,velocity_flat:80"): kmidi evaluate then
//                      measures robustness (scripts/bench_emotion_robustness.sh);
//   data.normalise     a spec applied to every clip of every split, last
//                      (after test_perturb and augmentation), e.g.
//                      "velocity_mean:64": conventions the model should not see.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/BatchingConfig.h"
#include "datasets/Dataset.h"
#include "datasets/features/EmotionFeatures.h"
#include "datasets/features/ScoreAugmentation.h"
#include "datasets/midi/Score.h"

namespace kmidi::tokenizer {
class Tokenizer;
}

namespace kmidi::data {

struct EmotionDataConfig : config::Section {
  config::Path prepared;        ///< REQUIRED: kmidi prepare's output.dir (shards and tokenizer.json)
  config::Path midi_root;       ///< with features: the prepare config's corpus.root (shard sources are relative to it)
  config::Path feature_cache;   ///< default: <prepared>/emotion_features.cache
  std::string inputs = "features";  ///< features | tokens | both
  int64_t max_length = 512;     ///< tokens per row (T)
  config::Path unlabelled_test; ///< a folder (or .mid file) of MIDI files without labels used as the test split
  std::vector<std::string> splits{"train", "validation", "test"};  ///< shard names of train, validation, test
  BatchingConfig batching;      ///< with token inputs: training micro-batches by token budget
  features::ScoreAugmentConfig augment;  ///< training augmentation (off by default)
  std::string test_perturb;     ///< perturbation spec for the test split ("" or none: off)
  std::string normalise;        ///< spec applied to every clip, last ("" or none: off)
  void visit(config::Visitor& v) override;
  bool uses_tokens() const { return inputs != "features"; }
  bool uses_features() const { return inputs != "tokens"; }
  /// The feature cache file (explicit or the default beside the shards).
  std::string feature_cache_path() const;
};

/// (valence, arousal) signs of a quadrant class id 0..3 (Q1..Q4).
std::array<float, 2> quadrant_signs(int64_t quadrant_id);

/// One clip in memory (emotion data sets are small: EMOPIA holds 1,078 clips).
struct EmotionClip {
  std::string id;                ///< source path relative to the corpus root (or the folder)
  std::vector<int32_t> tokens;   ///< empty without token inputs
  features::EmotionFeatures features{};  ///< zeros without feature inputs
  int64_t quadrant = -1;         ///< 0..3; -1 unlabelled
  std::shared_ptr<const midi::Score> score;  ///< kept for training augmentation only
};

struct EmotionDatasetOptions {
  bool tokens = false;
  bool features = true;
  bool labelled = true;
  int64_t max_length = 512;
  int32_t pad_id = 0;
  int64_t tokens_per_batch = 0;  ///< training token budget (Dataset::tokens_per_batch); 0: off
  /// Training augmentation: clips with a score are perturbed per (seed,
  /// epoch, index) and their features (and tokens, re-encoded with
  /// `tokenizer`) recomputed. item_cost stays the unaugmented length.
  features::ScoreAugmentConfig augment;
  std::vector<features::Perturbation> normalise;  ///< applied after the augmentation
  uint64_t augment_seed = 0;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;  ///< with tokens and augmentation
};

class EmotionDataset final : public Dataset {
 public:
  /// Throws UsageError when a labelled clip has no quadrant in 0..3.
  EmotionDataset(std::vector<EmotionClip> clips, EmotionDatasetOptions options);

  size_t size() const override { return clips_.size(); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_targets() const override { return options_.labelled; }
  std::string item_id(size_t index) const override { return clips_.at(index).id; }
  int64_t item_cost(size_t index) const override;
  int64_t tokens_per_batch() const override { return options_.tokens_per_batch; }

  /// Selects the augmentation draws of `epoch` (thread-safe).
  void set_epoch(int64_t epoch) const override { epoch_.store(epoch); }

  const std::vector<EmotionClip>& clips() const { return clips_; }
  const EmotionDatasetOptions& options() const { return options_; }
  /// Clip `index` as the current epoch shows it (augmented when augmentation is on).
  EmotionClip shown_clip(size_t index) const;

 private:
  std::vector<EmotionClip> clips_;
  EmotionDatasetOptions options_;
  mutable std::atomic<int64_t> epoch_{0};
};

/// How clips are loaded beyond their source.
struct ClipLoading {
  /// Applied to every clip before its features and tokens are computed
  /// (perturbed features are not cached).
  std::vector<features::Perturbation> perturb;
  std::vector<features::Perturbation> normalise;  ///< applied after `perturb`, to every clip
  bool keep_scores = false;  ///< keep each clip's parsed score (for training augmentation)
};

/// The clips of shard `split_name` in <config.prepared>. Throws DataError for
/// unreadable shards or MIDI files, a tokenizer.json that does not match the
/// shard, or a quadrant label outside 1..4 (naming the clip).
std::vector<EmotionClip> load_emotion_clips(const EmotionDataConfig& config, const std::string& split_name,
                                            bool* labelled, const ClipLoading& loading = {});

/// The clips of every MIDI file under `path` (a folder, searched recursively
/// for *.mid and *.midi, or one file), without labels.
std::vector<EmotionClip> load_unlabelled_clips(const EmotionDataConfig& config, const std::string& path,
                                               const ClipLoading& loading = {});

}  // namespace kmidi::data

#pragma once
// Training augmentation of emotion clips (data.augment): each training clip,
// each epoch, gets its own draw of the perturbations of ScorePerturbation.h,
// applied to the parsed score before its features and tokens are computed.
// The draw is a pure function of (train.seed, epoch, clip index), so a
// resumed run sees exactly the clips an uninterrupted one does. Torch-free.
//
// data.augment keys (all off by default; the draw order is the order below):
//   crop_s: [lo, hi]        with probability crop_p, a window of lo..hi seconds
//   crop_p: 0..1            (uniform) at a uniform start inside the clip
//   tempo_scale: [lo, hi]   played faster/slower by a factor drawn log-uniformly
//   tempo_meta: [lo, hi]    stated bpm x a log-uniform factor, same seconds
//   transpose: [lo, hi]     semitones, uniform over the integers lo..hi
//   velocity_scale: [lo, hi] velocity factor, uniform
//   velocity_flatten_p: 0..1 with this probability, 1, 2 or 3 velocity levels
//                           (equally likely; 1 level: one velocity in 48..100)
//   pedal_removal_p: 0..1   sustain pedal events removed (no_pedal) ...
//   pedal_bake_p: 0..1      ... or baked into the durations (pedal_bake);
//                           pedal_removal_p + pedal_bake_p <= 1

#include <cstdint>
#include <vector>

#include "core/Config.h"
#include "datasets/features/ScorePerturbation.h"

namespace kmidi::features {

struct ScoreAugmentConfig : config::Section {
  std::vector<double> crop_s{0.0, 0.0};
  double crop_p = 0.0;
  std::vector<double> tempo_scale{1.0, 1.0};
  std::vector<double> tempo_meta{1.0, 1.0};
  std::vector<int64_t> transpose{0, 0};
  std::vector<double> velocity_scale{1.0, 1.0};
  double velocity_flatten_p = 0.0;
  double pedal_removal_p = 0.0;
  double pedal_bake_p = 0.0;
  void visit(config::Visitor& v) override;
  /// Whether any key changes a clip.
  bool enabled() const;
};

/// The perturbations of clip `index` in `epoch` (a clip of `clip_seconds`).
/// Empty when nothing is drawn.
std::vector<Perturbation> draw_augmentation(const ScoreAugmentConfig& config, uint64_t seed, int64_t epoch,
                                            int64_t index, double clip_seconds);

}  // namespace kmidi::features

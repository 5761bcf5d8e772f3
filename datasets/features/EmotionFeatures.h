#pragma once
// A 128-value description of a piece for emotion recognition: pitch, key and
// mode, intervals, rhythm, metre, dynamics, texture, tempo and pedalling.
// Every time-based value comes from the tempo map (seconds) or from beats
// (quarter notes), never from raw ticks. Torch-free.
//
// The layout (which value sits at which index, and its unit) is the table in
// EmotionFeatureLayout.h, listed in docs/emotion_features.md.

#include <array>
#include <cstddef>

#include "datasets/features/EmotionFeatureLayout.h"
#include "datasets/midi/Score.h"

namespace kmidi::features {

using EmotionFeatures = std::array<float, kEmotionFeatureSize>;

/// Computes the vector above for a whole score. An empty score (no notes)
/// gives all zeros except the tempo, metre and duration entries.
EmotionFeatures emotion_features(const midi::Score& score);

/// Krumhansl–Kessler key estimate from a pitch-class histogram: the tonic
/// (0 = C) and whether the best key is major, with both best correlations.
struct KeyEstimate {
  int tonic = 0;
  bool major = true;
  double major_correlation = 0.0, minor_correlation = 0.0;
};
KeyEstimate estimate_key(const std::array<double, 12>& pitch_class_histogram);

}  // namespace kmidi::features

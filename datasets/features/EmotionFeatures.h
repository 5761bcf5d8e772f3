#pragma once
// A 128-value description of a piece for emotion recognition: pitch, key and
// mode, intervals, rhythm, metre, dynamics, texture, tempo and pedalling.
// Every time-based value comes from the tempo map (seconds) or from beats
// (quarter notes), never from raw ticks. Torch-free.
//
// Layout (index: value). Histograms sum to 1 (all zeros when empty). Scaled
// values are divided by the constant shown and clipped to [0, 1] unless the
// entry says otherwise. "Pitched notes" excludes channel 10 (drums).
//
//   0-11   pitch-class histogram of pitched notes, weighted by duration in beats
//   12-23  the same rotated so that the estimated tonic is at 0 (key-invariant)
//   24     best major-key Pearson correlation (Krumhansl–Kessler profiles), in [-1, 1]
//   25     best minor-key correlation, in [-1, 1]
//   26     24 − 25: mode (positive = major), in [-2, 2]
//   27     mean pitch /127            28  pitch std /24
//   29     lowest pitch /127          30  highest pitch /127
//   31     pitch range /88
//   32     top voice (highest note of each onset) mean pitch /127
//   33     bass (lowest note of each onset) mean pitch /127
//   34-36  fraction of pitched notes below 48, in [48, 72), at or above 72
//   37-49  melodic (top voice) interval histogram: |interval| 0..11 semitones, 12+
//   50     mean |melodic interval| /12
//   51-53  fractions of melodic steps that ascend, descend, repeat
//   54-60  harmonic interval-class histogram of note pairs sounding together at
//          each onset: ic 0 (unison/octave) .. 6 (tritone)
//   61     consonant share of those pairs (ic 0, 3, 4, 5)
//   62     pitched notes per second /20    63  pitched notes per beat /8
//   64     onsets per second /10           65  onsets per beat /4
//   66     inter-onset interval mean (s) /1     67  IOI std (s) /1
//   68     IOI median (s) /1                    69  IOI mean (beats) /2
//   70     IOI std (beats) /2                   71  IOI coefficient of variation /2
//   72-75  onset metric positions: on a beat, on an off-beat 8th, on an off-8th 16th,
//          elsewhere (tolerance 1/24 beat)
//   76     note duration mean (s) /2       77  duration std (s) /2
//   78     duration mean (beats) /4
//   79     staccato share (duration < 1/4 beat)   80  legato share (>= 1 beat)
//   81     velocity mean /127   82  velocity std /64   83  min /127   84  max /127
//   85-92  velocity histogram, 8 bins of 16
//   93     velocity slope over time, per minute /127, in [-1, 1]
//   94     accent share (velocity > mean + std)
//   95     time-weighted polyphony while sounding /8    96  max polyphony /16
//   97     silent share of the span from first onset to last release
//   98     time-weighted tempo (bpm) /200  99  tempo std /50
//   100    minimum tempo /200              101 maximum tempo /200
//   102    tempo changes per minute /10
//   103-107 one-hot dominant time signature by duration: 2/4, 3/4, 4/4, 6/8, other
//   108    share of time the sustain pedal (CC64 >= 64) is down on any channel
//   109    pedal presses per minute /30
//   110    pitch-class entropy / log2 12     111  pitch entropy / log2 88
//   112    mean distinct pitch classes per bar /12
//   113    drum share of all notes           114  distinct pitched programs /16
//   115    piece duration (s) /600
//   116-127 top-voice pitch-class histogram rotated to the tonic (melodic modality)

#include <array>
#include <cstddef>

#include "datasets/midi/Score.h"

namespace kmidi::features {

constexpr size_t kEmotionFeatureSize = 128;
using EmotionFeatures = std::array<float, kEmotionFeatureSize>;

/// Computes the vector above for a whole score. An empty score (no notes)
/// gives all zeros except the tempo, metre and duration entries.
EmotionFeatures emotion_features(const midi::Score& score);

/// Short names of the 128 entries ("pc_hist_0", "major_corr", ...), for reports.
const std::array<const char*, kEmotionFeatureSize>& emotion_feature_names();

/// Krumhansl–Kessler key estimate from a pitch-class histogram: the tonic
/// (0 = C) and whether the best key is major, with both best correlations.
struct KeyEstimate {
  int tonic = 0;
  bool major = true;
  double major_correlation = 0.0, minor_correlation = 0.0;
};
KeyEstimate estimate_key(const std::array<double, 12>& pitch_class_histogram);

}  // namespace kmidi::features

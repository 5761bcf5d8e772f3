#pragma once
// The 32 `midi_features` spectocloud reads (layout: ../shared/CONTRACTS.md),
// computed from a parsed score for an excerpt [t0, t1) in seconds. Times come
// from the score's tempo map (Note::start_s / end_s, TempoChange::seconds),
// never from ticks. Torch-free.
//
// Notation: D = t1 - t0. For a note n, ov(n) = min(n.end_s, t1) - max(n.start_s, t0),
// the time it sounds inside the excerpt. "Pitched" means channel != 9 (the
// General MIDI drum channel, whose pitches name drums, not pitches).
//   O  (onsets)   = notes with t0 <= start_s < t1
//   S  (sounding) = notes with ov(n) > 0 (zero-length notes never sound)
//   A  (active)   = S united with O
// Suffix p = the pitched notes of a set (Op, Sp, Ap). clamp1(x) = min(x, 1).
//
// index  formula                                                     empty excerpt
//  0-11  pitch-class histogram: pc[c] = sum ov(n) over Sp with pitch % 12 == c,
//        divided by sum ov(n) over Sp (sums to 1; C = 0)              all 0
//  12    mean velocity: mean over O of velocity / 127                 0
//  13    note density: clamp1(sum ov(n) over Sp / D / 16), i.e. the time-averaged
//        number of sounding pitched notes, in units of 16             0
//  14    tempo: min(T / 200, 2), T = (1/D) * integral over [t0, t1) of bpm(t) dt,
//        the time-weighted mean bpm; bpm(t) is that of the last tempo change at
//        or before t (120 before the first one or with none)          from the tempo map
//  15    instruments: clamp1(#distinct (track, channel) pairs in A / 8)  0
//  16    programs: clamp1(#distinct programs in Ap / 16) (drum kits do not count)  0
//  17    drum ratio: #(O on channel 9) / #O                           0
//  18    mean duration: clamp1(mean over Op of (end_s - start_s) / 5); whole
//        notes, also where they run past t1                           0
//  19    duration std: clamp1(population std over Op of (end_s - start_s) / 5)  0
//  20    pitch range: (max pitch - min pitch over Ap) / 127            0
//  21    max polyphony: clamp1(max over t in [t0, t1) of #{n in Sp : start_s <= t < end_s} / 16)
//        (a note ending exactly when another starts does not overlap it)  0
//  22    notes per second: clamp1(#O / D / 10)                        0
//  23    inter-onset-interval std: clamp1(population std, in seconds, of the gaps
//        between consecutive distinct onset times of O (all channels; onsets less
//        than 1e-6 s apart count as one)); 0 with fewer than 2 gaps  0
//  24-31 0 (reserved)
// Every value is finite and in [0, 1] (index 14: [0, 2]).

#include <array>
#include <string>
#include <vector>

#include "datasets/midi/Score.h"

namespace kmidi::features {

inline constexpr int kMidiFeatureCount = 32;

/// Indices into MidiFeatures (see the table above).
enum MidiFeatureIndex : int {
  kPitchClass = 0,  ///< first of 12 (C, C#, ..., B)
  kMeanVelocity = 12,
  kNoteDensity = 13,
  kTempo = 14,
  kInstruments = 15,
  kPrograms = 16,
  kDrumRatio = 17,
  kMeanDuration = 18,
  kDurationStd = 19,
  kPitchRange = 20,
  kMaxPolyphony = 21,
  kNotesPerSecond = 22,
  kInterOnsetStd = 23,
  kFirstReserved = 24,
};

/// The 32 values, float32 as the model reads them.
using MidiFeatures = std::array<float, kMidiFeatureCount>;

/// Features of `score` over the excerpt [t0, t1) in seconds (formulas above),
/// computed in double. Throws UsageError unless 0 <= t0 < t1 and both are finite.
MidiFeatures midi_features(const midi::Score& score, double t0, double t1);

/// Time-weighted mean tempo in bpm over [t0, t1) (the T of index 14).
double mean_bpm(const midi::Score& score, double t0, double t1);

/// Short names of the 32 values, e.g. "pc_C", "mean_velocity", "reserved_24".
const std::vector<std::string>& midi_feature_names();

}  // namespace kmidi::features

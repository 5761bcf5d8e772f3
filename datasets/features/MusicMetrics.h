#pragma once
// Objective music metrics of a piece, and how much two sets of pieces agree
// on each of them (after Yang & Lerch 2018, "On the evaluation of generative
// models in music"), for kmidi evaluate-generation. Torch-free.
//
// Per piece (pitched notes only: channel 10 drums are left out):
//   pitch_class_entropy  Shannon entropy (bits) of the pitch-class histogram of
//                        note counts, in [0, log2 12]
//   pitch_range          highest minus lowest pitch, semitones
//   polyphony            mean number of notes sounding, weighted by time, over
//                        the time at least one note sounds
//   note_density         notes per second from the first onset to the last release
//   inter_onset_interval mean gap (s) between consecutive distinct onsets
//                        (onsets closer than 1 ms are one); 0 with one onset
//   note_duration        mean note length (s)
//   velocity             mean note-on velocity
//   empty_bar_rate       share of the bars from bar 0 to the one holding the last
//                        release in which no note sounds (bar length from the
//                        first time signature, 4/4 without one; in beats)
//   scale_consistency    the largest share of notes whose pitch class lies in
//                        one major scale (natural minor scales are the relative
//                        majors' pitch sets, so they add nothing)
// A piece without pitched notes has no metrics (music_metrics returns nullopt).
//
// Agreement of two sets (overlap_area): the two per-piece value distributions
// are each estimated with a Gaussian kernel density (bandwidth by Scott's
// rule, sample std with n - 1, times n^(-1/5)), evaluated on one common grid
// of kOverlapGridPoints points spanning both sets plus 4 bandwidths on either
// side, and the area under the smaller of the two densities is integrated
// with the trapezoid rule: 1 for identical distributions, 0 for disjoint
// ones. A set whose values are all equal (std 0) or a single value gets the
// bandwidth 1% of the span of both sets; two constant sets of the same
// value overlap 1.

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "datasets/midi/Score.h"

namespace kmidi::features {

constexpr size_t kMusicMetricCount = 9;
using MusicMetrics = std::array<double, kMusicMetricCount>;

/// The metric names, in the order of MusicMetrics.
const std::array<const char*, kMusicMetricCount>& music_metric_names();

/// The metrics above, or nullopt when the score has no pitched notes.
std::optional<MusicMetrics> music_metrics(const midi::Score& score);

constexpr int kOverlapGridPoints = 1024;

/// Overlapping area of the kernel density estimates of `a` and `b`, in [0, 1].
/// Throws std::invalid_argument when either set is empty or holds a non-finite value.
double overlap_area(const std::vector<double>& a, const std::vector<double>& b);

/// Scott's-rule bandwidth of `values` (see above; 0 when it degenerates).
double scott_bandwidth(const std::vector<double>& values);

}  // namespace kmidi::features

#pragma once
// Drum parts on a 16th-note grid: the representation of the groove
// (humanization) task, after the Groove MIDI Dataset's humanize setup.
//
// Every drum note (channel index 9) whose General MIDI pitch maps to one of
// nine classes is snapped to the nearest 16th note; its timing offset is the
// onset minus the grid time, in fractions of a step and in milliseconds, both
// from the tempo map. Torch-free.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/midi/Score.h"

namespace kmidi::groove {

constexpr int kDrumClasses = 9;
constexpr int kStepsPerQuarter = 4;  ///< 16th notes

/// kick, snare, closed hi-hat, open hi-hat, low tom, mid tom, high tom, crash, ride.
const std::array<const char*, kDrumClasses>& drum_class_names();

/// The class of a General MIDI drum pitch, or -1 when the pitch is not mapped.
int drum_class(int pitch);

/// The pitch written for a class when a grid becomes MIDI again.
int class_pitch(int drum_class);

/// The tick of grid step `step` (PPQ: step · ticks_per_quarter / 4; SMPTE:
/// steps of 125 ms, the 120 bpm assumption of Score::beats_at).
int64_t grid_tick(const midi::Score& score, int64_t step);

struct Hit {
  int64_t step = 0;          ///< grid index (16th notes from the start)
  int drum_class = 0;
  double offset_steps = 0;   ///< onset − grid time, in steps, within [−0.5, 0.5]
  double offset_ms = 0;      ///< the same in milliseconds
  int velocity = 0;          ///< 1..127
  int64_t note_index = -1;   ///< index into the source Score's notes
};

struct DrumGrid {
  std::vector<Hit> hits;   ///< sorted by (step, class); one hit per class and step
  int64_t num_steps = 0;   ///< steps up to the last hit, inclusive
  int64_t merged = 0;      ///< softer duplicate hits of a class within one step (dropped)
  int64_t unmapped = 0;    ///< drum notes whose pitch maps to no class (dropped)
  double mean_bpm = 120.0; ///< tempo averaged over the part's duration
};

/// Quantizes the drum notes of `score`. The loudest of several hits of one
/// class in one step wins, as in the Groove MIDI Dataset's preprocessing.
DrumGrid quantize_drums(const midi::Score& score);

/// A fixed-length excerpt of a grid.
struct GrooveWindow {
  int64_t first_step = 0;
  std::vector<Hit> hits;  ///< steps relative to first_step
};

/// Windows of `steps` grid steps every `hop` steps, keeping those with at
/// least `min_hits` hits.
std::vector<GrooveWindow> make_windows(const DrumGrid& grid, int64_t steps, int64_t hop, int64_t min_hits);

}  // namespace kmidi::groove

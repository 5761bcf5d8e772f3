#pragma once
// Edits of a parsed score that change its notation conventions, not its
// music: what separates EMOPIA's transcriptions (~50 velocities, sustain
// pedal, one tempo) from MIDI in the wild (1-3 velocities, no pedal, other
// tempi and lengths). Used to measure robustness (data.test_perturb) and to
// augment training (data.augment). Pure functions: each returns a new score
// with its times recomputed (Score::update_times). Torch-free.
//
// Perturbation specs, "name" or "name:value", several joined by ',' and
// applied in the order written (e.g. "no_pedal,velocity_flat:80"):
//   transpose:K       pitched notes up K semitones (K < 0: down); notes that
//                     leave 0..127 are dropped; drums and key signatures stay
//   velocity_flat:V   every note at velocity V (1..127)
//   velocity_levels:N velocities quantised to N equal-width levels of 0..127,
//                     each at its centre round((i + 0.5) * 128 / N):
//                     N=1 -> 64; N=2 -> 32, 96; N=3 -> 21, 64, 107
//   velocity_scale:F  velocity x F, rounded, kept in 1..127
//   velocity_mean:M   velocities scaled so that the pitched notes' mean is M
//                     (a normalisation: undoes velocity_scale up to clipping)
//   no_pedal          sustain-pedal events (CC64) removed; notes keep the
//                     durations the file writes (the key releases)
//   pedal_bake        notes held by the pedal extended to its release, then
//                     CC64 removed (how exports without pedal often sound)
//   tempo_scale:F     played F times faster: every tempo event's bpm x F, so
//                     seconds shrink by F and beats stay
//   tempo_meta:F      the stated bpm x F at unchanged seconds: ticks per
//                     quarter / F (beats change, sounding time does not;
//                     SMPTE files, which have no tempo, are unchanged)
//   tempo_flat:B      one tempo of B bpm in place of the tempo map, every
//                     event at unchanged seconds (ticks recomputed at the
//                     file's ticks per quarter): what is left of beats is
//                     seconds x B / 60, as in EMOPIA's transcriptions (all
//                     at a stated 120 bpm); a normalisation that undoes
//                     tempo_meta up to tick rounding. SMPTE files unchanged
//   crop:S            the first S seconds (notes starting before S, cut at S)

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/midi/Score.h"

namespace kmidi::features {

midi::Score transpose(const midi::Score& score, int semitones);
midi::Score set_velocities(const midi::Score& score, int velocity);
midi::Score quantise_velocities(const midi::Score& score, int levels);
midi::Score scale_velocities(const midi::Score& score, double factor);
midi::Score normalise_velocity_mean(const midi::Score& score, double target_mean);
midi::Score remove_pedal(const midi::Score& score);
midi::Score bake_pedal(const midi::Score& score);
midi::Score scale_tempo(const midi::Score& score, double factor);
midi::Score restate_tempo(const midi::Score& score, double factor);
midi::Score flatten_tempo(const midi::Score& score, double bpm);
/// The `length_s` seconds from `start_s`, moved to time 0: notes starting in
/// [start, start + length) are kept and cut at its end; the tempo, time and
/// key signature and the controller values in force at `start` carry over.
midi::Score crop(const midi::Score& score, double start_s, double length_s);

struct Perturbation {
  std::string name;   ///< transpose, velocity_flat, ... (see above)
  double value = 0.0;  ///< the argument (0 for no_pedal, pedal_bake)
  double start_s = 0.0;  ///< crop only: where the window starts (specs start at 0; augmentation draws it)
};

/// Parses a spec (see above). "" and "none" are the empty list. Throws
/// UsageError naming the part that is wrong (unknown name, missing or
/// out-of-range value).
std::vector<Perturbation> parse_perturbations(const std::string& spec);
midi::Score apply_perturbations(const midi::Score& score, const std::vector<Perturbation>& perturbations);

}  // namespace kmidi::features

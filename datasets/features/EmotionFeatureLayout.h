#pragma once
// The layout of the 128 emotion features (EmotionFeatures.h), defined once:
// named slices of consecutive values with their unit. emotion_features()
// writes through these slices, emotion_feature_names() and the emotion ONNX
// metadata (kmidi.emotion.feature_layout) are derived from them, and
// docs/emotion_features.md is checked against them by a test. Torch-free.
//
// The names are a contract: EmotionFeatureCache::layout_sha256() hashes them,
// so renaming, reordering or resizing a slice invalidates feature caches and
// marks exported models as built for another layout.
//
// Units: histograms ("share, sums to 1") are all zeros when empty. A value
// "/ c" is divided by c and clipped to [0, 1] unless the unit gives another
// range. "Pitched notes" exclude channel 10 (drums).

#include <array>
#include <cstddef>
#include <string>

namespace kmidi::features {

constexpr size_t kEmotionFeatureSize = 128;

/// A run of consecutive feature values with one meaning.
struct EmotionFeatureSlice {
  const char* name;         ///< slice name; the feature name of a one-value slice
  size_t first;             ///< index of its first value
  size_t count;             ///< number of values
  const char* unit;         ///< scale of each value
  const char* description;  ///< what it measures
  /// Space-separated names of the values; empty: "<name>_0" .. "<name>_<count-1>".
  const char* value_names = "";
};

namespace emotion_slice {

// clang-format off
inline constexpr EmotionFeatureSlice kPitchClasses{"pc_hist", 0, 12, "share, sums to 1",
    "pitch-class histogram of pitched notes (C first), weighted by duration in beats"};
inline constexpr EmotionFeatureSlice kPitchClassesFromTonic{"pc_hist_tonic", 12, 12, "share, sums to 1",
    "the same rotated so that the estimated tonic is first (key-invariant)"};
inline constexpr EmotionFeatureSlice kMajorCorrelation{"major_corr", 24, 1, "Pearson r, in [-1, 1]",
    "best major-key correlation with the Krumhansl-Kessler profiles"};
inline constexpr EmotionFeatureSlice kMinorCorrelation{"minor_corr", 25, 1, "Pearson r, in [-1, 1]",
    "best minor-key correlation"};
inline constexpr EmotionFeatureSlice kMode{"mode", 26, 1, "in [-2, 2]",
    "major_corr - minor_corr: positive is major"};
inline constexpr EmotionFeatureSlice kPitchMean{"pitch_mean", 27, 1, "MIDI pitch / 127", "mean pitch"};
inline constexpr EmotionFeatureSlice kPitchStd{"pitch_std", 28, 1, "semitones / 24", "pitch standard deviation"};
inline constexpr EmotionFeatureSlice kPitchMin{"pitch_min", 29, 1, "MIDI pitch / 127", "lowest pitch"};
inline constexpr EmotionFeatureSlice kPitchMax{"pitch_max", 30, 1, "MIDI pitch / 127", "highest pitch"};
inline constexpr EmotionFeatureSlice kPitchRange{"pitch_range", 31, 1, "semitones / 88", "highest - lowest pitch"};
inline constexpr EmotionFeatureSlice kTopVoiceMean{"top_voice_mean", 32, 1, "MIDI pitch / 127",
    "mean pitch of the top voice (highest note of each onset)"};
inline constexpr EmotionFeatureSlice kBassMean{"bass_mean", 33, 1, "MIDI pitch / 127",
    "mean pitch of the bass (lowest note of each onset)"};
inline constexpr EmotionFeatureSlice kRegister{"register", 34, 3, "share, sums to 1",
    "pitched notes below 48, in [48, 72), at or above 72", "register_low register_mid register_high"};
inline constexpr EmotionFeatureSlice kMelodicIntervals{"melodic_interval", 37, 13, "share, sums to 1",
    "top-voice interval histogram: |interval| 0..11 semitones, then 12 or more"};
inline constexpr EmotionFeatureSlice kMelodicIntervalMean{"melodic_interval_mean", 50, 1, "semitones / 12",
    "mean |top-voice interval|"};
inline constexpr EmotionFeatureSlice kMelodicUp{"melodic_up", 51, 1, "share", "top-voice steps that ascend"};
inline constexpr EmotionFeatureSlice kMelodicDown{"melodic_down", 52, 1, "share", "top-voice steps that descend"};
inline constexpr EmotionFeatureSlice kMelodicRepeat{"melodic_repeat", 53, 1, "share", "top-voice steps that repeat"};
inline constexpr EmotionFeatureSlice kHarmonicIntervals{"harmonic_ic", 54, 7, "share, sums to 1",
    "interval classes of note pairs starting together: ic 0 (unison, octave) .. 6 (tritone)"};
inline constexpr EmotionFeatureSlice kConsonance{"consonance", 61, 1, "share",
    "consonant pairs among those (ic 0, 3, 4, 5)"};
inline constexpr EmotionFeatureSlice kNotesPerSecond{"notes_per_s", 62, 1, "notes per second / 20", "pitched note density"};
inline constexpr EmotionFeatureSlice kNotesPerBeat{"notes_per_beat", 63, 1, "notes per beat / 8", "pitched note density"};
inline constexpr EmotionFeatureSlice kOnsetsPerSecond{"onsets_per_s", 64, 1, "onsets per second / 10",
    "onsets (distinct start ticks of pitched notes)"};
inline constexpr EmotionFeatureSlice kOnsetsPerBeat{"onsets_per_beat", 65, 1, "onsets per beat / 4", "onset density"};
inline constexpr EmotionFeatureSlice kIoiMeanSeconds{"ioi_mean_s", 66, 1, "seconds / 1", "inter-onset interval mean"};
inline constexpr EmotionFeatureSlice kIoiStdSeconds{"ioi_std_s", 67, 1, "seconds / 1", "inter-onset interval std"};
inline constexpr EmotionFeatureSlice kIoiMedianSeconds{"ioi_median_s", 68, 1, "seconds / 1", "inter-onset interval median"};
inline constexpr EmotionFeatureSlice kIoiMeanBeats{"ioi_mean_beats", 69, 1, "beats / 2", "inter-onset interval mean"};
inline constexpr EmotionFeatureSlice kIoiStdBeats{"ioi_std_beats", 70, 1, "beats / 2", "inter-onset interval std"};
inline constexpr EmotionFeatureSlice kIoiVariation{"ioi_cv", 71, 1, "ratio / 2",
    "inter-onset interval coefficient of variation (std / mean, in seconds)"};
inline constexpr EmotionFeatureSlice kOnsetPositions{"onset_position", 72, 4, "share, sums to 1",
    "onsets on a beat, on an off-beat 8th, on an off-8th 16th, elsewhere (tolerance 1/24 beat)",
    "onset_on_beat onset_on_8th onset_on_16th onset_off_grid"};
inline constexpr EmotionFeatureSlice kDurationMeanSeconds{"duration_mean_s", 76, 1, "seconds / 2", "note duration mean"};
inline constexpr EmotionFeatureSlice kDurationStdSeconds{"duration_std_s", 77, 1, "seconds / 2", "note duration std"};
inline constexpr EmotionFeatureSlice kDurationMeanBeats{"duration_mean_beats", 78, 1, "beats / 4", "note duration mean"};
inline constexpr EmotionFeatureSlice kStaccato{"staccato", 79, 1, "share", "notes shorter than 1/4 beat"};
inline constexpr EmotionFeatureSlice kLegato{"legato", 80, 1, "share", "notes of 1 beat or longer"};
inline constexpr EmotionFeatureSlice kVelocityMean{"velocity_mean", 81, 1, "velocity / 127", "velocity mean"};
inline constexpr EmotionFeatureSlice kVelocityStd{"velocity_std", 82, 1, "velocity / 64", "velocity std"};
inline constexpr EmotionFeatureSlice kVelocityMin{"velocity_min", 83, 1, "velocity / 127", "lowest velocity"};
inline constexpr EmotionFeatureSlice kVelocityMax{"velocity_max", 84, 1, "velocity / 127", "highest velocity"};
inline constexpr EmotionFeatureSlice kVelocities{"velocity_hist", 85, 8, "share, sums to 1",
    "velocity histogram, 8 bins of 16 (0-15 .. 112-127)"};
inline constexpr EmotionFeatureSlice kVelocitySlope{"velocity_slope", 93, 1, "velocity per minute / 127, in [-1, 1]",
    "least-squares slope of velocity over onset time"};
inline constexpr EmotionFeatureSlice kAccents{"accents", 94, 1, "share", "notes louder than velocity mean + std"};
inline constexpr EmotionFeatureSlice kPolyphonyMean{"polyphony_mean", 95, 1, "notes / 8",
    "time-weighted number of sounding notes while any sounds"};
inline constexpr EmotionFeatureSlice kPolyphonyMax{"polyphony_max", 96, 1, "notes / 16", "most notes sounding at once"};
inline constexpr EmotionFeatureSlice kSilence{"silence", 97, 1, "share",
    "silent share of the span from the first onset to the last release"};
inline constexpr EmotionFeatureSlice kTempoMean{"tempo_mean", 98, 1, "bpm / 200", "time-weighted tempo"};
inline constexpr EmotionFeatureSlice kTempoStd{"tempo_std", 99, 1, "bpm / 50", "std of the tempo map's tempos"};
inline constexpr EmotionFeatureSlice kTempoMin{"tempo_min", 100, 1, "bpm / 200", "slowest tempo"};
inline constexpr EmotionFeatureSlice kTempoMax{"tempo_max", 101, 1, "bpm / 200", "fastest tempo"};
inline constexpr EmotionFeatureSlice kTempoChanges{"tempo_changes", 102, 1, "changes per minute / 10", "tempo changes"};
inline constexpr EmotionFeatureSlice kTimeSignature{"time_signature", 103, 5, "one-hot",
    "dominant time signature by duration: 2/4, 3/4, 4/4, 6/8, other", "ts_2_4 ts_3_4 ts_4_4 ts_6_8 ts_other"};
inline constexpr EmotionFeatureSlice kPedalDown{"pedal_down", 108, 1, "share",
    "time the sustain pedal (CC64 >= 64) is down on any channel"};
inline constexpr EmotionFeatureSlice kPedalPresses{"pedal_presses", 109, 1, "presses per minute / 30", "sustain pedal presses"};
inline constexpr EmotionFeatureSlice kPitchClassEntropy{"pc_entropy", 110, 1, "bits / log2(12)",
    "entropy of the pitch-class histogram"};
inline constexpr EmotionFeatureSlice kPitchEntropy{"pitch_entropy", 111, 1, "bits / log2(88)",
    "entropy of the pitch histogram (note counts)"};
inline constexpr EmotionFeatureSlice kPitchClassesPerBar{"pcs_per_bar", 112, 1, "pitch classes / 12",
    "mean distinct pitch classes per bar (bars from the time signatures)"};
inline constexpr EmotionFeatureSlice kDrumShare{"drum_share", 113, 1, "share", "drum notes among all notes"};
inline constexpr EmotionFeatureSlice kPrograms{"programs", 114, 1, "programs / 16", "distinct programs of pitched notes"};
inline constexpr EmotionFeatureSlice kDuration{"duration", 115, 1, "seconds / 600", "piece duration"};
inline constexpr EmotionFeatureSlice kTopVoicePitchClassesFromTonic{"top_voice_pc_tonic", 116, 12, "share, sums to 1",
    "top-voice pitch-class histogram rotated to the tonic (melodic modality)"};
// clang-format on

}  // namespace emotion_slice

/// Every slice in index order.
inline constexpr std::array<EmotionFeatureSlice, 61> kEmotionFeatureLayout = {
    emotion_slice::kPitchClasses, emotion_slice::kPitchClassesFromTonic, emotion_slice::kMajorCorrelation,
    emotion_slice::kMinorCorrelation, emotion_slice::kMode, emotion_slice::kPitchMean, emotion_slice::kPitchStd,
    emotion_slice::kPitchMin, emotion_slice::kPitchMax, emotion_slice::kPitchRange, emotion_slice::kTopVoiceMean,
    emotion_slice::kBassMean, emotion_slice::kRegister, emotion_slice::kMelodicIntervals,
    emotion_slice::kMelodicIntervalMean, emotion_slice::kMelodicUp, emotion_slice::kMelodicDown,
    emotion_slice::kMelodicRepeat, emotion_slice::kHarmonicIntervals, emotion_slice::kConsonance,
    emotion_slice::kNotesPerSecond, emotion_slice::kNotesPerBeat, emotion_slice::kOnsetsPerSecond,
    emotion_slice::kOnsetsPerBeat, emotion_slice::kIoiMeanSeconds, emotion_slice::kIoiStdSeconds,
    emotion_slice::kIoiMedianSeconds, emotion_slice::kIoiMeanBeats, emotion_slice::kIoiStdBeats,
    emotion_slice::kIoiVariation, emotion_slice::kOnsetPositions, emotion_slice::kDurationMeanSeconds,
    emotion_slice::kDurationStdSeconds, emotion_slice::kDurationMeanBeats, emotion_slice::kStaccato,
    emotion_slice::kLegato, emotion_slice::kVelocityMean, emotion_slice::kVelocityStd, emotion_slice::kVelocityMin,
    emotion_slice::kVelocityMax, emotion_slice::kVelocities, emotion_slice::kVelocitySlope, emotion_slice::kAccents,
    emotion_slice::kPolyphonyMean, emotion_slice::kPolyphonyMax, emotion_slice::kSilence, emotion_slice::kTempoMean,
    emotion_slice::kTempoStd, emotion_slice::kTempoMin, emotion_slice::kTempoMax, emotion_slice::kTempoChanges,
    emotion_slice::kTimeSignature, emotion_slice::kPedalDown, emotion_slice::kPedalPresses,
    emotion_slice::kPitchClassEntropy, emotion_slice::kPitchEntropy, emotion_slice::kPitchClassesPerBar,
    emotion_slice::kDrumShare, emotion_slice::kPrograms, emotion_slice::kDuration,
    emotion_slice::kTopVoicePitchClassesFromTonic};

/// True when the slices follow each other without gap or overlap and cover
/// exactly kEmotionFeatureSize values: a slice left out of the table or given
/// a wrong `first` fails to compile.
constexpr bool emotion_layout_is_contiguous() {
  size_t next = 0;
  for (const EmotionFeatureSlice& s : kEmotionFeatureLayout) {
    if (s.first != next || s.count == 0) return false;
    next += s.count;
  }
  return next == kEmotionFeatureSize;
}
static_assert(emotion_layout_is_contiguous(), "kEmotionFeatureLayout must tile the 128 features in index order");

/// The name of each of the 128 values ("pc_hist_0", "major_corr", ...).
const std::array<const char*, kEmotionFeatureSize>& emotion_feature_names();

/// The layout as JSON for model metadata: an array of slices in index order,
/// each {"name", "first", "count", "unit", "description", "values": [names]}.
std::string emotion_feature_layout_json();

}  // namespace kmidi::features

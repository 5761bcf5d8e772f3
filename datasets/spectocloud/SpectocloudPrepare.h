#pragma once
// `kmidi prepare` for spectocloud (a prepare config with `kind: spectocloud`):
// audio excerpts with their mel spectrogram, emotion vector, midi_features and
// deterministic target cloud, cached in one HDF5 file (SpectocloudCache.h).
//
// Sources (each a folder of files, listed sorted; with `limit` N, the files
// k * count / N for k < N, spread evenly over the list):
//   pop909  POP909 MIDI. Each file is rendered to WAV with
//           scripts/render_audio.sh (fluidsynth, GM soundfont) into
//           render.cache_dir/<source name>/ (renders are kept and reused).
//           midi_features come from the same MIDI over the excerpt's window
//           [offset, offset + length) in seconds from the tempo map (the
//           render starts at MIDI time 0). Emotion unknown: all zero.
//           Song id: the file name without extension.
//   emopia  EMOPIA MIDI, rendered as pop909. Emotion from label.csv's 4Q
//           quadrant: emotion[0] = valence, emotion[1] = arousal (+1 / -1:
//           Q1 +v+a, Q2 -v+a, Q3 -v-a, Q4 +v-a); emotion[2] (intensity) and the
//           rest zero (EMOPIA labels no intensity). Song id: the YouTube id in
//           "Q<q>_<id>_<clip>".
//   audio   Recordings without MIDI (e.g. librosa-audio's Ogg clips). They have
//           no MIDI, so midi_features are all zero and has_midi = 0 (the model
//           reads zeros, which no rendered excerpt with notes produces: the
//           pitch-class histogram of an excerpt with notes sums to 1). Emotion
//           unknown: all zero. Song id: the file name without extension.
// Every item records has_midi and has_emotion.
//
// Excerpts: `frames` mel frames (MelConfig::samples_for_frames samples) at
// offsets start_s + k * stride_s, k < max_per_file, that end inside the audio
// (and, with MIDI, before its last note ends). Excerpts quieter than min_rms
// (silence before a song starts) are left out and counted, never kept as
// all-zero spectrograms.
//
// Splits are by song (corpus::hash_split of the song id): no song is in two
// splits. A missing or undecodable audio file, an unreadable MIDI file or a
// failed render is a DataError naming the file under on_error: fail, and a
// listed skip (in the report) under on_error: skip; nothing is ever replaced
// by made-up data.

#include <cstdint>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/ErrorPolicy.h"
#include "datasets/audio/MelSpectrogram.h"
#include "datasets/corpus/Corpus.h"

namespace kmidi::spectocloud {

struct SourceConfig : config::Section {
  std::string name;  ///< REQUIRED: unique; names render folders and item ids
  std::string kind;  ///< REQUIRED: pop909 | emopia | audio
  config::Path root;  ///< REQUIRED: folder of the files (a data path)
  std::vector<std::string> include;  ///< glob patterns (corpus::list_files); default by kind
  int64_t limit = 0;                 ///< keep N files spread over the sorted list; 0: all
  config::Path labels;               ///< emopia: label.csv (ID,4Q); REQUIRED there
  void visit(config::Visitor& v) override;
};

struct ExcerptConfig : config::Section {
  int64_t frames = 64;        ///< mel frames per excerpt (64 ≈ 0.74 s at 44.1 kHz, hop 512)
  double start_s = 0.0;       ///< first offset in each file
  double stride_s = 8.0;      ///< seconds between excerpt starts
  int64_t max_per_file = 16;  ///< most excerpts per file
  double min_rms = 1e-3;      ///< quieter excerpts are left out (counted in the report)
  void visit(config::Visitor& v) override;
};

struct RenderConfig : config::Section {
  config::Path script = "../scripts/render_audio.sh";  ///< relative to the config file
  config::Path cache_dir;  ///< REQUIRED: rendered WAVs, reused across runs
  double gain = 0.5;       ///< fluidsynth master gain (render_audio.sh -g)
  void visit(config::Visitor& v) override;
};

struct CacheOutputConfig : config::Section {
  config::Path file;      ///< REQUIRED: the HDF5 cache
  int deflate_level = 4;  ///< 0..9
  void visit(config::Visitor& v) override;
};

struct SpectocloudPrepareConfig : config::Section {
  std::string kind = "spectocloud";  ///< selects this preparation in `kmidi prepare`
  config::Path data_root;
  std::vector<SourceConfig> sources;
  ExcerptConfig excerpt;
  audio::MelConfig mel;  ///< the model input; the target uses the same with normalization none
  int64_t points = 1200;  ///< target cloud size (the engine's medium level of detail)
  corpus::SplitConfig split;  ///< method hash only (by song id)
  RenderConfig render;
  std::string on_error = "fail";  ///< fail | skip
  CacheOutputConfig output;
  void visit(config::Visitor& v) override;
};

/// Reads a spectocloud prepare config with `key=value` overrides.
SpectocloudPrepareConfig load_spectocloud_prepare_config(const std::string& path,
                                                         const std::vector<std::string>& overrides = {});

struct SpectocloudSplitSummary {
  std::string name;
  int64_t items = 0;
  int64_t songs = 0;
};

struct SpectocloudPrepareReport {
  std::string file;  ///< the cache written
  int64_t files = 0;  ///< source files used
  int64_t items = 0;
  int64_t rendered = 0;        ///< MIDI files rendered now (others came from the render cache)
  int64_t quiet_excerpts = 0;  ///< left out below min_rms
  std::vector<SpectocloudSplitSummary> splits;
  std::vector<data::SkippedItem> skipped;  ///< under on_error: skip
};

/// Runs the preparation; writes the cache atomically and `<file>.report.json`.
SpectocloudPrepareReport run_spectocloud_prepare(const SpectocloudPrepareConfig& config);

/// The song id of an EMOPIA clip name "Q<q>_<youtube id>_<clip>" (no extension);
/// throws DataError when it does not have that shape.
std::string emopia_song_id(const std::string& clip_name);

}  // namespace kmidi::spectocloud

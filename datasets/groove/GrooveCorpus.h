#pragma once
// The Groove MIDI Dataset as windows of drum grids, for the groove
// (humanization) task. Torch-free.
//
// Selection: the rows of info.csv whose `split` column names the split and
// whose `time_signature` is one of the allowed ones (default 4-4 only: a
// 16th-note grid of 2-bar windows assumes 16 steps per bar; 12 of the 1,150
// performances are in 3-4, 6-8, 5-4 or 5-8 and are left out). Both beats and
// fills are used.
//
// Windows: each performance is quantized (DrumGrid.h) and cut into windows
// of `steps` grid steps (default 32 = 2 bars of 4/4) every `hop` steps
// (default 16 = 1 bar for training; validation and test use hop = steps, so
// that every hit counts once in their metrics). Windows with fewer than
// `min_hits` hits are dropped; the last window of a file may extend past its
// end (those steps hold no hits). A window's tempo is its mean bpm on the
// file's tempo map: 60 · (steps / 4) / (seconds from its first to its end step).
//
// Cache: parsing every file takes seconds, so a split's windows are stored
// in one binary file per (split, settings, content) under a cache folder:
//   "KMGROOVE" | uint32 version | char[64] key (sha256 hex of the version,
//   the window settings and every selected file's id, path and content hash)
//   | char[64] sha256 hex of the payload | payload
// A cache whose key differs (data or settings changed) is never read; one
// whose payload does not match its checksum (truncated, corrupt) is rebuilt
// with a warning. Files are written atomically.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/groove/DrumGrid.h"

namespace kmidi::groove {

struct WindowSettings {
  int64_t steps = 32;    ///< window length in 16th-note steps
  int64_t hop = 16;      ///< steps between window starts
  int64_t min_hits = 4;  ///< windows with fewer hits are dropped
  /// Throws UsageError naming the first bad value.
  void validate() const;
};

/// One window of one performance: the model's unit of data.
struct GrooveItem {
  std::string source;        ///< the performance (info.csv id, or a file name)
  std::string player;        ///< who played it (info.csv `drummer`); empty when unknown
  int64_t first_step = 0;    ///< window start on the performance's grid
  double bpm = 120.0;        ///< mean tempo over the window
  std::vector<Hit> hits;     ///< steps relative to first_step; sorted by (step, class)
  /// "<source>@<first_step>", stable across runs.
  std::string id() const { return source + "@" + std::to_string(first_step); }
  /// Milliseconds per grid step at the window's tempo.
  double step_ms() const { return 15000.0 / bpm; }
};

/// A performance listed in info.csv.
struct GrooveSource {
  std::string id;      ///< info.csv `id`, e.g. drummer1/eval_session/1
  std::string path;    ///< absolute path of the MIDI file
  std::string player;  ///< info.csv `drummer`, e.g. drummer1
};

/// The rows of `csv_path` (info.csv) in `split` whose time_signature is in
/// `time_signatures`, in file order; MIDI paths resolve against the CSV's
/// folder. `max_files` > 0 keeps the first ones only. Throws DataError naming
/// the file (and line) for a missing column or file.
std::vector<GrooveSource> read_groove_manifest(const std::string& csv_path, const std::string& split,
                                               const std::vector<std::string>& time_signatures, int64_t max_files = 0);

/// The windows of one quantized performance, with tempos from `score`.
std::vector<GrooveItem> grid_windows(const midi::Score& score, const DrumGrid& grid, const std::string& source,
                                     const WindowSettings& settings);

/// Per drum class: hits and velocity sums over whole performances (every
/// hit once, however many windows hold it).
struct VelocityStats {
  std::array<int64_t, kDrumClasses> hits{};
  std::array<double, kDrumClasses> velocity_sum{};
  /// Mean velocity (MIDI units) of class `c`; 0 when the class has no hit.
  double mean(int c) const;
};

struct GrooveSplit {
  std::vector<GrooveItem> items;
  VelocityStats velocities;
  int64_t files = 0;
  bool from_cache = false;  ///< true when read from the cache folder
};

/// Windows of every source (in source order, each carrying its source's
/// player) and their velocity statistics.
/// With a non-empty `cache_dir`, reads the split's cache when it is valid and
/// writes it otherwise. `split` only names the cache file.
GrooveSplit load_groove_split(const std::vector<GrooveSource>& sources, const WindowSettings& settings,
                              const std::string& split, const std::string& cache_dir);

}  // namespace kmidi::groove

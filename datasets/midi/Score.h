#pragma once
// The in-memory form of a Standard MIDI File after parsing: notes paired and
// timed in ticks, beats and seconds through the file's full tempo map.
// Torch-free; used by the tokenizer, features, validation and the writer.

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::midi {

/// Time division from the header. PPQ files count ticks per quarter note;
/// SMPTE files count frames per second and ticks per frame (tempo events do
/// not change their clock).
struct TimeDivision {
  bool smpte = false;
  int ticks_per_quarter = 480;  ///< PPQ only
  int frames_per_second = 0;    ///< SMPTE only: 24, 25, 29 (29.97 drop-frame) or 30
  int ticks_per_frame = 0;      ///< SMPTE only
};

struct TempoChange {
  int64_t tick = 0;
  int64_t microseconds_per_quarter = 500000;  ///< 120 bpm
  double seconds = 0.0;  ///< time of `tick` on the tempo map
  double bpm() const { return 60'000'000.0 / static_cast<double>(microseconds_per_quarter); }
};

struct TimeSignature {
  int64_t tick = 0;
  int numerator = 4;
  int denominator = 4;  ///< the actual value (4, 8, ...), not the exponent
};

struct KeySignature {
  int64_t tick = 0;
  int sharps = 0;  ///< -7..7, negative for flats
  bool minor = false;
};

struct Note {
  int pitch = 0;     ///< 0..127
  int velocity = 0;  ///< 1..127 (the note-on's)
  int channel = 0;   ///< 0..15; 9 is General MIDI drums
  int program = 0;   ///< program active on the channel at note-on (0..127)
  int track = 0;     ///< index of the MTrk chunk
  int64_t start_tick = 0, end_tick = 0;
  double start_beat = 0.0, end_beat = 0.0;  ///< in quarter notes
  double start_s = 0.0, end_s = 0.0;        ///< from the tempo map
  bool is_drum() const { return channel == 9; }
  int64_t duration_ticks() const { return end_tick - start_tick; }
};

struct ControlChange {
  int64_t tick = 0;
  double seconds = 0.0;
  int channel = 0, track = 0, controller = 0, value = 0;
};

struct ProgramChange {
  int64_t tick = 0;
  double seconds = 0.0;
  int channel = 0, track = 0, program = 0;
};

struct TextEvent {
  int64_t tick = 0;
  int track = 0;
  int type = 0;  ///< meta type: 1 text, 3 track name, 5 lyric, 6 marker, ...
  std::string text;
};

/// Counts of things the reader tolerated, for validation reports.
struct ParseStats {
  int64_t unmatched_note_offs = 0;  ///< note-offs with no open note (ignored)
  int64_t unclosed_notes = 0;       ///< notes open at end of track (dropped)
  int64_t zero_length_notes = 0;    ///< kept
  int64_t trailing_bytes = 0;       ///< bytes after the last chunk
  int64_t unknown_chunks = 0;       ///< non-MTrk chunks skipped
  int64_t sysex_events = 0;
  int64_t missing_end_of_track = 0;  ///< track chunks without an End-of-Track meta (accepted)
  int64_t repairs = 0;               ///< lenient-mode repairs made (all of them, even past the warning cap)
  std::vector<std::string> warnings;  ///< lenient-mode repairs, with byte offsets (at most the first 64 are listed)
};

struct Score {
  int format = 1;  ///< 0, 1 or 2
  int num_tracks = 0;  ///< MTrk chunks read (a lenient read may find fewer than the header announces)
  TimeDivision division;
  std::vector<std::string> track_names;  ///< one per MTrk chunk: its first track-name event ("" when unnamed)
  std::vector<TempoChange> tempos;       ///< sorted; starts at tick 0 (120 bpm if the file has none there)
  std::vector<TimeSignature> time_signatures;  ///< sorted, as in the file (may be empty)
  std::vector<KeySignature> key_signatures;
  std::vector<Note> notes;  ///< sorted by (start_tick, track, channel, pitch)
  std::vector<ControlChange> controls;
  std::vector<ProgramChange> programs;
  std::vector<TextEvent> texts;  ///< every text-like meta event (types 1..15), track names included
  int64_t end_tick = 0;  ///< the latest end-of-track tick
  ParseStats stats;

  /// Seconds at `tick` on this score's tempo map (SMPTE: fixed clock).
  double seconds_at(int64_t tick) const;
  /// Quarter notes at `tick` (SMPTE: assumes 120 bpm for beat positions).
  double beats_at(int64_t tick) const;
  /// Tick at `seconds` (inverse of seconds_at), rounded to the nearest tick.
  int64_t tick_at_seconds(double seconds) const;
  double duration_seconds() const { return seconds_at(end_tick); }

  /// Recomputes TempoChange::seconds, then the beats and seconds of every
  /// note, control and program change from their ticks. Call after building
  /// or editing a score by hand (e.g. when decoding tokens); the reader
  /// already does it. Sorts `tempos` by tick and inserts 120 bpm at tick 0
  /// when the map does not start there.
  void update_times();
};

}  // namespace kmidi::midi

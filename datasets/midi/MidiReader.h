#pragma once
// Standard MIDI File reader: bytes in, a timed Score out. Torch-free.
//
// What it reads
// - Formats 0 and 1. Format 2 (independent sequences, each with its own
//   tempo map) is refused with a DataError in both modes: its tracks share no
//   time line, and a Score has one. Split such a file into one file per track.
//   Formats above 2 are refused in strict mode and read as format 1 (with a
//   warning) in lenient mode. A format-0 file with several track chunks is
//   read like format 1, as mido does.
// - PPQ and SMPTE divisions. SMPTE: seconds = ticks / (fps * ticks_per_frame),
//   fps 29 meaning 29.97; tempo events do not change that clock.
// - Channel messages with running status; meta events (tempo, time and key
//   signatures, text, track name, lyric, marker, ...); sysex (F0) and escape
//   (F7) events, counted and skipped; system common and real-time bytes inside
//   a track, skipped. Events after End-of-Track inside the chunk are read (as
//   mido does); a missing End-of-Track is accepted and counted.
// - Alien chunks (a printable 4-letter id other than MTrk, whose length fits
//   the file) are skipped in both modes, as the SMF spec asks; exactly as many
//   MTrk chunks as the header announces are read, and whatever follows them is
//   counted as trailing bytes.
//
// Timing
// - Formats 0 and 1 have ONE tempo map, built from the tempo events of ALL
//   tracks, merged by tick (ties: track order, then file order; the last event
//   at a tick wins), with 120 bpm from tick 0 until the first change. Every
//   note, control and program change gets its ticks, beats (quarter notes) and
//   seconds from it. Score::tempos always starts at tick 0.
//
// Notes
// - Pairing, per (track, channel, pitch): a note-on with velocity > 0 opens a
//   note; a note-off (0x8n) or a note-on with velocity 0 closes the EARLIEST
//   open note of that key (FIFO), as pretty_midi, miditoolkit and symusic do.
//   A zero-length note (closed at its own tick) is kept and counted; a
//   note-off with nothing open is ignored and counted; notes still open when
//   their track chunk ends are dropped and counted (ParseStats).
// - Note::program is the program of the last program change on the note's
//   channel IN THE NOTE'S TRACK before its note-on in file order (0 when there
//   is none), as pretty_midi and miditoolkit assign instruments per track.
// - Score::notes is sorted by (start_tick, track, channel, pitch), ties in
//   file order. Channel index 9 (MIDI channel 10) is drums (Note::is_drum).
//
// Strict mode rejects, with "<name>: byte <offset>: <reason>":
// - everything mido 1.2.10 rejects: a missing MThd, a header shorter than 6
//   bytes, fewer track chunks than the header announces, a truncated chunk or
//   event, a data byte > 127 in a channel message, running status with no
//   status before it, an undefined status byte (F4 F5 F9 FD), a meta or sysex
//   event longer than 1,000,000 bytes, malformed tempo, time signature, key
//   signature, SMPTE offset, sequence number and channel prefix events;
// - and, beyond mido (documented differences): running status right after a
//   meta, sysex or system event (the SMF spec cancels running status there;
//   mido keeps using the previous status), a variable-length quantity longer
//   than 4 bytes, a division of 0 ticks per quarter, an SMPTE rate other than
//   24, 25, 29 or 30 fps or 0 ticks per frame, a file format above 2.
// mido rejects, but kmidi accepts: well-formed alien chunks (skipped, above).
// mido also reads header fields as signed 16-bit numbers: a track count above
// 32767 makes it read no track at all, where kmidi reads them.
//
// Lenient mode repairs, each recorded in ParseStats::warnings with its offset:
// - a data byte > 127 in a channel message is clamped to 127 (as mido's
//   clip=True does);
// - running status after a meta, sysex or system event reuses the last channel
//   status (what mido does after a meta event);
// - a malformed meta event (see above) is ignored;
// - any other error inside a track (truncated event, undefined status, VLQ
//   too long, running status with nothing before it) ends that track at the
//   last complete event; its open notes are dropped and counted;
// - a track chunk whose declared length runs past the end of the data is read
//   up to the end of the data;
// - fewer track chunks than the header announces: the ones present are used;
// - bytes where a chunk header should be that are not a plausible chunk (a
//   non-printable id or a length past the end of the data): they and the rest
//   of the file are ignored;
// - a header chunk whose declared length runs past the data, when an MTrk
//   chunk follows the usual 6 header bytes: read as 6.
// Both modes: trailing bytes after the last track chunk are accepted and
// counted; a time signature whose denominator exponent exceeds 30 is ignored
// with a warning (mido accepts it; it fits no integer).
//
// Errors never crash or hang: every length is checked against the bytes that
// remain, allocation is bounded by the input's size, every loop advances.

#include <cstdint>
#include <string>
#include <string_view>

#include "datasets/midi/Score.h"

namespace kmidi::midi {

struct ReadOptions {
  /// true: reject malformed files (see above) with a DataError naming the
  /// byte offset. false: repair what can safely be repaired and record a
  /// warning per repair in Score::stats.
  bool strict = true;
  /// read_midi_file refuses larger files before reading them, a guard
  /// against pointing the reader at a huge non-MIDI file. REQUIRES > 0.
  int64_t max_file_bytes = int64_t{256} << 20;
};

/// Reads a Standard MIDI File; throws DataError "<path>: byte <n>: <reason>"
/// for malformed data (strict) and "<path>: <reason>" for I/O failures.
Score read_midi_file(const std::string& path, const ReadOptions& options = {});

/// Parses SMF bytes held in memory; `name` names the source in errors.
Score read_midi_bytes(std::string_view bytes, const std::string& name, const ReadOptions& options = {});

}  // namespace kmidi::midi

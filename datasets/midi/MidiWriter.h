#pragma once
// Standard MIDI File writer: a Score back to bytes. Torch-free.
//
// Layout: format 1 with one MTrk chunk per source track (Note::track,
// ControlChange::track, ...), so that reading the file back gives the same
// track indices; the tempo map, time and key signatures go into track 0
// (the conductor track of format 1). The division is the score's (PPQ or
// SMPTE). Each track starts with its name (when it has one and no track-name
// text event of its own) and ends with End-of-Track at its last event; track
// 0's End-of-Track is at Score::end_tick (or its last event, if later).
//
// Order of events at the same tick within a track: meta events (track name,
// tempo, time signature, key signature, texts), note-offs of notes that began
// earlier, control changes, program changes, note-ons, then note-offs of
// zero-length notes. With the reader's FIFO pairing this reproduces the same
// notes for every score whose notes per (track, channel, pitch) end in the
// order they start (every score the reader returns). Before a note-on whose
// Note::program differs from the program in force on its channel in that
// track, a program change is inserted, so programs round-trip too.
//
// Note-offs are written as 0x8n with velocity 64; channel messages use
// running status, which every meta event cancels (as the spec says). A gap
// longer than the largest delta time (2^28-1 ticks) is bridged with empty
// sequencer-specific meta events (FF 7F 00), which readers ignore.
// Sysex events, pitch bends and aftertouch are not part of a Score and are
// not written.

#include <string>

#include "datasets/midi/Score.h"

namespace kmidi::midi {

/// The SMF bytes of `score`. Throws DataError naming the first offending
/// element ("note 12: velocity 0; expected 1..127") when a value does not fit
/// the format: pitch/velocity/channel/program/controller out of range, a
/// negative tick, a note ending before it starts, a tempo above 0xFFFFFF µs
/// per quarter, a denominator that is not a power of 2, more than 65535
/// tracks, an invalid division, or ticks so far apart that more than 2^27
/// filler events would be needed. Every score the reader returns is writable
/// (it needs at most one filler per event of its file).
std::string write_midi_bytes(const Score& score);

/// Writes write_midi_bytes(score) to `path` atomically (never a half file).
void write_midi_file(const Score& score, const std::string& path);

}  // namespace kmidi::midi

// libFuzzer target for the MIDI reader and writer. Every input is read in
// strict and in lenient mode; a DataError is the only acceptable failure and
// must name the source and a byte offset. Whatever parses must satisfy the
// Score invariants, and must survive the writer: the written bytes must read
// back strictly to the same notes, tempo map and events. Any other outcome
// (a crash, a sanitizer report, another exception, a broken invariant)
// aborts, which libFuzzer records as a finding.
//
// Built only with -DKMIDI_FUZZ=ON (clang): see scripts/fuzz_midi.sh.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/Errors.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/midi/MidiWriter.h"

namespace {

using namespace kmidi::midi;

[[noreturn]] void finding(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "MidiReaderFuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) finding(what);
}

void check_invariants(const Score& s) {
  check(s.num_tracks >= 0 && static_cast<int>(s.track_names.size()) == s.num_tracks, "track names per track");
  check(!s.tempos.empty() && s.tempos.front().tick == 0 && s.tempos.front().seconds == 0.0, "tempo map starts at 0");
  for (size_t i = 1; i < s.tempos.size(); ++i) {
    check(s.tempos[i - 1].tick < s.tempos[i].tick, "tempo ticks increase");
    check(s.tempos[i - 1].seconds <= s.tempos[i].seconds, "tempo seconds never decrease");
  }
  for (size_t i = 0; i < s.notes.size(); ++i) {
    const Note& n = s.notes[i];
    check(n.pitch >= 0 && n.pitch <= 127 && n.velocity >= 1 && n.velocity <= 127, "note pitch and velocity");
    check(n.channel >= 0 && n.channel <= 15 && n.program >= 0 && n.program <= 127, "note channel and program");
    check(n.track >= 0 && n.track < s.num_tracks, "note track");
    check(n.start_tick >= 0 && n.end_tick >= n.start_tick && n.end_tick <= s.end_tick, "note ticks");
    check(n.start_s <= n.end_s && n.start_beat <= n.end_beat, "note times");
    check(n.start_s == s.seconds_at(n.start_tick) && n.end_s == s.seconds_at(n.end_tick), "note seconds on the map");
    if (i > 0) {
      const Note& p = s.notes[i - 1];
      check(p.start_tick < n.start_tick ||
                (p.start_tick == n.start_tick &&
                 (p.track < n.track || (p.track == n.track && (p.channel < n.channel ||
                                                               (p.channel == n.channel && p.pitch <= n.pitch))))),
            "notes sorted");
    }
  }
  const ParseStats& st = s.stats;
  check(st.unmatched_note_offs >= 0 && st.unclosed_notes >= 0 && st.zero_length_notes >= 0 && st.trailing_bytes >= 0 &&
            st.unknown_chunks >= 0 && st.sysex_events >= 0 && st.repairs >= 0,
        "non-negative stats");
  check(st.warnings.size() <= 65, "warnings capped");
}

void check_round_trip(const Score& s) {
  std::string bytes;
  try {
    bytes = write_midi_bytes(s);
  } catch (const kmidi::DataError& e) {
    finding("writer refused a parsed score:", e.what());  // every read score must be writable
  }
  Score again;
  try {
    again = read_midi_bytes(bytes, "rewritten.mid");
  } catch (const kmidi::DataError& e) {
    finding("written bytes do not read back strictly:", e.what());
  }
  check(again.notes.size() == s.notes.size(), "round trip: note count");
  for (size_t i = 0; i < s.notes.size(); ++i) {
    const Note &a = s.notes[i], &b = again.notes[i];
    check(a.pitch == b.pitch && a.velocity == b.velocity && a.channel == b.channel && a.program == b.program &&
              a.track == b.track && a.start_tick == b.start_tick && a.end_tick == b.end_tick && a.start_s == b.start_s &&
              a.end_s == b.end_s,
          "round trip: note");
  }
  check(again.end_tick == s.end_tick, "round trip: end tick");
  check(again.tempos.size() == s.tempos.size(), "round trip: tempo count");
  for (size_t i = 0; i < s.tempos.size(); ++i) {
    check(again.tempos[i].tick == s.tempos[i].tick &&
              again.tempos[i].microseconds_per_quarter == s.tempos[i].microseconds_per_quarter,
          "round trip: tempo");
  }
  check(again.controls.size() == s.controls.size(), "round trip: control count");
  for (size_t i = 0; i < s.controls.size(); ++i) {
    const ControlChange &a = s.controls[i], &b = again.controls[i];
    check(a.tick == b.tick && a.channel == b.channel && a.track == b.track && a.controller == b.controller &&
              a.value == b.value,
          "round trip: control");
  }
  check(again.time_signatures.size() == s.time_signatures.size() && again.key_signatures.size() == s.key_signatures.size(),
        "round trip: signatures");
  check(again.texts.size() == s.texts.size(), "round trip: texts");
  for (size_t i = 0; i < s.texts.size(); ++i) {
    check(again.texts[i].text == s.texts[i].text && again.texts[i].tick == s.texts[i].tick, "round trip: text");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (const bool strict : {true, false}) {
    ReadOptions options;
    options.strict = strict;
    Score score;
    try {
      score = read_midi_bytes(bytes, "fuzz.mid", options);
    } catch (const kmidi::DataError& e) {
      if (std::string_view(e.what()).substr(0, 15) != "fuzz.mid: byte ") finding("error without an offset:", e.what());
      continue;
    }
    check_invariants(score);
    check_round_trip(score);
  }
  return 0;
}

#include "datasets/midi/MidiWriter.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/Errors.h"
#include "core/Files.h"

namespace kmidi::midi {
namespace {

constexpr int64_t kMaxDelta = 0x0FFFFFFF;  // the largest 4-byte variable-length quantity
// Filler events for gaps longer than kMaxDelta, per file. A score the reader
// returns needs at most one per event of its file; only a hand-built score
// with absurd ticks gets near this (7 bytes each: about 940 MB).
constexpr int64_t kMaxBridges = int64_t{1} << 27;

/// Events of one track at the same tick are written in this order.
enum class Kind : uint8_t {
  kTrackName,
  kTempo,
  kTimeSignature,
  kKeySignature,
  kText,
  kNoteOffEarlier,  // a note that began before this tick
  kControl,
  kProgram,
  kNoteOn,
  kNoteOffZero,  // a zero-length note: after its own note-on
};

struct Event {
  int64_t tick;
  Kind kind;
  uint32_t index;  // into the Score vector the kind names (ties keep its order)
};

[[noreturn]] void invalid(const std::string& what) { throw DataError("write_midi: " + what); }

void check_range(int64_t value, int64_t lo, int64_t hi, const char* element, size_t index, const char* field) {
  if (value < lo || value > hi) {
    invalid(fmt::format("{} {}: {} {}; expected {}..{}", element, index, field, value, lo, hi));
  }
}

void check_tick(int64_t tick, const char* element, size_t index) {
  if (tick < 0) invalid(fmt::format("{} {}: tick {}; expected >= 0", element, index, tick));
}

class TrackEncoder {
 public:
  TrackEncoder(std::string& out, int64_t& bridges) : out_(out), bridges_(bridges) {}

  void delta_to(int64_t tick) {
    int64_t delta = tick - tick_;
    // A gap longer than the largest delta time is bridged with empty
    // sequencer-specific meta events, which readers ignore.
    if (delta > kMaxDelta) {
      bridges_ += delta / kMaxDelta;
      if (bridges_ > kMaxBridges) {
        invalid(fmt::format("tick {} is so far from the events before it that the file would need more than {} "
                            "filler events to bridge the gaps",
                            tick, kMaxBridges));
      }
    }
    while (delta > kMaxDelta) {
      put_vlq(static_cast<uint32_t>(kMaxDelta));
      meta(0x7F, {});
      delta -= kMaxDelta;
    }
    put_vlq(static_cast<uint32_t>(delta));
    tick_ = tick;
  }

  void channel(uint8_t status, uint8_t d1) {
    put_status(status);
    out_.push_back(static_cast<char>(d1));
  }

  void channel(uint8_t status, uint8_t d1, uint8_t d2) {
    put_status(status);
    out_.push_back(static_cast<char>(d1));
    out_.push_back(static_cast<char>(d2));
  }

  void meta(uint8_t type, std::string_view data) {
    out_.push_back(static_cast<char>(0xFF));
    out_.push_back(static_cast<char>(type));
    put_vlq(static_cast<uint32_t>(data.size()));
    out_.append(data);
    running_ = 0;  // meta events cancel running status
  }

  int64_t tick() const { return tick_; }

 private:
  void put_status(uint8_t status) {
    if (status != running_) out_.push_back(static_cast<char>(status));
    running_ = status;
  }

  void put_vlq(uint32_t value) {
    char buf[5];
    int n = 0;
    buf[n++] = static_cast<char>(value & 0x7F);
    while (value >>= 7) buf[n++] = static_cast<char>((value & 0x7F) | 0x80);
    while (n > 0) out_.push_back(buf[--n]);
  }

  std::string& out_;
  int64_t& bridges_;
  int64_t tick_ = 0;
  uint8_t running_ = 0;
};

void validate(const Score& s) {
  const TimeDivision& d = s.division;
  if (d.smpte) {
    if (d.frames_per_second != 24 && d.frames_per_second != 25 && d.frames_per_second != 29 &&
        d.frames_per_second != 30) {
      invalid(fmt::format("SMPTE division with {} frames per second; expected 24, 25, 29 or 30", d.frames_per_second));
    }
    if (d.ticks_per_frame < 1 || d.ticks_per_frame > 255) {
      invalid(fmt::format("SMPTE division with {} ticks per frame; expected 1..255", d.ticks_per_frame));
    }
  } else if (d.ticks_per_quarter < 1 || d.ticks_per_quarter > 0x7FFF) {
    invalid(fmt::format("division of {} ticks per quarter; expected 1..32767", d.ticks_per_quarter));
  }
  for (size_t i = 0; i < s.notes.size(); ++i) {
    const Note& n = s.notes[i];
    check_range(n.pitch, 0, 127, "note", i, "pitch");
    check_range(n.velocity, 1, 127, "note", i, "velocity");
    check_range(n.channel, 0, 15, "note", i, "channel");
    check_range(n.program, 0, 127, "note", i, "program");
    check_range(n.track, 0, 0xFFFE, "note", i, "track");
    check_tick(n.start_tick, "note", i);
    if (n.end_tick < n.start_tick) {
      invalid(fmt::format("note {}: ends at tick {} before it starts at tick {}", i, n.end_tick, n.start_tick));
    }
  }
  for (size_t i = 0; i < s.controls.size(); ++i) {
    const ControlChange& c = s.controls[i];
    check_tick(c.tick, "control change", i);
    check_range(c.channel, 0, 15, "control change", i, "channel");
    check_range(c.track, 0, 0xFFFE, "control change", i, "track");
    check_range(c.controller, 0, 127, "control change", i, "controller");
    check_range(c.value, 0, 127, "control change", i, "value");
  }
  for (size_t i = 0; i < s.programs.size(); ++i) {
    const ProgramChange& p = s.programs[i];
    check_tick(p.tick, "program change", i);
    check_range(p.channel, 0, 15, "program change", i, "channel");
    check_range(p.track, 0, 0xFFFE, "program change", i, "track");
    check_range(p.program, 0, 127, "program change", i, "program");
  }
  for (size_t i = 0; i < s.texts.size(); ++i) {
    const TextEvent& t = s.texts[i];
    check_tick(t.tick, "text event", i);
    check_range(t.track, 0, 0xFFFE, "text event", i, "track");
    check_range(t.type, 1, 15, "text event", i, "meta type");
    check_range(static_cast<int64_t>(t.text.size()), 0, kMaxDelta, "text event", i, "length");
  }
  for (size_t i = 0; i < s.track_names.size(); ++i) {
    check_range(static_cast<int64_t>(s.track_names[i].size()), 0, kMaxDelta, "track name", i, "length");
  }
  for (size_t i = 0; i < s.tempos.size(); ++i) {
    check_tick(s.tempos[i].tick, "tempo change", i);
    check_range(s.tempos[i].microseconds_per_quarter, 0, 0xFFFFFF, "tempo change", i, "microseconds per quarter");
  }
  for (size_t i = 0; i < s.time_signatures.size(); ++i) {
    const TimeSignature& t = s.time_signatures[i];
    check_tick(t.tick, "time signature", i);
    check_range(t.numerator, 0, 255, "time signature", i, "numerator");
    if (t.denominator < 1 || (t.denominator & (t.denominator - 1)) != 0) {
      invalid(fmt::format("time signature {}: denominator {}; expected a power of 2", i, t.denominator));
    }
  }
  for (size_t i = 0; i < s.key_signatures.size(); ++i) {
    check_tick(s.key_signatures[i].tick, "key signature", i);
    check_range(s.key_signatures[i].sharps, -7, 7, "key signature", i, "sharps");
  }
  check_tick(s.end_tick, "score end", 0);
}

int log2_exact(int power_of_two) {
  int e = 0;
  while ((1 << e) < power_of_two) ++e;
  return e;
}

}  // namespace

std::string write_midi_bytes(const Score& score) {
  validate(score);

  int num_tracks = std::max({score.num_tracks, static_cast<int>(score.track_names.size()), 1});
  auto see = [&](int track) { num_tracks = std::max(num_tracks, track + 1); };
  for (const Note& n : score.notes) see(n.track);
  for (const ControlChange& c : score.controls) see(c.track);
  for (const ProgramChange& p : score.programs) see(p.track);
  for (const TextEvent& t : score.texts) see(t.track);
  if (num_tracks > 0xFFFF) invalid(fmt::format("{} tracks; the format allows 65535", num_tracks));

  std::vector<std::vector<Event>> tracks(static_cast<size_t>(num_tracks));
  std::vector<bool> has_name_event(static_cast<size_t>(num_tracks), false);
  for (size_t i = 0; i < score.texts.size(); ++i) {
    const TextEvent& t = score.texts[i];
    tracks[t.track].push_back({t.tick, Kind::kText, static_cast<uint32_t>(i)});
    if (t.type == 0x03) has_name_event[t.track] = true;
  }
  for (size_t i = 0; i < score.track_names.size(); ++i) {
    if (!score.track_names[i].empty() && !has_name_event[i]) {
      tracks[i].push_back({0, Kind::kTrackName, static_cast<uint32_t>(i)});
    }
  }
  for (size_t i = 0; i < score.tempos.size(); ++i) tracks[0].push_back({score.tempos[i].tick, Kind::kTempo, static_cast<uint32_t>(i)});
  for (size_t i = 0; i < score.time_signatures.size(); ++i) {
    tracks[0].push_back({score.time_signatures[i].tick, Kind::kTimeSignature, static_cast<uint32_t>(i)});
  }
  for (size_t i = 0; i < score.key_signatures.size(); ++i) {
    tracks[0].push_back({score.key_signatures[i].tick, Kind::kKeySignature, static_cast<uint32_t>(i)});
  }
  for (size_t i = 0; i < score.controls.size(); ++i) {
    tracks[score.controls[i].track].push_back({score.controls[i].tick, Kind::kControl, static_cast<uint32_t>(i)});
  }
  for (size_t i = 0; i < score.programs.size(); ++i) {
    tracks[score.programs[i].track].push_back({score.programs[i].tick, Kind::kProgram, static_cast<uint32_t>(i)});
  }
  for (size_t i = 0; i < score.notes.size(); ++i) {
    const Note& n = score.notes[i];
    auto& events = tracks[n.track];
    events.push_back({n.start_tick, Kind::kNoteOn, static_cast<uint32_t>(i)});
    events.push_back({n.end_tick, n.end_tick == n.start_tick ? Kind::kNoteOffZero : Kind::kNoteOffEarlier,
                      static_cast<uint32_t>(i)});
  }

  std::string out;
  out.reserve(14 + score.notes.size() * 8 + score.controls.size() * 4 + 64 * static_cast<size_t>(num_tracks));
  out.append("MThd", 4);
  auto put16 = [&out](int v) {
    out.push_back(static_cast<char>((v >> 8) & 0xFF));
    out.push_back(static_cast<char>(v & 0xFF));
  };
  out.append("\0\0\0\6", 4);
  put16(1);
  put16(num_tracks);
  if (score.division.smpte) {
    put16(((256 - score.division.frames_per_second) << 8) | score.division.ticks_per_frame);
  } else {
    put16(score.division.ticks_per_quarter);
  }

  int64_t bridges = 0;
  for (int t = 0; t < num_tracks; ++t) {
    std::vector<Event>& events = tracks[t];
    std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      if (a.tick != b.tick) return a.tick < b.tick;
      if (a.kind != b.kind) return a.kind < b.kind;
      return a.index < b.index;
    });
    out.append("MTrk\0\0\0\0", 8);
    const size_t length_at = out.size() - 4;
    TrackEncoder enc(out, bridges);
    std::array<int, 16> program{};  // in force per channel; 0 until a program change
    for (const Event& e : events) {
      enc.delta_to(e.tick);
      switch (e.kind) {
        case Kind::kTrackName:
          enc.meta(0x03, score.track_names[e.index]);
          break;
        case Kind::kTempo: {
          const int64_t us = score.tempos[e.index].microseconds_per_quarter;
          const char data[3] = {static_cast<char>(us >> 16), static_cast<char>((us >> 8) & 0xFF),
                                static_cast<char>(us & 0xFF)};
          enc.meta(0x51, std::string_view(data, 3));
          break;
        }
        case Kind::kTimeSignature: {
          const TimeSignature& ts = score.time_signatures[e.index];
          // 24 MIDI clocks per metronome click and 8 32nds per quarter: the usual values.
          const char data[4] = {static_cast<char>(ts.numerator), static_cast<char>(log2_exact(ts.denominator)), 24, 8};
          enc.meta(0x58, std::string_view(data, 4));
          break;
        }
        case Kind::kKeySignature: {
          const KeySignature& ks = score.key_signatures[e.index];
          const char data[2] = {static_cast<char>(static_cast<int8_t>(ks.sharps)), static_cast<char>(ks.minor ? 1 : 0)};
          enc.meta(0x59, std::string_view(data, 2));
          break;
        }
        case Kind::kText:
          enc.meta(static_cast<uint8_t>(score.texts[e.index].type), score.texts[e.index].text);
          break;
        case Kind::kControl: {
          const ControlChange& c = score.controls[e.index];
          enc.channel(static_cast<uint8_t>(0xB0 | c.channel), static_cast<uint8_t>(c.controller),
                      static_cast<uint8_t>(c.value));
          break;
        }
        case Kind::kProgram: {
          const ProgramChange& p = score.programs[e.index];
          enc.channel(static_cast<uint8_t>(0xC0 | p.channel), static_cast<uint8_t>(p.program));
          program[p.channel] = p.program;
          break;
        }
        case Kind::kNoteOn: {
          const Note& n = score.notes[e.index];
          if (program[n.channel] != n.program) {
            enc.channel(static_cast<uint8_t>(0xC0 | n.channel), static_cast<uint8_t>(n.program));
            program[n.channel] = n.program;
            enc.delta_to(e.tick);  // the note-on follows with a zero delta
          }
          enc.channel(static_cast<uint8_t>(0x90 | n.channel), static_cast<uint8_t>(n.pitch),
                      static_cast<uint8_t>(n.velocity));
          break;
        }
        case Kind::kNoteOffEarlier:
        case Kind::kNoteOffZero: {
          const Note& n = score.notes[e.index];
          enc.channel(static_cast<uint8_t>(0x80 | n.channel), static_cast<uint8_t>(n.pitch), 64);
          break;
        }
      }
    }
    // Track 0 lasts to the score's end; the others end with their last event
    // (extending them all would multiply the bridges of a long silence).
    enc.delta_to(t == 0 ? std::max(enc.tick(), score.end_tick) : enc.tick());
    enc.meta(0x2F, {});
    const size_t length = out.size() - length_at - 4;
    if (length > 0xFFFFFFFFu) invalid(fmt::format("track {} needs {} bytes; a chunk holds at most 4 GiB", t, length));
    for (int i = 0; i < 4; ++i) out[length_at + i] = static_cast<char>((length >> (24 - 8 * i)) & 0xFF);
  }
  return out;
}

void write_midi_file(const Score& score, const std::string& path) {
  const std::string bytes = write_midi_bytes(score);
  files::write_atomic(path, bytes);
}

}  // namespace kmidi::midi

// kmidi inspect FILE.mid [--notes-json] [--lenient]: what the reader makes of
// a MIDI file, as a summary or as one JSON object per note.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "cli/Commands.h"
#include "core/Strings.h"
#include "datasets/midi/MidiReader.h"

namespace kmidi::cli {
namespace {

struct InspectOptions {
  std::string file;
  bool notes_json = false;
  bool lenient = false;
};

/// Text from a MIDI file (any bytes) made safe for a terminal line.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7F || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

void print_notes_json(const midi::Score& score) {
  std::string buffer;
  buffer.reserve(1 << 16);
  for (const midi::Note& n : score.notes) {
    // Seconds with 17 significant digits: the double round-trips exactly.
    fmt::format_to(std::back_inserter(buffer),
                   "{{\"pitch\":{},\"velocity\":{},\"channel\":{},\"program\":{},\"track\":{},\"start_tick\":{},"
                   "\"end_tick\":{},\"start_s\":{:.17g},\"end_s\":{:.17g}}}\n",
                   n.pitch, n.velocity, n.channel, n.program, n.track, n.start_tick, n.end_tick, n.start_s, n.end_s);
    if (buffer.size() > (1 << 16) - 256) {
      std::fwrite(buffer.data(), 1, buffer.size(), stdout);
      buffer.clear();
    }
  }
  std::fwrite(buffer.data(), 1, buffer.size(), stdout);
}

void print_summary(const InspectOptions& opt, const midi::Score& s) {
  std::string out;
  auto line = [&out](const std::string& text) { out += text + "\n"; };
  line(fmt::format("file: {}", printable(opt.file)));
  line(fmt::format("mode: {}", opt.lenient ? "lenient" : "strict"));
  line(fmt::format("format: {}", s.format));
  if (s.division.smpte) {
    line(fmt::format("division: SMPTE {} fps x {} ticks per frame", s.division.frames_per_second == 29 ? "29.97" : std::to_string(s.division.frames_per_second),
                     s.division.ticks_per_frame));
  } else {
    line(fmt::format("division: {} ticks per quarter note", s.division.ticks_per_quarter));
  }
  std::vector<int64_t> notes_per_track(static_cast<size_t>(s.num_tracks), 0);
  for (const midi::Note& n : s.notes) {
    if (n.track < s.num_tracks) ++notes_per_track[n.track];
  }
  line(fmt::format("tracks: {}", s.num_tracks));
  for (int t = 0; t < s.num_tracks; ++t) {
    line(fmt::format("  {}: \"{}\" ({} notes)", t, printable(s.track_names[t]), notes_per_track[t]));
  }
  const double duration = s.duration_seconds();
  line(fmt::format("duration: {:.3f} s ({}), {} ticks", duration, strings::format_duration(duration), s.end_tick));
  line(fmt::format("tempo changes: {} (first {:.3f} bpm at tick {}{})", s.tempos.size(), s.tempos.front().bpm(),
                   s.tempos.front().tick, s.tempos.size() > 1 ? fmt::format(", last {:.3f} bpm", s.tempos.back().bpm()) : ""));
  if (s.time_signatures.empty()) {
    line("time signatures: none");
  } else {
    line(fmt::format("time signatures: {} (first {}/{} at tick {})", s.time_signatures.size(),
                     s.time_signatures.front().numerator, s.time_signatures.front().denominator,
                     s.time_signatures.front().tick));
  }
  if (s.key_signatures.empty()) {
    line("key signatures: none");
  } else {
    const midi::KeySignature& k = s.key_signatures.front();
    line(fmt::format("key signatures: {} (first {} {} {})", s.key_signatures.size(), std::abs(k.sharps),
                     k.sharps < 0 ? "flats" : "sharps", k.minor ? "minor" : "major"));
  }
  int64_t drums = 0;
  int lo = 128, hi = -1;
  for (const midi::Note& n : s.notes) {
    if (n.is_drum()) ++drums;
    lo = std::min(lo, n.pitch);
    hi = std::max(hi, n.pitch);
  }
  if (s.notes.empty()) {
    line("notes: 0");
  } else {
    line(fmt::format("notes: {}, pitch range {}..{}, drum notes {}", s.notes.size(), lo, hi, drums));
  }
  std::map<int, int64_t> programs;  // program -> non-drum notes
  for (const midi::Note& n : s.notes) {
    if (!n.is_drum()) ++programs[n.program];
  }
  std::string program_list;
  for (const auto& [program, count] : programs) {
    program_list += fmt::format("{}{} ({} notes)", program_list.empty() ? "" : ", ", program, count);
  }
  line(fmt::format("programs: {}", program_list.empty() ? "none" : program_list));
  const int64_t sustain =
      std::count_if(s.controls.begin(), s.controls.end(), [](const midi::ControlChange& c) { return c.controller == 64; });
  line(fmt::format("control changes: {} (sustain pedal {}), program changes: {}, text events: {}", s.controls.size(),
                   sustain, s.programs.size(), s.texts.size()));
  const midi::ParseStats& st = s.stats;
  line(fmt::format("parse stats: zero-length notes {}, unmatched note-offs {}, unclosed notes dropped {}, "
                   "sysex events {}, unknown chunks {}, trailing bytes {}, tracks without End-of-Track {}",
                   st.zero_length_notes, st.unmatched_note_offs, st.unclosed_notes, st.sysex_events, st.unknown_chunks,
                   st.trailing_bytes, st.missing_end_of_track));
  line(fmt::format("repairs: {}", st.repairs));
  for (const std::string& w : st.warnings) line("  warning: " + w);
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  auto* cmd = add_command(app, "inspect");
  cmd->add_option("file", opt->file, "Standard MIDI File (.mid, .midi, .kar)")->required();
  cmd->add_flag("--notes-json", opt->notes_json,
                "print one JSON object per note per line: pitch, velocity, channel, program, track, "
                "start_tick, end_tick, start_s, end_s");
  cmd->add_flag("--lenient", opt->lenient, "repair what can be repaired safely instead of rejecting the file");
  cmd->callback([opt] {
    midi::ReadOptions read;
    read.strict = !opt->lenient;
    const midi::Score score = midi::read_midi_file(opt->file, read);
    if (opt->notes_json) {
      print_notes_json(score);
    } else {
      print_summary(*opt, score);
    }
    std::fflush(stdout);
  });
}

}  // namespace kmidi::cli

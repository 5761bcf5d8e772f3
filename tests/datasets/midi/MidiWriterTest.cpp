#include "datasets/midi/MidiWriter.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Strings.h"
#include "datasets/midi/MidiReader.h"
#include "tests/datasets/midi/SmfBytes.h"
#include "tests/support/TestSupport.h"

namespace kmidi::midi {
namespace {

using namespace kmidi::midi::testing;
namespace fs = std::filesystem;

const std::string kData = KMIDI_SHARED_DATA;

fs::path scratch(const std::string& name) { return test::scratch_dir("midi_writer_" + name); }

std::vector<std::string> all_midi_files() {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(kData)) {
    const std::string ext = strings::to_lower(e.path().extension().string());
    if (e.is_regular_file() && (ext == ".mid" || ext == ".midi" || ext == ".kar")) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Score read_any(const std::string& path) {
  try {
    return read_midi_file(path);
  } catch (const DataError&) {
    ReadOptions lenient;
    lenient.strict = false;
    return read_midi_file(path, lenient);
  }
}

/// The first difference between two scores, or "" (seconds to 1e-9).
std::string difference(const Score& a, const Score& b) {
  if (a.division.smpte != b.division.smpte) return "division kind";
  if (a.division.smpte ? a.division.frames_per_second != b.division.frames_per_second ||
                             a.division.ticks_per_frame != b.division.ticks_per_frame
                       : a.division.ticks_per_quarter != b.division.ticks_per_quarter) {
    return "division";
  }
  if (a.num_tracks != b.num_tracks) return "track count " + std::to_string(a.num_tracks) + " vs " + std::to_string(b.num_tracks);
  if (a.track_names != b.track_names) return "track names";
  if (a.end_tick != b.end_tick) return "end tick " + std::to_string(a.end_tick) + " vs " + std::to_string(b.end_tick);
  if (a.notes.size() != b.notes.size()) return "note count " + std::to_string(a.notes.size()) + " vs " + std::to_string(b.notes.size());
  for (size_t i = 0; i < a.notes.size(); ++i) {
    const Note& x = a.notes[i];
    const Note& y = b.notes[i];
    if (x.pitch != y.pitch || x.velocity != y.velocity || x.channel != y.channel || x.program != y.program ||
        x.track != y.track || x.start_tick != y.start_tick || x.end_tick != y.end_tick ||
        std::abs(x.start_s - y.start_s) > 1e-9 || std::abs(x.end_s - y.end_s) > 1e-9 ||
        std::abs(x.start_beat - y.start_beat) > 1e-9 || std::abs(x.end_beat - y.end_beat) > 1e-9) {
      return "note " + std::to_string(i);
    }
  }
  if (a.tempos.size() != b.tempos.size()) return "tempo count";
  for (size_t i = 0; i < a.tempos.size(); ++i) {
    if (a.tempos[i].tick != b.tempos[i].tick || a.tempos[i].microseconds_per_quarter != b.tempos[i].microseconds_per_quarter ||
        std::abs(a.tempos[i].seconds - b.tempos[i].seconds) > 1e-9) {
      return "tempo " + std::to_string(i);
    }
  }
  if (a.time_signatures.size() != b.time_signatures.size()) return "time signature count";
  for (size_t i = 0; i < a.time_signatures.size(); ++i) {
    const TimeSignature &x = a.time_signatures[i], &y = b.time_signatures[i];
    if (x.tick != y.tick || x.numerator != y.numerator || x.denominator != y.denominator) return "time signature " + std::to_string(i);
  }
  if (a.key_signatures.size() != b.key_signatures.size()) return "key signature count";
  for (size_t i = 0; i < a.key_signatures.size(); ++i) {
    const KeySignature &x = a.key_signatures[i], &y = b.key_signatures[i];
    if (x.tick != y.tick || x.sharps != y.sharps || x.minor != y.minor) return "key signature " + std::to_string(i);
  }
  if (a.controls.size() != b.controls.size()) return "control count";
  for (size_t i = 0; i < a.controls.size(); ++i) {
    const ControlChange &x = a.controls[i], &y = b.controls[i];
    if (x.tick != y.tick || x.channel != y.channel || x.track != y.track || x.controller != y.controller ||
        x.value != y.value || std::abs(x.seconds - y.seconds) > 1e-9) {
      return "control " + std::to_string(i);
    }
  }
  if (a.texts.size() != b.texts.size()) return "text count";
  for (size_t i = 0; i < a.texts.size(); ++i) {
    const TextEvent &x = a.texts[i], &y = b.texts[i];
    if (x.tick != y.tick || x.track != y.track || x.type != y.type || x.text != y.text) return "text " + std::to_string(i);
  }
  return "";
}

Note note(int pitch, int velocity, int channel, int64_t start, int64_t end, int track = 0, int program = 0) {
  Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.channel = channel;
  n.start_tick = start;
  n.end_tick = end;
  n.track = track;
  n.program = program;
  return n;
}

Score small_score(int ticks_per_quarter) {
  Score s;
  s.division.ticks_per_quarter = ticks_per_quarter;
  s.num_tracks = 1;
  s.track_names = {""};
  TempoChange t;
  s.tempos = {t};
  return s;
}

TEST(MidiWriter, ExactBytesWithRunningStatus) {
  Score s = small_score(96);
  s.notes = {note(60, 100, 0, 0, 96), note(64, 90, 0, 0, 96)};
  s.end_tick = 96;
  const std::string expected = raw({'M', 'T', 'h', 'd', 0, 0, 0, 6, 0, 1, 0, 1, 0, 0x60,  //
                                    'M', 'T', 'r', 'k', 0, 0, 0, 0x19,                    //
                                    0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20,              // tempo 500000
                                    0x00, 0x90, 0x3C, 0x64,                                // note-on 60
                                    0x00, 0x40, 0x5A,                                      // running status: note-on 64
                                    0x60, 0x80, 0x3C, 0x40,                                // 96 ticks later, note-off 60
                                    0x00, 0x40, 0x40,                                      // running status: note-off 64
                                    0x00, 0xFF, 0x2F, 0x00});
  EXPECT_EQ(write_midi_bytes(s), expected);
}

TEST(MidiWriter, RoundTripsEveryRealFileOfTheSharedData) {
  const std::vector<std::string> files = all_midi_files();
  ASSERT_GT(files.size(), 3000u);
  size_t compared = 0, notes = 0;
  for (const std::string& path : files) {
    Score original;
    try {
      original = read_any(path);
    } catch (const DataError& e) {
      ADD_FAILURE() << "unreadable even leniently: " << e.what();
      continue;
    }
    const std::string bytes = write_midi_bytes(original);
    const Score again = read_midi_bytes(bytes, path + " (rewritten)");  // strict: the output is well-formed
    const std::string diff = difference(original, again);
    EXPECT_EQ(diff, "") << path;
    EXPECT_GE(again.programs.size(), original.programs.size()) << path;
    EXPECT_EQ(again.stats.repairs, 0);
    EXPECT_EQ(again.stats.unmatched_note_offs, 0) << path;
    EXPECT_EQ(again.stats.unclosed_notes, 0) << path;
    ++compared;
    notes += original.notes.size();
  }
  EXPECT_EQ(compared, files.size());
  EXPECT_GT(notes, 2'000'000u);
}

TEST(MidiWriter, MidoReadsTheWrittenFilesAsTheScoresSay) {
  // The independent check: mido (through the reference script) parses what
  // the writer produced and finds the notes and times of the source score.
  const fs::path dir = scratch("mido");
  const std::vector<std::string> sources = {
      kData + "/pop909/POP909/001/001.mid",
      kData + "/groove-midi/groove/drummer1/session1/102_funk_95_beat_4-4.mid",
      kData + "/emopia/EMOPIA_1.0/midis/Q1_0vLPYiPN7qY_0.mid",
      kData + "/miditok-tests/tests/MIDIs_multitrack/Funkytown.mid",
      kData + "/mma-examples/examples/lyrics/twinkle-kar.kar",
      kData + "/symusic-tests/tests/testcases/MIDIs_corrupted/Issue104_Bizarre_Love_Triangle2.mid",
  };
  std::map<std::string, Score> scores;
  for (size_t i = 0; i < sources.size(); ++i) {
    const std::string name = "out" + std::to_string(i) + ".mid";
    scores[name] = read_any(sources[i]);
    write_midi_file(scores[name], (dir / name).string());
  }
  const std::string command =
      "/usr/bin/python3 '" + std::string(KMIDI_SOURCE_DIR) + "/tests/reference/mido_notes.py' '" + dir.string() + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  ASSERT_EQ(::pclose(pipe), 0) << command;
  size_t files = 0;
  for (const std::string& line : strings::split(output, '\n')) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line);
    const Score& s = scores.at(record.at("file").get<std::string>());
    const nlohmann::json& r = record.at("strict");
    ASSERT_TRUE(r.at("ok").get<bool>()) << line.substr(0, 200);
    const nlohmann::json& notes = r.at("notes");
    ASSERT_EQ(notes.size(), s.notes.size());
    for (size_t i = 0; i < notes.size(); ++i) {
      const Note& x = s.notes[i];
      ASSERT_EQ(notes[i][0].get<int>(), x.pitch);
      ASSERT_EQ(notes[i][1].get<int>(), x.velocity);
      ASSERT_EQ(notes[i][2].get<int>(), x.channel);
      ASSERT_EQ(notes[i][3].get<int>(), x.program);
      ASSERT_EQ(notes[i][4].get<int>(), x.track);
      ASSERT_EQ(notes[i][5].get<int64_t>(), x.start_tick);
      ASSERT_EQ(notes[i][6].get<int64_t>(), x.end_tick);
      ASSERT_NEAR(notes[i][7].get<double>(), x.start_s, 1e-9);
      ASSERT_NEAR(notes[i][8].get<double>(), x.end_s, 1e-9);
    }
    EXPECT_EQ(r.at("format").get<int>(), 1);
    ++files;
  }
  EXPECT_EQ(files, sources.size());
}

TEST(MidiWriter, FifoOverlapsZeroLengthNotesAndProgramsRoundTrip) {
  Score s = small_score(480);
  s.num_tracks = 2;
  s.track_names = {"", "lead"};
  // One key, FIFO-consistent (ends in start order), overlapping, with
  // zero-length notes at 0 and at 150 that share their tick with longer ones.
  s.notes = {note(60, 10, 0, 0, 0, 1, 5),       note(60, 20, 0, 0, 100, 1, 5),    note(60, 30, 0, 50, 150, 1, 5),
             note(60, 40, 0, 150, 150, 1, 7),   note(60, 50, 0, 150, 300, 1, 7),  note(38, 90, 9, 150, 160, 1, 0)};
  s.end_tick = 400;
  s.update_times();
  Score again = read_midi_bytes(write_midi_bytes(s), "fifo.mid");
  EXPECT_EQ(again.track_names[1], "lead");
  ASSERT_EQ(again.texts.size(), 1u);  // the name, written from track_names, is read back as a text event too
  EXPECT_EQ(again.texts[0].type, 3);
  again.texts.clear();
  EXPECT_EQ(difference(s, again), "");
  EXPECT_EQ(again.stats.zero_length_notes, 2);
  EXPECT_EQ(again.programs.size(), 2u);  // inserted before the first notes of program 5 and of program 7
}

TEST(MidiWriter, SmpteDivisionAndSignaturesRoundTrip) {
  Score s;
  s.division.smpte = true;
  s.division.frames_per_second = 29;
  s.division.ticks_per_frame = 80;
  s.num_tracks = 1;
  s.track_names = {"x"};
  s.texts = {TextEvent{0, 0, 3, "x"}};
  s.time_signatures = {TimeSignature{0, 7, 8}, TimeSignature{2000, 2, 2}};
  s.key_signatures = {KeySignature{0, -6, true}};
  ControlChange c;
  c.tick = 10;
  c.controller = 64;
  c.value = 127;
  s.controls = {c};
  s.notes = {note(100, 1, 15, 0, 2398)};
  s.end_tick = 2398;
  s.update_times();
  const Score again = read_midi_bytes(write_midi_bytes(s), "smpte.mid");
  EXPECT_EQ(difference(s, again), "");
  EXPECT_NEAR(again.notes[0].end_s, 1.0, 1e-3);  // 2398 ticks / (29.97 * 80)
}

TEST(MidiWriter, GapsLongerThanTheLargestDeltaAreBridged) {
  Score s = small_score(480);
  s.num_tracks = 2;
  s.track_names = {"", ""};
  const int64_t far = (int64_t{1} << 29) + 5;  // two maximal deltas and a bit
  s.notes = {note(60, 100, 0, 0, 10, 1), note(61, 100, 0, far, far + 1, 1)};
  s.tempos.push_back(TempoChange{far - 3, 250000, 0.0});
  s.end_tick = far + 1;
  s.update_times();
  const std::string bytes = write_midi_bytes(s);
  const Score again = read_midi_bytes(bytes, "gap.mid");
  EXPECT_EQ(difference(s, again), "");
  EXPECT_NE(bytes.find(raw({0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0x7F, 0x00})), std::string::npos);  // a bridge
}

TEST(MidiWriter, RejectsValuesTheFormatCannotHold) {
  struct Case {
    std::function<void(Score&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](Score& s) { s.notes[0].velocity = 0; }, "write_midi: note 0: velocity 0; expected 1..127"},
      {[](Score& s) { s.notes[0].pitch = 128; }, "note 0: pitch 128; expected 0..127"},
      {[](Score& s) { s.notes[0].channel = 16; }, "note 0: channel 16; expected 0..15"},
      {[](Score& s) { s.notes[0].end_tick = -1; }, "note 0: ends at tick -1 before it starts at tick 0"},
      {[](Score& s) { s.tempos[0].microseconds_per_quarter = 1 << 24; }, "tempo change 0: microseconds per quarter 16777216"},
      {[](Score& s) { s.time_signatures = {TimeSignature{0, 3, 3}}; }, "time signature 0: denominator 3; expected a power of 2"},
      {[](Score& s) { s.key_signatures = {KeySignature{0, 8, false}}; }, "key signature 0: sharps 8; expected -7..7"},
      {[](Score& s) { s.division.ticks_per_quarter = 0; }, "division of 0 ticks per quarter; expected 1..32767"},
      {[](Score& s) { s.controls = {ControlChange{0, 0.0, 0, 0, 64, 128}}; }, "control change 0: value 128; expected 0..127"},
      {[](Score& s) { s.end_tick = int64_t{1} << 60; }, "would need more than 134217728 filler events"},
  };
  for (const Case& c : cases) {
    Score s = small_score(480);
    s.notes = {note(60, 100, 0, 0, 10)};
    c.edit(s);
    try {
      write_midi_bytes(s);
      ADD_FAILURE() << "no error; expected: " << c.message;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
}

TEST(MidiWriter, WriteFileIsAtomicAndNamesThePathOnFailure) {
  const fs::path dir = scratch("file");
  const Score s = read_midi_file(kData + "/pop909/POP909/002/002.mid");
  const std::string path = (dir / "out 'é'.mid").string();
  write_midi_file(s, path);
  EXPECT_EQ(difference(s, read_midi_file(path)), "");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // no temporary left
  // A folder that cannot be created: its parent is a plain file.
  files::write_atomic((dir / "plain").string(), "x");
  const std::string blocked = (dir / "plain" / "out.mid").string();
  try {
    write_midi_file(s, blocked);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "plain").string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(files::read_all((dir / "plain").string()), "x");
}

}  // namespace
}  // namespace kmidi::midi

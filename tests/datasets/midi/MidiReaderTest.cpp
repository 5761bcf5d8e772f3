#include "datasets/midi/MidiReader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>

#include "core/Errors.h"
#include "core/Files.h"
#include "tests/datasets/midi/SmfBytes.h"
#include "tests/support/TestSupport.h"

namespace kmidi::midi {
namespace {

using namespace kmidi::midi::testing;
namespace fs = std::filesystem;

const std::string kData = KMIDI_SHARED_DATA;
const std::string kControl168 = kData + "/miditok-tests/tests/MIDIs_corrupted/ValueError_Control168.mid";
const std::string kIssue104 = kData + "/symusic-tests/tests/testcases/MIDIs_corrupted/Issue104_Bizarre_Love_Triangle2.mid";
const std::string kUnexpectedEof = kData + "/symusic-tests/tests/testcases/MIDIs_corrupted/RunTimeError_unexpected_EOF.mid";

Score read(const std::string& bytes, bool strict = true) {
  ReadOptions options;
  options.strict = strict;
  return read_midi_bytes(bytes, "t.mid", options);
}

/// Runs `f`, expecting a DataError whose message contains `substring`; returns the message.
std::string expect_data_error(const std::function<void()>& f, const std::string& substring) {
  try {
    f();
  } catch (const DataError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(substring), std::string::npos) << "message: " << message;
    return message;
  }
  ADD_FAILURE() << "no DataError; expected one containing: " << substring;
  return "";
}

fs::path scratch(const std::string& name) { return test::scratch_dir("midi_reader_" + name); }

// Tracks are written with 480 ticks per quarter: at 120 bpm a tick is 1/960 s.

TEST(MidiReader, RunningStatusNoteOnsAndVelocityZeroOffs) {
  const Score s = read(smf(0, 480, {ev(0, {0x90, 60, 100}) + ev(0, {64, 90}) + ev(480, {60, 0}) + ev(0, {64, 0}) +
                                    end_of_track()}));
  ASSERT_EQ(s.notes.size(), 2u);
  EXPECT_EQ(s.notes[0].pitch, 60);
  EXPECT_EQ(s.notes[0].velocity, 100);
  EXPECT_EQ(s.notes[1].pitch, 64);
  EXPECT_EQ(s.notes[1].velocity, 90);
  for (const Note& n : s.notes) {
    EXPECT_EQ(n.start_tick, 0);
    EXPECT_EQ(n.end_tick, 480);
    EXPECT_DOUBLE_EQ(n.end_s, 0.5);
    EXPECT_DOUBLE_EQ(n.end_beat, 1.0);
  }
  EXPECT_EQ(s.stats.unmatched_note_offs, 0);
  EXPECT_EQ(s.stats.unclosed_notes, 0);
  EXPECT_EQ(s.format, 0);
  EXPECT_EQ(s.num_tracks, 1);
  EXPECT_EQ(s.end_tick, 480);
}

TEST(MidiReader, NoteOffStatusClosesNoteAndChannelIsKept) {
  const Score s = read(smf(0, 480, {ev(10, {0x99, 36, 110}) + ev(20, {0x89, 36, 64}) + end_of_track()}));
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.notes[0].channel, 9);
  EXPECT_TRUE(s.notes[0].is_drum());
  EXPECT_EQ(s.notes[0].start_tick, 10);
  EXPECT_EQ(s.notes[0].end_tick, 30);
}

TEST(MidiReader, OverlappingNotesOfOneKeyPairFirstInFirstOut) {
  // on@0 (v100), on@100 (v80), off@200, off@300: FIFO gives [0,200] and [100,300];
  // LIFO would give [0,300] and [100,200].
  const Score s = read(smf(0, 480, {ev(0, {0x90, 60, 100}) + ev(100, {0x90, 60, 80}) + ev(100, {0x80, 60, 0}) +
                                    ev(100, {0x80, 60, 0}) + end_of_track()}));
  ASSERT_EQ(s.notes.size(), 2u);
  EXPECT_EQ(s.notes[0].velocity, 100);
  EXPECT_EQ(s.notes[0].start_tick, 0);
  EXPECT_EQ(s.notes[0].end_tick, 200);
  EXPECT_EQ(s.notes[1].velocity, 80);
  EXPECT_EQ(s.notes[1].start_tick, 100);
  EXPECT_EQ(s.notes[1].end_tick, 300);
}

TEST(MidiReader, ZeroLengthNotesAreKeptAndCounted) {
  // A note opened and closed at tick 0; then at tick 100 a new note-on and a
  // note-off on the same key: the off closes the EARLIEST open note (the one
  // from tick 50), the new one stays open until 200.
  const Score s = read(smf(0, 480, {ev(0, {0x90, 60, 100}) + ev(0, {0x80, 60, 0}) + ev(50, {0x90, 60, 90}) +
                                    ev(50, {0x90, 60, 80}) + ev(0, {0x80, 60, 0}) + ev(100, {0x80, 60, 0}) +
                                    end_of_track()}));
  ASSERT_EQ(s.notes.size(), 3u);
  EXPECT_EQ(s.notes[0].start_tick, 0);
  EXPECT_EQ(s.notes[0].end_tick, 0);
  EXPECT_EQ(s.notes[1].start_tick, 50);
  EXPECT_EQ(s.notes[1].end_tick, 100);
  EXPECT_EQ(s.notes[2].start_tick, 100);
  EXPECT_EQ(s.notes[2].end_tick, 200);
  EXPECT_EQ(s.stats.zero_length_notes, 1);
}

TEST(MidiReader, UnmatchedNoteOffIsIgnoredAndCounted) {
  const Score s = read(smf(0, 480, {ev(0, {0x80, 61, 0}) + ev(0, {0x90, 62, 0}) + ev(0, {0x90, 60, 100}) +
                                    ev(10, {0x80, 60, 0}) + end_of_track()}));
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.stats.unmatched_note_offs, 2);
}

TEST(MidiReader, NotesOpenAtTheEndOfTheirTrackAreDroppedPerTrack) {
  // Track 1 opens 60 and never closes it; track 2's note-off does not close a
  // note of another track.
  const Score s = read(smf(1, 480, {end_of_track(), ev(0, {0x90, 60, 100}) + ev(0, {0x90, 62, 100}) +
                                                        ev(10, {0x80, 62, 0}) + end_of_track(100),
                                    ev(50, {0x80, 60, 0}) + end_of_track()}));
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.notes[0].pitch, 62);
  EXPECT_EQ(s.stats.unclosed_notes, 1);
  EXPECT_EQ(s.stats.unmatched_note_offs, 1);
  EXPECT_EQ(s.end_tick, 110);
}

TEST(MidiReader, TempoChangeMidPieceGivesHandComputedSeconds) {
  // 120 bpm until tick 960 (1.0 s), then 240 bpm (250000 us per quarter).
  // Note 1440..1920: 1.0 + 480 * 0.25/480 = 1.25 s .. 1.0 + 960 * 0.25/480 = 1.5 s.
  const Score s = read(smf(1, 480, {tempo(0, 500000) + tempo(960, 250000) + end_of_track(),
                                    ev(1440, {0x90, 60, 100}) + ev(480, {0x80, 60, 0}) + end_of_track()}));
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NEAR(s.notes[0].start_s, 1.25, 1e-12);
  EXPECT_NEAR(s.notes[0].end_s, 1.5, 1e-12);
  EXPECT_DOUBLE_EQ(s.notes[0].start_beat, 3.0);
  EXPECT_DOUBLE_EQ(s.notes[0].end_beat, 4.0);
  ASSERT_EQ(s.tempos.size(), 2u);
  EXPECT_EQ(s.tempos[1].tick, 960);
  EXPECT_NEAR(s.tempos[1].seconds, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.tempos[1].bpm(), 240.0);
  EXPECT_NEAR(s.duration_seconds(), 1.5, 1e-12);
}

TEST(MidiReader, TempoEventsOfEveryTrackFormOneMapLastTrackWinsATie) {
  // No tempo in track 0; track 2 sets 60 bpm at tick 480; track 0's 240 bpm
  // at the same tick loses because track 2 comes later in the merged order.
  // Note of track 1 at 960..1440: 0.5 + 480 * 1.0/480 = 1.5 s .. 0.5 + 960/480 = 2.5 s.
  const std::string name = meta(0, 0x03, "conductor");
  const Score s = read(smf(1, 480, {name + tempo(480, 250000) + end_of_track(),
                                    ev(960, {0x90, 60, 100}) + ev(480, {0x80, 60, 0}) + end_of_track(),
                                    tempo(480, 1000000) + end_of_track()}));
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NEAR(s.notes[0].start_s, 1.5, 1e-12);
  EXPECT_NEAR(s.notes[0].end_s, 2.5, 1e-12);
  ASSERT_EQ(s.tempos.size(), 2u);
  EXPECT_EQ(s.tempos[0].tick, 0);
  EXPECT_EQ(s.tempos[0].microseconds_per_quarter, 500000);  // 120 bpm before the first change
  EXPECT_EQ(s.tempos[1].microseconds_per_quarter, 1000000);
  EXPECT_EQ(s.track_names[0], "conductor");
}

TEST(MidiReader, SmpteDivisionUsesAFixedClock) {
  // 25 fps x 40 ticks per frame = 1000 ticks per second; the tempo event does
  // not change that clock.
  const Score s = read(smf(0, 0xE728, {tempo(0, 1000000) + ev(500, {0x90, 60, 100}) + ev(1000, {0x80, 60, 0}) +
                                       end_of_track()}));
  EXPECT_TRUE(s.division.smpte);
  EXPECT_EQ(s.division.frames_per_second, 25);
  EXPECT_EQ(s.division.ticks_per_frame, 40);
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NEAR(s.notes[0].start_s, 0.5, 1e-12);
  EXPECT_NEAR(s.notes[0].end_s, 1.5, 1e-12);
  EXPECT_NEAR(s.notes[0].end_beat, 3.0, 1e-12);  // 120 bpm assumed for beats

  // 29 means 29.97 frames per second: 2997 ticks at 100 ticks per frame = 1 s.
  const Score d = read(smf(0, 0xE364, {ev(0, {0x90, 60, 100}) + ev(2997, {0x80, 60, 0}) + end_of_track()}));
  EXPECT_EQ(d.division.frames_per_second, 29);
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_NEAR(d.notes[0].end_s, 1.0, 1e-12);

  expect_data_error([] { read(smf(0, 0xE928, {end_of_track()})); }, "byte 12: SMPTE division with 23 frames per second");
  expect_data_error([] { read(smf(0, 0xE700, {end_of_track()})); }, "byte 13: SMPTE division with 0 ticks per frame");
}

TEST(MidiReader, SysexAndEscapeEventsAreCountedAndSkipped) {
  const Score s = read(smf(0, 480, {ev(0, {0xF0, 3, 0x43, 0x12, 0xF7}) + ev(0, {0xF7, 2, 0x01, 0xF7}) +
                                    ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) + end_of_track()}));
  EXPECT_EQ(s.stats.sysex_events, 2);
  ASSERT_EQ(s.notes.size(), 1u);
}

TEST(MidiReader, RunningStatusAfterSysexIsRejectedStrictAndReusedLenient) {
  // Body starts at byte 22: [00 90 3C 64] [00 F0 01 F7] [0A 3E 64]: the data byte 0x3E is at byte 31.
  const std::string bytes =
      smf(0, 480, {ev(0, {0x90, 60, 100}) + ev(0, {0xF0, 1, 0xF7}) + ev(10, {62, 100}) + end_of_track()});
  expect_data_error([&] { read(bytes); }, "t.mid: byte 31: data byte 0x3E where a status byte was expected: running "
                                         "status after a meta, sysex or system event");
  const Score s = read(bytes, false);
  EXPECT_EQ(s.stats.unclosed_notes, 2);  // both note-ons are reused as note-ons and never closed
  ASSERT_EQ(s.stats.warnings.size(), 1u);
  EXPECT_NE(s.stats.warnings[0].find("byte 31: "), std::string::npos);
  EXPECT_NE(s.stats.warnings[0].find("reusing status 0x90"), std::string::npos);
}

TEST(MidiReader, RunningStatusAfterMetaIsRejectedStrictAndReusedLenient) {
  // [00 90 3C 64] [00 FF 01 01 78] [0A 3C 00]: the data byte 0x3C is at byte 32.
  const std::string bytes =
      smf(0, 480, {ev(0, {0x90, 60, 100}) + meta(0, 0x01, "x") + ev(10, {60, 0}) + end_of_track()});
  expect_data_error([&] { read(bytes); }, "t.mid: byte 32: data byte 0x3C where a status byte was expected");
  const Score s = read(bytes, false);
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.notes[0].end_tick, 10);
  EXPECT_EQ(s.stats.repairs, 1);
}

TEST(MidiReader, RunningStatusWithNothingBefore) {
  const std::string bytes = smf(0, 480, {ev(0, {60, 100}) + end_of_track()});
  expect_data_error([&] { read(bytes); }, "byte 23: data byte 0x3C where a status byte was expected and no running "
                                          "status is in force (track 0)");
  const Score s = read(bytes, false);
  EXPECT_TRUE(s.notes.empty());
  EXPECT_NE(s.stats.warnings.at(0).find("track ended at the last complete event"), std::string::npos);
}

TEST(MidiReader, FormatTwoIsRefusedInBothModes) {
  const std::string bytes = smf(2, 480, {ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) + end_of_track()});
  expect_data_error([&] { read(bytes); }, "t.mid: byte 8: format 2 (independent sequences) is not supported");
  expect_data_error([&] { read(bytes, false); }, "format 2 (independent sequences) is not supported");
}

TEST(MidiReader, FormatAboveTwoIsRefusedStrictAndReadAsOneLenient) {
  const std::string bytes = smf(3, 480, {ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) + end_of_track()});
  expect_data_error([&] { read(bytes); }, "byte 8: file format 3; expected 0, 1 or 2");
  const Score s = read(bytes, false);
  EXPECT_EQ(s.format, 1);
  EXPECT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.stats.repairs, 1);
}

TEST(MidiReader, DataByteAbove127IsRejectedStrictAndClampedLenient) {
  // [00 B0 40 A8]: the value byte is at 22 + 3 = 25.
  const std::string bytes = smf(0, 480, {ev(0, {0xB0, 64, 0xA8}) + end_of_track()});
  try {
    read(bytes);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "t.mid: byte 25: data byte 0xA8 > 127 in control change (track 0)");
  }
  const Score s = read(bytes, false);
  ASSERT_EQ(s.controls.size(), 1u);
  EXPECT_EQ(s.controls[0].controller, 64);
  EXPECT_EQ(s.controls[0].value, 127);
  EXPECT_EQ(s.stats.warnings.at(0), "byte 25: data byte 0xA8 > 127 in control change (track 0); clamped to 127");
}

TEST(MidiReader, ProgramIsTheLastChangeOnTheChannelInTheNotesTrack) {
  const Score s = read(smf(1, 480, {
      ev(0, {0xC0, 5}) + ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) +  // program 5
      ev(90, {0xC0, 7}) + ev(0, {0x90, 61, 100}) + ev(10, {0x80, 61, 0}) +  // tick 100: program 7
      ev(90, {0x90, 62, 100}) + ev(0, {0xC0, 9}) + ev(10, {0x80, 62, 0}) +  // tick 200: note-on before the change: 7
      ev(0, {0x91, 63, 100}) + ev(10, {0x81, 63, 0}) + end_of_track(),      // channel 1: 0
      ev(0, {0x90, 64, 100}) + ev(10, {0x80, 64, 0}) + end_of_track(),      // another track: 0
  }));
  ASSERT_EQ(s.notes.size(), 5u);
  EXPECT_EQ(s.notes[0].pitch, 60);
  EXPECT_EQ(s.notes[0].program, 5);
  EXPECT_EQ(s.notes[1].pitch, 64);
  EXPECT_EQ(s.notes[1].program, 0);
  EXPECT_EQ(s.notes[2].program, 7);
  EXPECT_EQ(s.notes[3].program, 7);
  EXPECT_EQ(s.notes[4].pitch, 63);
  EXPECT_EQ(s.notes[4].program, 0);
  ASSERT_EQ(s.programs.size(), 3u);
  EXPECT_EQ(s.programs[2].program, 9);
  EXPECT_EQ(s.programs[2].tick, 200);
}

TEST(MidiReader, NotesAreSortedByStartTrackChannelPitch) {
  const Score s = read(smf(1, 480, {
      ev(0, {0x91, 50, 100}) + ev(0, {0x90, 70, 100}) + ev(0, {0x90, 40, 100}) + ev(5, {0x90, 30, 100}) +
          ev(10, {0x81, 50, 0}) + ev(0, {0x80, 70, 0}) + ev(0, {0x80, 40, 0}) + ev(0, {0x80, 30, 0}) + end_of_track(),
      ev(0, {0x90, 20, 100}) + ev(10, {0x80, 20, 0}) + end_of_track()}));
  ASSERT_EQ(s.notes.size(), 5u);
  const int expected[] = {40, 70, 50, 20, 30};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(s.notes[i].pitch, expected[i]) << i;
}

TEST(MidiReader, MetaEventsSignaturesTextsAndControls) {
  const Score s = read(smf(1, 480, {
      meta(0, 0x03, "Piano") + meta(0, 0x03, "second name") + meta(0, 0x58, raw({6, 3, 24, 8})) +
          meta(0, 0x59, raw({0xFD, 1})) + meta(960, 0x05, "la") + meta(0, 0x58, raw({3, 2, 24, 8})) +
          ev(0, {0xB0, 64, 127}) + ev(960, {0xB0, 64, 0}) + meta(0, 0x7F, raw({0, 0x20})) +
          meta(0, 0x21, raw({0})) + end_of_track()}));
  EXPECT_EQ(s.track_names.at(0), "Piano");
  ASSERT_EQ(s.texts.size(), 3u);
  EXPECT_EQ(s.texts[2].type, 5);
  EXPECT_EQ(s.texts[2].text, "la");
  EXPECT_EQ(s.texts[2].tick, 960);
  ASSERT_EQ(s.time_signatures.size(), 2u);
  EXPECT_EQ(s.time_signatures[0].numerator, 6);
  EXPECT_EQ(s.time_signatures[0].denominator, 8);
  EXPECT_EQ(s.time_signatures[1].tick, 960);
  EXPECT_EQ(s.time_signatures[1].denominator, 4);
  ASSERT_EQ(s.key_signatures.size(), 1u);
  EXPECT_EQ(s.key_signatures[0].sharps, -3);
  EXPECT_TRUE(s.key_signatures[0].minor);
  ASSERT_EQ(s.controls.size(), 2u);
  EXPECT_DOUBLE_EQ(s.controls[0].seconds, 1.0);
  EXPECT_DOUBLE_EQ(s.controls[1].seconds, 2.0);
  EXPECT_EQ(s.controls[1].value, 0);
  EXPECT_EQ(s.end_tick, 1920);
}

TEST(MidiReader, MalformedMetaEventsAreRejectedStrictAndIgnoredLenient) {
  struct Case {
    std::string event;
    std::string message;
  };
  const std::vector<Case> cases = {
      {meta(0, 0x51, raw({7, 0xA1})), "byte 22: malformed set tempo meta event (2 data bytes) (track 0)"},
      {meta(0, 0x58, raw({4, 2, 24})), "malformed time signature meta event (3 data bytes)"},
      {meta(0, 0x59, raw({8, 0})), "malformed key signature meta event (2 data bytes)"},
      {meta(0, 0x59, raw({1, 2})), "malformed key signature meta event"},
      {meta(0, 0x54, raw({0, 60, 0, 0, 0})), "malformed SMPTE offset meta event (5 data bytes)"},
      {meta(0, 0x00, raw({1})), "malformed sequence number meta event (1 data bytes)"},
      {meta(0, 0x20, ""), "malformed channel prefix meta event (0 data bytes)"},
  };
  for (const Case& c : cases) {
    const std::string bytes = smf(0, 480, {c.event + ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) + end_of_track()});
    expect_data_error([&] { read(bytes); }, c.message);
    const Score s = read(bytes, false);
    EXPECT_EQ(s.notes.size(), 1u) << c.message;
    EXPECT_EQ(s.tempos.size(), 1u);
    EXPECT_TRUE(s.key_signatures.empty());
    EXPECT_TRUE(s.time_signatures.empty());
    ASSERT_EQ(s.stats.warnings.size(), 1u);
    EXPECT_NE(s.stats.warnings[0].find("; ignored"), std::string::npos);
  }
  // Accepted as mido accepts them: a tempo with extra bytes, sequence numbers of 0 or 2 bytes.
  const Score ok = read(smf(0, 480, {meta(0, 0x51, raw({0x0F, 0x42, 0x40, 0})) + meta(0, 0, "") + meta(0, 0, raw({0, 1})) +
                                     end_of_track()}));
  EXPECT_EQ(ok.tempos.at(0).microseconds_per_quarter, 1000000);
  // A time signature denominator that fits no integer is ignored in both modes.
  const Score wide = read(smf(0, 480, {meta(0, 0x58, raw({4, 31, 24, 8})) + end_of_track()}));
  EXPECT_TRUE(wide.time_signatures.empty());
  EXPECT_NE(wide.stats.warnings.at(0).find("denominator 2^31 is out of range"), std::string::npos);
}

TEST(MidiReader, VariableLengthQuantityLongerThanFourBytes) {
  const std::string bytes = smf(0, 480, {raw({0x81, 0x80, 0x80, 0x80, 0x00}) + raw({0x90, 60, 100}) + end_of_track()});
  expect_data_error([&] { read(bytes); }, "byte 22: delta time is longer than 4 bytes (track 0)");
  // The largest 4-byte delta is fine: 0x0FFFFFFF ticks.
  const Score s = read(smf(0, 480, {ev(0x0FFFFFFF, {0x90, 60, 100}) + ev(1, {0x80, 60, 0}) + end_of_track()}));
  EXPECT_EQ(s.notes.at(0).start_tick, 0x0FFFFFFF);
}

TEST(MidiReader, UndefinedStatusByte) {
  const std::string bytes = smf(0, 480, {ev(0, {0x90, 60, 100}) + ev(5, {0x90, 61, 100}) + ev(5, {0x80, 61, 0}) +
                                         ev(0, {0xF4}) + ev(0, {0x80, 60, 0}) + end_of_track()});
  // [00 90 3C 64] [05 90 3D 64] [05 80 3D 00] [00 F4]: 0xF4 at byte 35.
  expect_data_error([&] { read(bytes); }, "byte 35: undefined status byte 0xF4 (track 0)");
  const Score s = read(bytes, false);
  ASSERT_EQ(s.notes.size(), 1u);  // 61 was closed; 60 was open at the stop and is dropped
  EXPECT_EQ(s.notes[0].pitch, 61);
  EXPECT_EQ(s.stats.unclosed_notes, 1);
}

TEST(MidiReader, SystemCommonAndRealtimeBytesInATrackAreSkipped) {
  const Score s = read(smf(0, 480, {ev(0, {0xF2, 1, 2}) + ev(0, {0xF8}) + ev(0, {0x90, 60, 100}) +
                                    ev(0, {0xF1, 5}) + ev(10, {0x80, 60, 0}) + end_of_track()}));
  EXPECT_EQ(s.notes.size(), 1u);
}

TEST(MidiReader, HeaderAndChunkErrors) {
  expect_data_error([] { read(""); }, "t.mid: byte 0: not a Standard MIDI File: expected chunk id MThd, got an empty file");
  expect_data_error([] { read("RIFF\0\0\0\0RMID"); }, "byte 0: not a Standard MIDI File: expected chunk id MThd, got 52 49 46 46");
  expect_data_error([] { read(std::string("MThd\0\0\0\6\0\1", 10)); }, "byte 10: header truncated: the file has 10 bytes");
  expect_data_error([] { read(chunk("MThd", raw({0, 0, 0, 1})) + "padding"); }, "byte 4: header chunk length 4; expected at least 6");
  expect_data_error([] { read(smf(0, 0, {end_of_track()})); }, "byte 12: division of 0 ticks per quarter note");
  expect_data_error([] { read(header(1, 2, 480) + chunk("MTrk", end_of_track())); },
                    "byte 26: the file ends after 1 of the 2 track chunks its header announces");
}

TEST(MidiReader, FewerTrackChunksThanTheHeaderAnnouncesLenient) {
  const std::string bytes =
      header(1, 3, 480) + chunk("MTrk", ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) + end_of_track()) + "MTr";
  expect_data_error([&] { read(bytes); }, "chunk header truncated: 3 bytes left, 8 needed (1 of 3 track chunks read)");
  const Score s = read(bytes, false);
  EXPECT_EQ(s.num_tracks, 1);
  EXPECT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.stats.trailing_bytes, 3);
}

TEST(MidiReader, HostileLengthFieldsNeverAllocateOrOverrun) {
  const std::string track = ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0});
  const std::string huge_chunk = header(0, 1, 480) + "MTrk" + be32(0xFFFFFFF0u) + track;
  expect_data_error([&] { read(huge_chunk); }, "byte 18: track chunk declares 4294967280 bytes but only 8 remain");
  const Score s = read(huge_chunk, false);
  EXPECT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.stats.missing_end_of_track, 1);

  const std::string huge_meta = smf(0, 480, {raw({0, 0xFF, 0x01, 0xFF, 0xFF, 0xFF, 0x7F}) + "abc"});
  expect_data_error([&] { read(huge_meta); }, "byte 22: meta event 0x01 of 268435455 bytes runs past the end of the track chunk");
  const std::string huge_sysex = smf(0, 480, {raw({0, 0xF0, 0xFF, 0xFF, 0xFF, 0x7F}) + "abc"});
  expect_data_error([&] { read(huge_sysex); }, "sysex event of 268435455 bytes runs past the end of the track chunk");
  // A header length far beyond the data, with a track right after 6 bytes: lenient reads it.
  std::string long_header = smf(0, 480, {track + end_of_track()});
  long_header.replace(4, 4, be32(0x7FFFFFFF));
  expect_data_error([&] { read(long_header); }, "byte 4: header chunk declares 2147483647 bytes");
  EXPECT_EQ(read(long_header, false).notes.size(), 1u);
}

TEST(MidiReader, AlienChunksAreSkippedAndGarbageIsNot) {
  const std::string track = chunk("MTrk", ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) + end_of_track());
  const Score s = read(header(1, 1, 480) + chunk("XFIH", "abc") + track);
  EXPECT_EQ(s.stats.unknown_chunks, 1);
  EXPECT_EQ(s.notes.size(), 1u);

  const std::string garbage = header(1, 2, 480) + track + raw({0x27, 0x14, 0xBA, 0xC9}) + be32(0xDF6C0E46u) + "xyz";
  expect_data_error([&] { read(garbage); }, "byte 34: expected an MTrk chunk, got id 27 14 BA C9 with length 3748400710 "
                                            "(1 of 2 track chunks read)");
  const Score g = read(garbage, false);
  EXPECT_EQ(g.notes.size(), 1u);
  EXPECT_EQ(g.stats.trailing_bytes, 11);
  EXPECT_NE(g.stats.warnings.at(0).find("ignoring the rest of the file"), std::string::npos);
}

TEST(MidiReader, TrailingBytesAndExtraChunksAfterTheAnnouncedTracksAreCounted) {
  const std::string track = chunk("MTrk", ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}) + end_of_track());
  const Score s = read(header(0, 1, 480) + track + track + std::string(2, '\0'));
  EXPECT_EQ(s.num_tracks, 1);
  EXPECT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.stats.trailing_bytes, static_cast<int64_t>(track.size() + 2));
  EXPECT_TRUE(s.stats.warnings.empty());
}

TEST(MidiReader, EventsAfterEndOfTrackAreReadAndMissingEndIsCounted) {
  const Score s = read(smf(1, 480, {end_of_track() + ev(0, {0x90, 60, 100}) + ev(10, {0x80, 60, 0}),
                                    ev(0, {0x90, 61, 100}) + ev(20, {0x80, 61, 0})}));
  EXPECT_EQ(s.notes.size(), 2u);
  EXPECT_EQ(s.stats.missing_end_of_track, 1);
  EXPECT_EQ(s.end_tick, 20);
}

TEST(MidiReader, EmptyFileWithNoTracks) {
  const Score s = read(header(1, 0, 96));
  EXPECT_EQ(s.num_tracks, 0);
  EXPECT_TRUE(s.notes.empty());
  ASSERT_EQ(s.tempos.size(), 1u);
  EXPECT_EQ(s.tempos[0].microseconds_per_quarter, 500000);
  EXPECT_EQ(s.duration_seconds(), 0.0);
}

TEST(MidiReader, TruncationAtEveryByteOffsetThrowsStrictWithItsOffset) {
  const std::string full = smf(1, 480, {meta(0, 0x03, "tempo") + tempo(0, 600000) + meta(0, 0x58, raw({3, 2, 24, 8})) +
                                            end_of_track(),
                                        meta(0, 0x03, "piano") + ev(0, {0xC0, 3}) + ev(0, {0x90, 60, 100}) +
                                            ev(0, {64, 90}) + ev(0, {0xF0, 2, 1, 0xF7}) + ev(240, {0x80, 60, 0}) +
                                            ev(240, {0x90, 64, 0}) + ev(0, {0xB0, 64, 127}) + end_of_track(10)});
  const Score whole = read(full);
  ASSERT_EQ(whole.notes.size(), 2u);
  const std::regex shape(R"(^t\.mid: byte (\d+): .+)");
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string prefix = full.substr(0, n);
    try {
      read(prefix);
      ADD_FAILURE() << "strict read of the first " << n << " bytes did not throw";
    } catch (const DataError& e) {
      std::smatch m;
      const std::string message = e.what();
      ASSERT_TRUE(std::regex_match(message, m, shape)) << message;
      EXPECT_LE(std::stoul(m[1].str()), n) << message;
    }
    if (n < 14) {
      EXPECT_THROW(read(prefix, false), DataError) << n;
    } else {
      const Score s = read(prefix, false);  // a complete header: lenient always returns
      EXPECT_LE(s.notes.size(), whole.notes.size());
      EXPECT_GT(s.stats.repairs, 0) << n;
    }
  }
}

TEST(MidiReader, CorruptedFilesOfTheSharedData) {
  // miditok's ValueError_Control168: a control change value of 168.
  expect_data_error([] { read_midi_file(kControl168); },
                    kControl168 + ": byte 6042: data byte 0xA8 > 127 in control change (track 3)");
  ReadOptions lenient;
  lenient.strict = false;
  const Score c = read_midi_file(kControl168, lenient);
  EXPECT_EQ(c.notes.size(), 6432u);  // what mido reads with clip=True
  EXPECT_EQ(c.stats.repairs, 1);

  // symusic's Issue104: the header announces 26 tracks, 4 MTrk chunks follow,
  // the 4th runs into garbage, then a garbage chunk header with an impossible length.
  expect_data_error([] { read_midi_file(kIssue104); }, ": byte 16387: data byte 0xF9 > 127 in polyphonic aftertouch (track 3)");
  const Score b = read_midi_file(kIssue104, lenient);
  EXPECT_EQ(b.num_tracks, 4);
  EXPECT_GT(b.notes.size(), 1000u);
  bool chunk_warning = false;
  for (const std::string& w : b.stats.warnings) {
    chunk_warning |= w.find("byte 20964: expected an MTrk chunk") != std::string::npos && w.find("4 of 26") != std::string::npos;
  }
  EXPECT_TRUE(chunk_warning);
  EXPECT_EQ(b.stats.trailing_bytes, 49152 - 20964);

  // symusic's RunTimeError_unexpected_EOF: running status right after meta events.
  expect_data_error([] { read_midi_file(kUnexpectedEof); }, ": byte 44657: data byte 0x29 where a status byte was expected: "
                                                            "running status after a meta");
  const Score r = read_midi_file(kUnexpectedEof, lenient);
  EXPECT_EQ(r.notes.size(), 6085u);  // what mido reads
  EXPECT_EQ(r.stats.repairs, 5);

  // Trailing bytes that mido accepts.
  const Score t = read_midi_file(kData + "/miditok-tests/tests/MIDIs_multitrack/d6caebd1964d9e4a3c5ea59525230e2a.mid");
  EXPECT_EQ(t.stats.trailing_bytes, 2);
  // A valid file without notes.
  const Score e = read_midi_file(kData + "/miditok-tests/tests/MIDIs_one_track/empty.mid");
  EXPECT_TRUE(e.notes.empty());
}

TEST(MidiReader, FileNamesWithSpacesQuotesAndNonAsciiLetters) {
  const fs::path dir = scratch("names");
  const std::string good = (dir / "it's a \"song\" – Ärger ñ.mid").string();
  const std::string bad = (dir / "bad 'one' \"é\".mid").string();
  fs::copy_file(kData + "/miditok-tests/tests/MIDIs_one_track/POP909_008.mid", good);
  fs::copy_file(kControl168, bad);
  const Score s = read_midi_file(good);
  EXPECT_EQ(s.notes.size(), read_midi_file(kData + "/miditok-tests/tests/MIDIs_one_track/POP909_008.mid").notes.size());
  expect_data_error([&] { read_midi_file(bad); }, bad + ": byte 6042: ");
  const Score shared = read_midi_file(kData + "/miditok-tests/tests/MIDIs_multitrack/Girls Just Want to Have Fun.mid");
  EXPECT_GT(shared.notes.size(), 0u);
}

TEST(MidiReader, FileErrorsNameTheFile) {
  expect_data_error([] { read_midi_file("/nonexistent/x.mid"); }, "/nonexistent/x.mid: cannot open");
  const fs::path dir = scratch("dir.mid");
  expect_data_error([&] { read_midi_file(dir.string()); }, dir.string() + ": not a regular file");
  ReadOptions small;
  small.max_file_bytes = 10;
  expect_data_error([&] { read_midi_file(kControl168, small); }, "exceeds the reader's limit of 10 bytes");
}

}  // namespace
}  // namespace kmidi::midi

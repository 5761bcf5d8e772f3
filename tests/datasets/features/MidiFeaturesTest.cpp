#include "datasets/features/MidiFeatures.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/Errors.h"

namespace kmidi::features {
namespace {

using midi::Note;
using midi::Score;
using midi::TempoChange;

// A hand-built score at 480 ticks per quarter whose tempo changes twice:
//   120 bpm from tick 0     (0.5 s per quarter)  -> tick 1920 is 2.0 s
//    60 bpm from tick 1920  (1.0 s per quarter)  -> tick 2880 is 4.0 s
//   240 bpm from tick 2880  (0.25 s per quarter)
double seconds_of(int64_t tick) {
  if (tick <= 1920) return tick / 480.0 * 0.5;
  if (tick <= 2880) return 2.0 + (tick - 1920) / 480.0 * 1.0;
  return 4.0 + (tick - 2880) / 480.0 * 0.25;
}

Note note(int track, int channel, int program, int pitch, int velocity, int64_t start_tick, int64_t end_tick) {
  Note n;
  n.track = track;
  n.channel = channel;
  n.program = program;
  n.pitch = pitch;
  n.velocity = velocity;
  n.start_tick = start_tick;
  n.end_tick = end_tick;
  n.start_s = seconds_of(start_tick);
  n.end_s = seconds_of(end_tick);
  return n;
}

Score tempo_change_score() {
  Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {TempoChange{0, 500000, 0.0}, TempoChange{1920, 1000000, 2.0}, TempoChange{2880, 250000, 4.0}};
  s.notes = {
      note(1, 0, 0, 60, 100, 0, 960),      // a: C4  0.0-1.0 s
      note(1, 0, 0, 64, 80, 480, 1920),    // b: E4  0.5-2.0 s
      note(2, 1, 33, 43, 60, 1920, 2400),  // c: G2  2.0-3.0 s (bass)
      note(3, 9, 0, 36, 120, 1920, 1980),  // d: kick 2.0-2.0625 s (drum channel)
      note(2, 1, 33, 72, 70, 2400, 3360),  // f: C5  3.0-4.25 s
      note(1, 0, 0, 67, 90, 2880, 3360),   // e: G4  4.0-4.25 s
  };
  return s;
}

TEST(MidiFeatures, HandComputedExcerptAcrossTempoChanges) {
  // Excerpt [0.5, 4.1): D = 3.6 s.
  //   onsets O = b, c, d, f, e (a starts at 0.0); sounding pitched time:
  //   a 0.5, b 1.5, c 1.0, f 1.1, e 0.1 = 4.2 s (C 1.6, E 1.5, G 1.1).
  const MidiFeatures f = midi_features(tempo_change_score(), 0.5, 4.1);
  const double tol = 1e-6;
  for (int c = 0; c < 12; ++c) {
    const double expected = c == 0 ? 1.6 / 4.2 : c == 4 ? 1.5 / 4.2 : c == 7 ? 1.1 / 4.2 : 0.0;
    EXPECT_NEAR(f[kPitchClass + c], expected, tol) << "pitch class " << c;
  }
  EXPECT_NEAR(f[kMeanVelocity], (80 + 60 + 120 + 70 + 90) / 5.0 / 127.0, tol);
  EXPECT_NEAR(f[kNoteDensity], 4.2 / 3.6 / 16.0, tol);
  // bpm: 120 for 1.5 s, 60 for 2.0 s, 240 for 0.1 s -> 324 / 3.6 = 90 bpm.
  EXPECT_NEAR(f[kTempo], 90.0 / 200.0, tol);
  EXPECT_NEAR(mean_bpm(tempo_change_score(), 0.5, 4.1), 90.0, 1e-9);
  EXPECT_NEAR(f[kInstruments], 3.0 / 8.0, tol);  // (1,0), (2,1), (3,9)
  EXPECT_NEAR(f[kPrograms], 2.0 / 16.0, tol);    // 0 and 33; the drum kit does not count
  EXPECT_NEAR(f[kDrumRatio], 1.0 / 5.0, tol);
  // Pitched onsets' whole durations: b 1.5, c 1.0, f 1.25, e 0.25 -> mean 1.0,
  // population std sqrt((0.25 + 0 + 0.0625 + 0.5625) / 4) = sqrt(0.21875).
  EXPECT_NEAR(f[kMeanDuration], 1.0 / 5.0, tol);
  EXPECT_NEAR(f[kDurationStd], std::sqrt(0.21875) / 5.0, tol);
  EXPECT_NEAR(f[kPitchRange], (72 - 43) / 127.0, tol);
  // Two notes at once at most (a+b, then f+e); b->c and c->f only touch.
  EXPECT_NEAR(f[kMaxPolyphony], 2.0 / 16.0, tol);
  EXPECT_NEAR(f[kNotesPerSecond], 5.0 / 3.6 / 10.0, tol);
  // Distinct onsets 0.5, 2.0, 3.0, 4.0: gaps 1.5, 1.0, 1.0, std sqrt(1/18).
  EXPECT_NEAR(f[kInterOnsetStd], std::sqrt(1.0 / 18.0), tol);
  for (int i = kFirstReserved; i < kMidiFeatureCount; ++i) EXPECT_EQ(f[i], 0.0f) << i;
}

TEST(MidiFeatures, HandComputedSecondsAgreeWithTheScoreTempoMap) {
  Score timed = tempo_change_score();
  timed.update_times();  // kmidi's own tick -> seconds conversion
  const Score hand = tempo_change_score();
  ASSERT_EQ(timed.notes.size(), hand.notes.size());
  for (size_t i = 0; i < hand.notes.size(); ++i) {
    EXPECT_DOUBLE_EQ(timed.notes[i].start_s, hand.notes[i].start_s) << i;
    EXPECT_DOUBLE_EQ(timed.notes[i].end_s, hand.notes[i].end_s) << i;
  }
}

TEST(MidiFeatures, EmptyExcerptIsZerosExceptTempo) {
  const MidiFeatures f = midi_features(tempo_change_score(), 10.0, 12.0);
  for (int i = 0; i < kMidiFeatureCount; ++i) {
    EXPECT_TRUE(std::isfinite(f[i]));
    if (i != kTempo) EXPECT_EQ(f[i], 0.0f) << midi_feature_names()[i];
  }
  EXPECT_NEAR(f[kTempo], 240.0 / 200.0, 1e-6);

  Score no_tempo;  // no tempo events at all: 120 bpm
  EXPECT_NEAR(midi_features(no_tempo, 0.0, 1.0)[kTempo], 0.6, 1e-6);
}

TEST(MidiFeatures, ExcerptBoundariesAndZeroLengthNotes) {
  Score s;
  s.tempos = {TempoChange{0, 500000, 0.0}};
  Note held = note(0, 0, 0, 62, 64, 0, 4 * 480);  // 0-2 s, started before the excerpt
  Note blip = note(0, 0, 0, 70, 32, 480, 480);    // zero length at 0.5 s
  Note at_end = note(0, 0, 0, 50, 127, 960, 1440);  // starts at 1.0 s = t1: outside [t0, t1)
  s.notes = {held, blip, at_end};
  const MidiFeatures f = midi_features(s, 0.25, 1.0);
  // Only `held` sounds (0.75 s); only `blip` has its onset inside.
  EXPECT_NEAR(f[kPitchClass + 2], 1.0, 1e-6);
  EXPECT_NEAR(f[kMeanVelocity], 32.0 / 127.0, 1e-6);
  EXPECT_NEAR(f[kNoteDensity], 1.0 / 16.0, 1e-6);
  EXPECT_NEAR(f[kMaxPolyphony], 1.0 / 16.0, 1e-6);
  EXPECT_NEAR(f[kPitchRange], (70 - 62) / 127.0, 1e-6);  // active: held and blip
  EXPECT_NEAR(f[kMeanDuration], 0.0, 1e-9);               // the blip's duration
  EXPECT_NEAR(f[kNotesPerSecond], 1.0 / 0.75 / 10.0, 1e-6);
}

TEST(MidiFeatures, LargeValuesSaturate) {
  Score s;
  s.tempos = {TempoChange{0, 100000, 0.0}};  // 600 bpm
  for (int i = 0; i < 40; ++i) {
    Note n;
    n.pitch = 30 + i;
    n.velocity = 100;
    n.channel = i % 9;
    n.track = i;
    n.program = i;
    n.start_s = 0.0;
    n.end_s = 30.0;
    s.notes.push_back(n);
  }
  const MidiFeatures f = midi_features(s, 0.0, 1.0);
  EXPECT_EQ(f[kTempo], 2.0f);
  EXPECT_EQ(f[kNoteDensity], 1.0f);     // 40 sounding notes / 16
  EXPECT_EQ(f[kMaxPolyphony], 1.0f);
  EXPECT_EQ(f[kInstruments], 1.0f);
  EXPECT_EQ(f[kPrograms], 1.0f);
  EXPECT_EQ(f[kMeanDuration], 1.0f);    // 30 s / 5
  EXPECT_EQ(f[kNotesPerSecond], 1.0f);  // 40 per second / 10
  EXPECT_EQ(f[kInterOnsetStd], 0.0f);   // one distinct onset
}

TEST(MidiFeatures, RejectsBadRangesAndNamesEveryValue) {
  const Score s = tempo_change_score();
  try {
    midi_features(s, 2.0, 2.0);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("0 <= t0 < t1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(midi_features(s, -1.0, 2.0), UsageError);
  EXPECT_THROW(midi_features(s, 0.0, std::nan("")), UsageError);
  ASSERT_EQ(midi_feature_names().size(), 32u);
  EXPECT_EQ(midi_feature_names()[kTempo], "tempo");
  EXPECT_EQ(midi_feature_names()[31], "reserved_31");
}

}  // namespace
}  // namespace kmidi::features

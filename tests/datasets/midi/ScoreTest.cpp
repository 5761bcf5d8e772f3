#include "datasets/midi/Score.h"

#include <gtest/gtest.h>

namespace kmidi::midi {
namespace {

TempoChange change(int64_t tick, int64_t us) {
  TempoChange t;
  t.tick = tick;
  t.microseconds_per_quarter = us;
  return t;
}

Score three_tempos() {
  // 120 bpm, 240 bpm from tick 960, 60 bpm from tick 1920, 480 ticks per quarter.
  Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {change(0, 500000), change(960, 250000), change(1920, 1000000)};
  s.update_times();
  return s;
}

TEST(Score, SecondsAndBeatsFollowTheTempoMap) {
  const Score s = three_tempos();
  ASSERT_EQ(s.tempos.size(), 3u);
  EXPECT_DOUBLE_EQ(s.tempos[1].seconds, 1.0);   // 960 ticks at 0.5 s per 480
  EXPECT_DOUBLE_EQ(s.tempos[2].seconds, 1.5);   // + 960 ticks at 0.25 s per 480
  EXPECT_DOUBLE_EQ(s.seconds_at(480), 0.5);
  EXPECT_DOUBLE_EQ(s.seconds_at(1440), 1.25);
  EXPECT_DOUBLE_EQ(s.seconds_at(2400), 2.5);    // + 480 ticks at 1 s per 480
  EXPECT_DOUBLE_EQ(s.beats_at(2400), 5.0);
  EXPECT_EQ(s.tick_at_seconds(1.25), 1440);
  EXPECT_EQ(s.tick_at_seconds(2.5), 2400);
}

TEST(Score, TickAtSecondsInvertsSecondsAt) {
  const Score s = three_tempos();
  for (int64_t tick = 0; tick < 4000; tick += 7) EXPECT_EQ(s.tick_at_seconds(s.seconds_at(tick)), tick) << tick;
}

TEST(Score, UpdateTimesSortsKeepsTheLastChangeOfATickAndStartsAtZero) {
  Score s;
  s.division.ticks_per_quarter = 100;
  s.tempos = {change(960, 250000), change(480, 400000), change(960, 300000)};
  Note n;
  n.start_tick = 480;
  n.end_tick = 1060;
  s.notes.push_back(n);
  ControlChange c;
  c.tick = 100;
  s.controls.push_back(c);
  s.update_times();
  ASSERT_EQ(s.tempos.size(), 3u);
  EXPECT_EQ(s.tempos[0].tick, 0);
  EXPECT_EQ(s.tempos[0].microseconds_per_quarter, 500000);
  EXPECT_EQ(s.tempos[1].microseconds_per_quarter, 400000);
  EXPECT_EQ(s.tempos[2].microseconds_per_quarter, 300000);
  // 480 ticks at 0.5 s per 100 = 2.4 s; 480 more at 0.4 s per 100 = 1.92 s; 100 at 0.3 s per 100.
  EXPECT_DOUBLE_EQ(s.notes[0].start_s, 2.4);
  EXPECT_NEAR(s.notes[0].end_s, 2.4 + 1.92 + 0.3, 1e-12);
  EXPECT_DOUBLE_EQ(s.notes[0].start_beat, 4.8);
  EXPECT_DOUBLE_EQ(s.controls[0].seconds, 0.5);
}

TEST(Score, EmptyTempoMapMeans120Bpm) {
  Score s;
  s.division.ticks_per_quarter = 96;
  EXPECT_DOUBLE_EQ(s.seconds_at(96 * 4), 2.0);
  EXPECT_EQ(s.tick_at_seconds(2.0), 96 * 4);
}

TEST(Score, ZeroTempoSegmentTakesNoTime) {
  Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {change(0, 500000), change(480, 0), change(960, 500000)};
  s.update_times();
  EXPECT_DOUBLE_EQ(s.seconds_at(480), 0.5);
  EXPECT_DOUBLE_EQ(s.seconds_at(960), 0.5);
  EXPECT_DOUBLE_EQ(s.seconds_at(1440), 1.0);
  EXPECT_EQ(s.tick_at_seconds(0.5), 960);  // the latest tick at that time
  EXPECT_EQ(s.tick_at_seconds(0.75), 1200);
}

TEST(Score, SmpteClock) {
  Score s;
  s.division.smpte = true;
  s.division.frames_per_second = 25;
  s.division.ticks_per_frame = 40;
  s.tempos = {change(0, 1000000)};  // ignored by the SMPTE clock
  s.update_times();
  EXPECT_DOUBLE_EQ(s.seconds_at(1500), 1.5);
  EXPECT_DOUBLE_EQ(s.beats_at(1500), 3.0);
  EXPECT_EQ(s.tick_at_seconds(1.5), 1500);
  s.division.frames_per_second = 29;  // 29.97 fps
  EXPECT_NEAR(s.seconds_at(11988), 10.0, 1e-9);  // 29.97 * 40 ticks per second
}

}  // namespace
}  // namespace kmidi::midi

#include "datasets/groove/DrumGrid.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "core/Csv.h"
#include "datasets/midi/MidiReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::groove {
namespace {

midi::Note drum(int pitch, int64_t tick, int velocity, const midi::Score& s) {
  midi::Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.channel = 9;
  n.start_tick = tick;
  n.end_tick = tick + 10;
  n.start_beat = s.beats_at(tick);
  n.start_s = s.seconds_at(tick);
  n.end_beat = s.beats_at(n.end_tick);
  n.end_s = s.seconds_at(n.end_tick);
  return n;
}

TEST(DrumGrid, ClassesFollowGeneralMidi) {
  EXPECT_EQ(drum_class(36), 0);  // bass drum 1
  EXPECT_EQ(drum_class(38), 1);  // acoustic snare
  EXPECT_EQ(drum_class(42), 2);  // closed hi-hat
  EXPECT_EQ(drum_class(46), 3);  // open hi-hat
  EXPECT_EQ(drum_class(49), 7);  // crash 1
  EXPECT_EQ(drum_class(51), 8);  // ride 1
  EXPECT_EQ(drum_class(60), 5);  // hi bongo: mid tom class
  EXPECT_EQ(drum_class(21), -1);
  EXPECT_EQ(drum_class(128), -1);
  for (int c = 0; c < kDrumClasses; ++c) EXPECT_EQ(drum_class(class_pitch(c)), c);
}

TEST(DrumGrid, OffsetsInStepsAndMillisecondsFollowTheTempoMap) {
  // 480 ticks per quarter; 120 bpm, then 60 bpm from beat 4 (tick 1920).
  midi::Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {{0, 500000, 0.0}, {1920, 1000000, 2.0}};
  s.notes.push_back(drum(36, 130, 100, s));   // step 1 (tick 120) + 10 ticks late
  s.notes.push_back(drum(42, 2040 - 12, 80, s));  // step 17 (tick 2040), 12 ticks early
  s.notes.push_back(drum(42, 2040 + 3, 90, s));   // same class and step: louder, wins
  s.notes.push_back(drum(21, 500, 90, s));        // unmapped pitch
  s.end_tick = 2400;
  const DrumGrid g = quantize_drums(s);
  ASSERT_EQ(g.hits.size(), 2u);
  EXPECT_EQ(g.merged, 1);
  EXPECT_EQ(g.unmapped, 1);
  EXPECT_EQ(g.hits[0].step, 1);
  EXPECT_NEAR(g.hits[0].offset_steps, 10.0 / 120.0, 1e-12);
  EXPECT_NEAR(g.hits[0].offset_ms, 10.0 / 480.0 * 500.0, 1e-9);  // 500 ms per quarter
  EXPECT_EQ(g.hits[1].step, 17);
  EXPECT_EQ(g.hits[1].velocity, 90);
  EXPECT_NEAR(g.hits[1].offset_steps, 3.0 / 120.0, 1e-12);
  EXPECT_NEAR(g.hits[1].offset_ms, 3.0 / 480.0 * 1000.0, 1e-9);  // 1000 ms per quarter after the change
  EXPECT_EQ(g.num_steps, 18);
}

TEST(DrumGrid, WindowsCoverTheGridWithHop) {
  DrumGrid g;
  for (int64_t step = 0; step < 64; step += 2) g.hits.push_back(Hit{step, 0, 0, 0, 100, -1});
  g.num_steps = 63;
  const auto windows = make_windows(g, 32, 16, 4);
  ASSERT_EQ(windows.size(), 4u);  // starts 0, 16, 32, 48
  EXPECT_EQ(windows[1].first_step, 16);
  EXPECT_EQ(windows[1].hits.size(), 16u);
  EXPECT_EQ(windows[1].hits.front().step, 0);
  EXPECT_EQ(windows[3].hits.size(), 8u);  // steps 48..62
  EXPECT_EQ(make_windows(g, 32, 16, 9).size(), 3u);
}

TEST(DrumGrid, AgreesWithMidoReferenceOnRealGrooves) {
  const csv::Table info = csv::read(test::shared_data("groove-midi/groove/info.csv"));
  const size_t file_col = info.column("midi_filename"), bpm_col = info.column("bpm");
  int compared = 0;
  for (size_t row = 0; row < info.rows.size(); row += 97) {  // a spread over drummers and styles
    const std::string path = test::shared_data("groove-midi/groove/" + info.rows[row][file_col]);
    const midi::Score score = midi::read_midi_file(path);
    const DrumGrid grid = quantize_drums(score);
    EXPECT_NEAR(grid.mean_bpm, std::stod(info.rows[row][bpm_col]), 0.5) << path;
    const auto ref = test::run({test::python(), test::source_path("tests/reference/groove_grid.py"), path});
    ASSERT_EQ(ref.exit_code, 0) << path;
    std::istringstream lines(ref.output);
    std::string line;
    size_t i = 0;
    while (std::getline(lines, line)) {
      const auto j = nlohmann::json::parse(line);
      ASSERT_LT(i, grid.hits.size()) << path;
      const Hit& h = grid.hits[i++];
      EXPECT_EQ(h.step, j["step"].get<int64_t>()) << path;
      EXPECT_EQ(h.drum_class, j["class"].get<int>()) << path;
      EXPECT_EQ(h.velocity, j["velocity"].get<int>()) << path;
      EXPECT_NEAR(h.offset_steps, j["offset_steps"].get<double>(), 1e-9) << path;
      EXPECT_NEAR(h.offset_ms, j["offset_ms"].get<double>(), 1e-6) << path;
    }
    EXPECT_EQ(i, grid.hits.size()) << path;
    EXPECT_GT(grid.hits.size(), 0u);
    ++compared;
  }
  EXPECT_EQ(compared, 12);
}

}  // namespace
}  // namespace kmidi::groove

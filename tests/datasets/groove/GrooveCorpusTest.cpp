// Groove windows from real Groove MIDI files (values checked by hand against
// the mido reference tests/reference/groove_grid.py), tempo per window, the
// manifest's selection and the binary cache.

#include "datasets/groove/GrooveCorpus.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/midi/MidiReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::groove {
namespace {

namespace fs = std::filesystem;

const char* kFunk138 = "groove-midi/groove/drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid";

TEST(GrooveCorpus, WindowsOfARealPerformanceMatchTheHandCheckedHits) {
  const midi::Score score = midi::read_midi_file(test::shared_data(kFunk138));
  const DrumGrid grid = quantize_drums(score);
  WindowSettings w;  // 32 steps, hop 16, at least 4 hits
  const auto items = grid_windows(score, grid, "funk", w);
  // 397 hits on steps 0..255: windows start every 16 steps from 0 to 240.
  ASSERT_EQ(items.size(), 16u);
  const GrooveItem& item = items[1];
  EXPECT_EQ(item.first_step, 16);
  EXPECT_EQ(item.id(), "funk@16");
  // The file's tempo is 434,783 µs per quarter (138 bpm rounded to whole µs).
  EXPECT_NEAR(item.bpm, 60e6 / 434783.0, 1e-9);
  EXPECT_NEAR(item.step_ms(), 434.783 / 4.0, 1e-9);
  ASSERT_EQ(item.hits.size(), 49u);  // mido: 49 hits on steps 16..47
  // mido (groove_grid.py): step 16 kick -0.041667 (55), closed hi-hat -0.341667 (72), ride -0.058333 (42);
  // step 18 kick -0.083333 (62).
  const struct { int64_t step; int c; double offset; double ms; int velocity; } expected[] = {
      {0, 0, -0.041666666666666075, -4.528989583333365, 55},
      {0, 2, -0.3416666666666668, -37.13771458333337, 72},
      {0, 8, -0.05833333333333357, -6.340585416666933, 42},
      {2, 0, -0.08333333333333215, -9.057979166666508, 62},
  };
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(item.hits[i].step, expected[i].step) << i;
    EXPECT_EQ(item.hits[i].drum_class, expected[i].c) << i;
    EXPECT_NEAR(item.hits[i].offset_steps, expected[i].offset, 1e-9) << i;
    EXPECT_NEAR(item.hits[i].offset_ms, expected[i].ms, 1e-6) << i;
    EXPECT_EQ(item.hits[i].velocity, expected[i].velocity) << i;
  }
  // The last window starts at step 240 and runs past the end of the part.
  EXPECT_EQ(items.back().first_step, 240);
  EXPECT_EQ(items.back().hits.size(), 25u);  // mido: 25 hits on steps 240..255
  // Hop 32 (validation and test): every hit lands in exactly one window.
  w.hop = 32;
  size_t hits = 0;
  for (const auto& it : grid_windows(score, grid, "funk", w)) hits += it.hits.size();
  EXPECT_EQ(hits, 397u);
}

TEST(GrooveCorpus, WindowTempoFollowsTheTempoMap) {
  // 480 tpq; 120 bpm for the first bar, 60 bpm after: window 0 spans 2 s + 4 s for 8 beats = 80 bpm.
  midi::Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {{0, 500000, 0.0}, {1920, 1000000, 0.0}};
  for (int64_t step = 0; step < 64; step += 4) {
    midi::Note n;
    n.pitch = 36;
    n.velocity = 100;
    n.channel = 9;
    n.start_tick = step * 120;
    n.end_tick = n.start_tick + 30;
    s.notes.push_back(n);
  }
  s.end_tick = 64 * 120;
  s.update_times();
  WindowSettings w;
  const auto items = grid_windows(s, quantize_drums(s), "x", w);
  ASSERT_EQ(items.size(), 4u);  // starts 0, 16, 32, 48 (steps 0..60 have hits)
  EXPECT_NEAR(items[0].bpm, 80.0, 1e-9);
  EXPECT_NEAR(items[1].bpm, 60.0, 1e-9);
  EXPECT_NEAR(items[1].step_ms(), 250.0, 1e-9);
}

TEST(GrooveCorpus, ManifestSelectsTheSplitAndTimeSignatures) {
  const std::string csv = test::shared_data("groove-midi/groove/info.csv");
  EXPECT_EQ(read_groove_manifest(csv, "test", {"4-4"}).size(), 129u);
  EXPECT_EQ(read_groove_manifest(csv, "train", {"4-4"}).size(), 887u);   // 10 train files are not 4/4
  EXPECT_EQ(read_groove_manifest(csv, "validation", {"4-4", "3-4", "6-8"}).size(), 124u);
  const auto first = read_groove_manifest(csv, "test", {"4-4"}, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].id, "drummer1/eval_session/1");
  EXPECT_EQ(first[0].path, test::shared_data(kFunk138));
  EXPECT_EQ(first[0].player, "drummer1");  // info.csv's drummer column
}

TEST(GrooveCorpus, ManifestErrorsNameTheFileAndLine) {
  const std::string dir = test::scratch_dir("groove_manifest");
  files::write_atomic(dir + "/info.csv",
                      "id,midi_filename,split,time_signature\na,missing.mid,train,4-4\n");
  try {
    read_groove_manifest(dir + "/info.csv", "train", {"4-4"});
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("info.csv:2: midi_filename 'missing.mid' does not exist"), std::string::npos)
        << e.what();
  }
  files::write_atomic(dir + "/bad.csv", "id,midi_filename,split\na,b.mid,train\n");
  try {
    read_groove_manifest(dir + "/bad.csv", "train", {"4-4"});
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("time_signature"), std::string::npos) << e.what();
  }
  WindowSettings w;
  w.hop = 0;
  try {
    w.validate();
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("hop must be positive, got 0"), std::string::npos) << e.what();
  }
}

TEST(GrooveCorpus, CacheReturnsTheSameWindowsAndRebuildsWhenDamaged) {
  const std::string dir = test::scratch_dir("groove_cache");
  const auto sources = read_groove_manifest(test::shared_data("groove-midi/groove/info.csv"), "test", {"4-4"}, 3);
  WindowSettings w;
  const GrooveSplit parsed = load_groove_split(sources, w, "test", "");
  EXPECT_FALSE(parsed.from_cache);
  const GrooveSplit first = load_groove_split(sources, w, "test", dir + "/cache");
  EXPECT_FALSE(first.from_cache);
  const GrooveSplit second = load_groove_split(sources, w, "test", dir + "/cache");
  EXPECT_TRUE(second.from_cache);
  ASSERT_EQ(second.items.size(), parsed.items.size());
  EXPECT_EQ(second.files, 3);
  for (size_t i = 0; i < parsed.items.size(); ++i) {
    const GrooveItem &a = parsed.items[i], &b = second.items[i];
    EXPECT_EQ(a.id(), b.id());
    EXPECT_EQ(a.player, "drummer1");  // the first test performances are drummer1's
    EXPECT_EQ(b.player, a.player);
    EXPECT_EQ(a.bpm, b.bpm);
    ASSERT_EQ(a.hits.size(), b.hits.size());
    for (size_t k = 0; k < a.hits.size(); ++k) {
      EXPECT_EQ(a.hits[k].step, b.hits[k].step);
      EXPECT_EQ(a.hits[k].drum_class, b.hits[k].drum_class);
      EXPECT_EQ(a.hits[k].offset_steps, b.hits[k].offset_steps);
      EXPECT_EQ(a.hits[k].velocity, b.hits[k].velocity);
    }
  }
  for (int c = 0; c < kDrumClasses; ++c) EXPECT_EQ(second.velocities.mean(c), parsed.velocities.mean(c));
  // One cache file per settings; a truncated one is rebuilt, never trusted.
  std::vector<fs::path> caches;
  for (const auto& e : fs::directory_iterator(dir + "/cache")) caches.push_back(e.path());
  ASSERT_EQ(caches.size(), 1u);
  const std::string bytes = files::read_all(caches[0].string());
  files::write_atomic(caches[0].string(), bytes.substr(0, bytes.size() - 10));
  const GrooveSplit rebuilt = load_groove_split(sources, w, "test", dir + "/cache");
  EXPECT_FALSE(rebuilt.from_cache);
  EXPECT_EQ(rebuilt.items.size(), parsed.items.size());
  EXPECT_EQ(files::read_all(caches[0].string()), bytes);
  w.hop = 32;
  const GrooveSplit other = load_groove_split(sources, w, "test", dir + "/cache");
  EXPECT_FALSE(other.from_cache);
  EXPECT_LT(other.items.size(), parsed.items.size());
}

TEST(GrooveCorpus, VelocityStatsCountEveryHitOnce) {
  const auto sources = read_groove_manifest(test::shared_data("groove-midi/groove/info.csv"), "test", {"4-4"}, 1);
  const GrooveSplit split = load_groove_split(sources, WindowSettings{}, "test", "");
  int64_t hits = 0;
  for (int c = 0; c < kDrumClasses; ++c) hits += split.velocities.hits[static_cast<size_t>(c)];
  EXPECT_EQ(hits, 397);  // the performance's hits, though hop 16 puts most of them in two windows
  // mido (groove_grid.py): 54 kicks with velocities summing to 3283.
  EXPECT_EQ(split.velocities.hits[0], 54);
  EXPECT_NEAR(split.velocities.mean(0), 3283.0 / 54.0, 1e-12);
}

}  // namespace
}  // namespace kmidi::groove

// Music metrics on hand-built scores (values worked out by hand below), and
// the overlapping area of two sets against hand-derived cases and the numpy
// reference tests/reference/overlap_area_reference.py.

#include "datasets/features/MusicMetrics.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <random>
#include <stdexcept>

#include "core/Files.h"
#include "tests/support/TestSupport.h"

namespace kmidi::features {
namespace {

// 120 bpm throughout: one beat is 0.5 s.
midi::Note note(int pitch, int velocity, double start_beat, double end_beat, int channel = 0) {
  midi::Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.channel = channel;
  n.start_beat = start_beat;
  n.end_beat = end_beat;
  n.start_s = start_beat * 0.5;
  n.end_s = end_beat * 0.5;
  return n;
}

// C (beats 0-2) with E (0-1) then G (1-2) above it, a silent bar, then C# at
// beat 8 (bar 3); a drum hit in the silent bar does not count.
midi::Score four_notes() {
  midi::Score s;
  s.notes = {note(60, 80, 0, 2), note(64, 100, 0, 1), note(67, 60, 1, 2), note(36, 127, 4, 5, 9), note(73, 40, 8, 9)};
  return s;
}

TEST(MusicMetrics, HandComputedValuesOfAFourNotePiece) {
  const auto m = music_metrics(four_notes());
  ASSERT_TRUE(m.has_value());
  EXPECT_NEAR((*m)[0], 2.0, 1e-12);             // four pitch classes once each: log2 4
  EXPECT_EQ((*m)[1], 13.0);                     // 73 - 60
  EXPECT_NEAR((*m)[2], 2.5 / 1.5, 1e-12);       // 2 notes for 1 s, 1 note for 0.5 s
  EXPECT_NEAR((*m)[3], 4.0 / 4.5, 1e-12);       // 4 notes from 0 s to 4.5 s
  EXPECT_NEAR((*m)[4], 2.0, 1e-12);             // distinct onsets 0, 0.5, 4 s
  EXPECT_NEAR((*m)[5], (1.0 + 0.5 + 0.5 + 0.5) / 4, 1e-12);
  EXPECT_NEAR((*m)[6], (80 + 100 + 60 + 40) / 4.0, 1e-12);
  EXPECT_NEAR((*m)[7], 1.0 / 3.0, 1e-12);       // bars [0,4) [4,8) [8,12) beats: the middle one silent
  EXPECT_NEAR((*m)[8], 0.75, 1e-12);            // C, E, G in C major; C# in no major scale with them
  EXPECT_STREQ(music_metric_names()[7], "empty_bar_rate");
}

TEST(MusicMetrics, BarLengthComesFromTheFirstTimeSignature) {
  midi::Score s = four_notes();
  s.time_signatures = {{0, 3, 4}};  // bars of 3 beats: [0,3) [3,6) [6,9): only [3,6) is silent
  EXPECT_NEAR((*music_metrics(s))[7], 1.0 / 3.0, 1e-12);
  s.time_signatures = {{0, 2, 4}};  // bars of 2 beats up to beat 10: [2,4) [4,6) [6,8) silent of 5
  EXPECT_NEAR((*music_metrics(s))[7], 3.0 / 5.0, 1e-12);
}

TEST(MusicMetrics, ChordsShareAnOnsetAndOneNoteHasNoInterval) {
  midi::Score s;
  s.notes = {note(60, 64, 0, 4), note(64, 64, 0, 4), note(67, 64, 0, 4)};
  const auto m = music_metrics(s);
  ASSERT_TRUE(m.has_value());
  EXPECT_NEAR((*m)[0], std::log2(3.0), 1e-12);
  EXPECT_NEAR((*m)[2], 3.0, 1e-12);
  EXPECT_EQ((*m)[4], 0.0);  // one distinct onset
  EXPECT_EQ((*m)[7], 0.0);
  EXPECT_EQ((*m)[8], 1.0);
}

TEST(MusicMetrics, PieceWithoutPitchedNotesHasNone) {
  midi::Score s;
  EXPECT_FALSE(music_metrics(s).has_value());
  s.notes = {note(36, 100, 0, 1, 9)};
  EXPECT_FALSE(music_metrics(s).has_value());
}

TEST(OverlapArea, ScottBandwidthByHand) {
  // std of 1..4 with n - 1 is sqrt(5/3); 4^(-1/5).
  EXPECT_NEAR(scott_bandwidth({1, 2, 3, 4}), std::sqrt(5.0 / 3.0) * std::pow(4.0, -0.2), 1e-12);
  EXPECT_EQ(scott_bandwidth({2, 2, 2}), 0.0);
}

TEST(OverlapArea, IdenticalDisjointAndSymmetric) {
  const std::vector<double> a{1, 2, 2.5, 4, 7};
  EXPECT_NEAR(overlap_area(a, a), 1.0, 1e-3);  // all but the tails beyond 4 bandwidths
  EXPECT_LT(overlap_area(a, {100, 101, 103}), 1e-9);
  const std::vector<double> b{3, 3.5, 5, 9};
  EXPECT_NEAR(overlap_area(a, b), overlap_area(b, a), 1e-12);
  EXPECT_EQ(overlap_area({5, 5}, {5}), 1.0);
}

TEST(OverlapArea, TwoSingleValuesAreGaussiansOfTheFallbackBandwidth) {
  // Each set is one Gaussian of h = 1% of the span d, so the overlap is
  // 2 * Phi(-d / (2h)) = erfc(50 / sqrt 2): 0 to double precision.
  EXPECT_LT(overlap_area({0.0}, {1.0}), 1e-12);
  EXPECT_THROW(overlap_area({}, {1.0}), std::invalid_argument);
  EXPECT_THROW(overlap_area({1.0}, {NAN}), std::invalid_argument);
}

TEST(OverlapArea, AgreesWithTheNumpyReference) {
  const std::string dir = test::scratch_dir("overlap_area");
  std::mt19937 rng(7);
  std::normal_distribution<double> wide(0.0, 2.0), narrow(1.5, 0.7);
  std::uniform_int_distribution<int> steps(0, 12);
  const std::vector<std::pair<std::vector<double>, std::vector<double>>> cases = [&] {
    std::vector<std::pair<std::vector<double>, std::vector<double>>> c;
    std::vector<double> a, b, ints_a, ints_b;
    for (int i = 0; i < 40; ++i) a.push_back(wide(rng));
    for (int i = 0; i < 25; ++i) b.push_back(narrow(rng));
    for (int i = 0; i < 30; ++i) ints_a.push_back(steps(rng));
    for (int i = 0; i < 30; ++i) ints_b.push_back(steps(rng) / 2);
    c.emplace_back(a, b);
    c.emplace_back(ints_a, ints_b);
    c.emplace_back(std::vector<double>{3.0, 3.0, 3.0}, b);  // one constant set: fallback bandwidth
    return c;
  }();
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir + "/case" + std::to_string(i) + ".json";
    files::write_atomic(path, nlohmann::json{{"a", cases[i].first}, {"b", cases[i].second}}.dump());
    const auto ref = test::run({test::python(), test::source_path("tests/reference/overlap_area_reference.py"), path});
    ASSERT_EQ(ref.exit_code, 0) << ref.output;
    const double expected = std::stod(ref.output);
    EXPECT_GT(expected, 0.01) << "case " << i << " should overlap partly";
    EXPECT_LT(expected, 0.99) << "case " << i << " should overlap partly";
    EXPECT_NEAR(overlap_area(cases[i].first, cases[i].second), expected, 1e-9) << "case " << i;
  }
}

}  // namespace
}  // namespace kmidi::features

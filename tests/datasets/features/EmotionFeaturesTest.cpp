#include "datasets/features/EmotionFeatures.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "datasets/features/EmotionFeatureCache.h"
#include "datasets/midi/MidiReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::features {
namespace {

midi::Note note(const midi::Score& s, int pitch, int64_t start, int64_t end, int velocity) {
  midi::Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.start_tick = start;
  n.end_tick = end;
  n.start_beat = s.beats_at(start);
  n.end_beat = s.beats_at(end);
  n.start_s = s.seconds_at(start);
  n.end_s = s.seconds_at(end);
  return n;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The markdown rows of docs/emotion_features.md, rendered from the table.
std::string layout_markdown() {
  std::string out = "| Index | Name | Unit | Meaning |\n|---|---|---|---|\n";
  for (const EmotionFeatureSlice& s : kEmotionFeatureLayout) {
    const std::string index =
        s.count == 1 ? std::to_string(s.first) : std::to_string(s.first) + "-" + std::to_string(s.first + s.count - 1);
    std::string names;
    if (s.count == 1) {
      names = std::string("`") + s.name + "`";
    } else if (*s.value_names) {
      std::istringstream in(s.value_names);
      for (std::string n; in >> n;) names += (names.empty() ? "`" : ", `") + n + "`";
    } else {
      names = std::string("`") + s.name + "_0` .. `" + s.name + "_" + std::to_string(s.count - 1) + "`";
    }
    out += "| " + index + " | " + names + " | " + s.unit + " | " + s.description + " |\n";
  }
  return out;
}

// Today's layout hash: feature caches and exported models carry it, so a change
// of any name, order or size must be deliberate (and this value updated).
TEST(EmotionFeatureLayout, LayoutSha256IsUnchanged) {
  EXPECT_EQ(EmotionFeatureCache::layout_sha256(), "97668ae26070ad8b55d89a02267edfd8ebfdf28c1735c70631d78e9ae3bcaaa0");
}

TEST(EmotionFeatureLayout, NamesFollowTheSlices) {
  const auto& names = emotion_feature_names();
  EXPECT_EQ(std::string(names[emotion_slice::kRegister.first + 2]), "register_high");
  EXPECT_EQ(std::string(names[emotion_slice::kTimeSignature.first + 3]), "ts_6_8");
  EXPECT_EQ(std::string(names[emotion_slice::kMelodicIntervals.first + 12]), "melodic_interval_12");
  EXPECT_EQ(std::string(names[emotion_slice::kPitchClassesPerBar.first]), "pcs_per_bar");
  EXPECT_EQ(emotion_slice::kPitchClassesPerBar.first, 112u);
}

TEST(EmotionFeatureLayout, JsonListsEverySliceAndValueInOrder) {
  const auto j = nlohmann::json::parse(emotion_feature_layout_json());
  ASSERT_EQ(j.size(), kEmotionFeatureLayout.size());
  size_t index = 0;
  for (size_t i = 0; i < j.size(); ++i) {
    EXPECT_EQ(j[i]["name"], kEmotionFeatureLayout[i].name);
    EXPECT_EQ(j[i]["first"], index);
    EXPECT_EQ(j[i]["unit"], kEmotionFeatureLayout[i].unit);
    ASSERT_EQ(j[i]["values"].size(), j[i]["count"].get<size_t>());
    for (const auto& name : j[i]["values"]) EXPECT_EQ(name, emotion_feature_names()[index++]);
  }
  EXPECT_EQ(index, kEmotionFeatureSize);
}

TEST(EmotionFeatureLayout, DocsTableMatchesTheLayout) {
  const std::string path = test::source_path("docs/emotion_features.md");
  const std::string doc = read_text(path);
  const std::string begin = "<!-- layout table: begin -->\n", end = "<!-- layout table: end -->";
  const size_t b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos) << path;
  ASSERT_NE(e, std::string::npos) << path;
  EXPECT_EQ(doc.substr(b + begin.size(), e - b - begin.size()), layout_markdown())
      << path << " disagrees with kEmotionFeatureLayout (EmotionFeatureLayout.h); the table should read:\n"
      << layout_markdown();
}

// Vectors computed before the layout table replaced literal indices
// (emotion_features_golden.json, float bits in hex): every value of every file
// must stay bit for bit, so no value moved to another index.
TEST(EmotionFeatures, RealFilesGiveTheRecordedVectorsBitForBit) {
  const auto golden = nlohmann::json::parse(read_text(test::source_path("tests/datasets/features/emotion_features_golden.json")));
  EXPECT_EQ(golden["layout_sha256"], EmotionFeatureCache::layout_sha256());
  ASSERT_GE(golden["files"].size(), 12u);
  for (const auto& [file, bits] : golden["files"].items()) {
    const EmotionFeatures f = emotion_features(midi::read_midi_file(test::shared_data(file)));
    ASSERT_EQ(bits.size(), kEmotionFeatureSize) << file;
    for (size_t i = 0; i < kEmotionFeatureSize; ++i) {
      uint32_t actual = 0;
      std::memcpy(&actual, &f[i], sizeof actual);
      EXPECT_EQ(actual, std::stoul(bits[i].get<std::string>(), nullptr, 16))
          << file << " feature " << i << " (" << emotion_feature_names()[i] << ") = " << f[i];
    }
  }
}

TEST(EmotionFeatures, NamesAreUniqueAndComplete) {
  std::set<std::string> names;
  for (const char* n : emotion_feature_names()) names.insert(n);
  EXPECT_EQ(names.size(), kEmotionFeatureSize);
  EXPECT_EQ(std::string(emotion_feature_names()[26]), "mode");
  EXPECT_EQ(std::string(emotion_feature_names()[98]), "tempo_mean");
  EXPECT_EQ(std::string(emotion_feature_names()[127]), "top_voice_pc_tonic_11");
}

TEST(EmotionFeatures, KeyEstimateFindsMajorAndMinor) {
  std::array<double, 12> c_major{};
  for (int pc : {0, 2, 4, 5, 7, 9, 11}) c_major[pc] = 1.0;
  c_major[0] = c_major[7] = c_major[4] = 2.0;  // tonic triad emphasised
  KeyEstimate k = estimate_key(c_major);
  EXPECT_EQ(k.tonic, 0);
  EXPECT_TRUE(k.major);
  std::array<double, 12> a_minor{};
  for (int pc : {9, 11, 0, 2, 4, 5, 8}) a_minor[pc] = 1.0;  // harmonic minor
  a_minor[9] = a_minor[0] = a_minor[4] = 2.0;
  k = estimate_key(a_minor);
  EXPECT_EQ(k.tonic, 9);
  EXPECT_FALSE(k.major);
  EXPECT_GT(k.minor_correlation, k.major_correlation);
}

TEST(EmotionFeatures, TempoAndMetreChangesAreTimedFromTheMap) {
  // 480 ticks per quarter. 120 bpm for 4 beats (2 s), then 60 bpm for 4 beats
  // (4 s). 4/4 for the first bar, then 3/4 for the remaining 4 beats.
  midi::Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {{0, 500000, 0.0}, {1920, 1000000, 2.0}};
  s.time_signatures = {{0, 4, 4}, {1920, 3, 4}};
  s.end_tick = 3840;  // 6 s
  // Quarter notes on every beat: pitches of a C major arpeggio.
  const int pitches[8] = {60, 64, 67, 72, 60, 64, 67, 72};
  for (int i = 0; i < 8; ++i) s.notes.push_back(note(s, pitches[i], i * 480, i * 480 + 240, 40 + 10 * i));
  const EmotionFeatures f = emotion_features(s);
  // Tempo: (120·2 s + 60·4 s) / 6 s = 80 bpm; one change in 0.1 minutes.
  EXPECT_NEAR(f[98], 80.0 / 200.0, 1e-6);
  EXPECT_NEAR(f[99], 30.0 / 50.0, 1e-6);  // population std of {120, 60}
  EXPECT_NEAR(f[100], 60.0 / 200.0, 1e-6);
  EXPECT_NEAR(f[101], 120.0 / 200.0, 1e-6);
  EXPECT_NEAR(f[102], (1.0 / 0.1) / 10.0, 1e-6);
  // 3/4 lasts 4 s against 2 s of 4/4.
  EXPECT_EQ(f[104], 1.0f);
  EXPECT_EQ(f[105], 0.0f);
  // Inter-onset intervals: 0.5 s ×3, then the change (0.5 s), then 1 s ×3.
  EXPECT_NEAR(f[66], (0.5 * 4 + 1.0 * 3) / 7.0, 1e-6);
  EXPECT_NEAR(f[69], 1.0 / 2.0, 1e-6);  // always one beat apart
  EXPECT_NEAR(f[70], 0.0, 1e-6);
  EXPECT_NEAR(f[72], 1.0, 1e-6);  // every onset on a beat
  // Durations: half a beat each, 0.25 s before the change and 0.5 s after.
  EXPECT_NEAR(f[76], (0.25 * 4 + 0.5 * 4) / 8.0 / 2.0, 1e-6);
  EXPECT_NEAR(f[78], 0.5 / 4.0, 1e-6);
  EXPECT_NEAR(f[79], 0.0, 1e-6);  // 0.5 beat is not staccato (< 0.25)
  // Notes per second and per beat.
  EXPECT_NEAR(f[62], 8.0 / 6.0 / 20.0, 1e-6);
  EXPECT_NEAR(f[63], 8.0 / 8.0 / 8.0, 1e-6);
  // Velocity 40..110 rising: positive slope, max 110.
  EXPECT_GT(f[93], 0.0f);
  EXPECT_NEAR(f[84], 110.0 / 127.0, 1e-6);
  // C major: major correlation wins, tonic-rotated histogram puts C first.
  EXPECT_GT(f[26], 0.0f);
  EXPECT_GT(f[12], f[13]);
  // Bars: 4/4 bar holds C E G C (3 classes), the 3/4 bars hold C E G and C.
  EXPECT_NEAR(f[112], (3.0 + 3.0 + 1.0) / 3.0 / 12.0, 1e-6);
  // Melody (top voice) intervals: +4 +3 +5 -12 +4 +3 +5.
  EXPECT_NEAR(f[51], 6.0 / 7.0, 1e-6);
  EXPECT_NEAR(f[49], 1.0 / 7.0, 1e-6);  // one octave leap (12+)
}

TEST(EmotionFeatures, SustainPedalAndPolyphony) {
  midi::Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {{0, 500000, 0.0}};
  s.end_tick = 7680;  // 8 s at 120 bpm
  s.notes.push_back(note(s, 60, 0, 960, 80));
  s.notes.push_back(note(s, 64, 0, 960, 80));
  s.notes.push_back(note(s, 67, 480, 1440, 80));
  s.controls.push_back({0, 0.0, 0, 0, 64, 127});
  s.controls.push_back({960, 1.0, 0, 0, 64, 0});
  s.controls.push_back({1440, 1.5, 0, 0, 64, 100});
  const EmotionFeatures f = emotion_features(s);
  EXPECT_NEAR(f[108], (1.0 + 6.5) / 8.0, 1e-6);  // down 0-1 s and from 1.5 s to the end
  EXPECT_NEAR(f[109], (2.0 / (8.0 / 60.0)) / 30.0, 1e-6);
  // Polyphony: 2 notes for 0.5 s, 3 for 0.5 s, 1 for 0.5 s → mean 2 over 1.5 s.
  EXPECT_NEAR(f[95], 2.0 / 8.0, 1e-6);
  EXPECT_NEAR(f[96], 3.0 / 16.0, 1e-6);
  EXPECT_NEAR(f[97], 0.0, 1e-6);
  // Harmonic pairs at the first onset: C-E, interval class 4 (consonant).
  EXPECT_NEAR(f[58], 1.0, 1e-6);
  EXPECT_NEAR(f[61], 1.0, 1e-6);
}

TEST(EmotionFeatures, EmptyScoreIsAllZerosButTempoMetreAndDuration) {
  midi::Score s;
  s.tempos = {{0, 500000, 0.0}};
  s.end_tick = 960;
  const EmotionFeatures f = emotion_features(s);
  for (size_t i = 0; i < kEmotionFeatureSize; ++i) {
    if (i == 98 || i == 100 || i == 101 || i == 105 || i == 115) continue;
    EXPECT_EQ(f[i], 0.0f) << i;
  }
  EXPECT_NEAR(f[98], 0.6, 1e-6);
  EXPECT_EQ(f[105], 1.0f);  // no signature: 4/4
}

TEST(EmotionFeatures, RealFilesWithTempoAndMetreChangesAgreeWithMido) {
  for (const char* file : {"openttd-openmsx/openmsx/be_sharp_bw_redfarn.mid", "openttd-openmsx/openmsx/midnight_snow_run.mid",
                           "mma-examples/examples/rndset/tempo.mid", "pop909/POP909/001/001.mid"}) {
    const std::string path = test::shared_data(file);
    const midi::Score score = midi::read_midi_file(path);
    const EmotionFeatures f = emotion_features(score);
    for (float v : f) ASSERT_TRUE(std::isfinite(v)) << path;
    const auto ref = test::run({test::python(), test::source_path("tests/reference/emotion_features_reference.py"), path});
    ASSERT_EQ(ref.exit_code, 0) << path;
    const auto j = nlohmann::json::parse(ref.output);
    ASSERT_GE(j.size(), 20u);
    for (const auto& [key, value] : j.items()) {
      EXPECT_NEAR(f[static_cast<size_t>(std::stoi(key))], value.get<double>(), 1e-5)
          << path << " feature " << key << " (" << emotion_feature_names()[static_cast<size_t>(std::stoi(key))] << ")";
    }
  }
}

}  // namespace
}  // namespace kmidi::features

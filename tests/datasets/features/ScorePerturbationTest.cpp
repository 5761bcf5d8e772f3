// Score perturbations and the training augmentation draw: hand-built scores
// with hand-computed expectations, spec parsing errors, config validation.

#include "datasets/features/ScorePerturbation.h"

#include <gtest/gtest.h>

#include <set>

#include "core/Errors.h"
#include "datasets/features/ScoreAugmentation.h"

namespace kmidi::features {
namespace {

/// 480 ticks per quarter at 120 bpm (0.5 s per beat): a C-E-G arpeggio of
/// quarter notes (velocities 20, 70, 120) on beats 0-2, a drum on beat 0, the
/// sustain pedal down from beat 1 to beat 4, a volume controller at tick 0.
midi::Score arpeggio() {
  midi::Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {{0, 500000, 0.0}};
  s.time_signatures = {{0, 4, 4}};
  auto add = [&](int pitch, int64_t start, int velocity, int channel) {
    midi::Note n;
    n.pitch = pitch;
    n.velocity = velocity;
    n.channel = channel;
    n.start_tick = start;
    n.end_tick = start + 480;
    s.notes.push_back(n);
  };
  add(36, 0, 100, 9);
  add(60, 0, 20, 0);
  add(64, 480, 70, 0);
  add(67, 960, 120, 0);
  s.controls = {{0, 0.0, 0, 0, 7, 90}, {480, 0.0, 0, 0, 64, 127}, {1920, 0.0, 0, 0, 64, 0}};
  s.end_tick = 2400;
  s.update_times();
  return s;
}

std::vector<int> velocities(const midi::Score& s) {
  std::vector<int> v;
  for (const auto& n : s.notes) v.push_back(n.velocity);
  return v;
}

TEST(ScorePerturbation, TransposeMovesPitchedNotesAndDropsThoseOutOfRange) {
  const midi::Score s = arpeggio();
  const midi::Score up = transpose(s, 3);
  ASSERT_EQ(up.notes.size(), 4u);
  EXPECT_EQ(up.notes[0].pitch, 36);  // the drum stays
  EXPECT_EQ(up.notes[1].pitch, 63);
  EXPECT_EQ(up.notes[3].pitch, 70);
  EXPECT_DOUBLE_EQ(up.notes[3].start_s, 1.0);
  // 67 + 61 = 128 leaves the MIDI range; 60 + 61 and 64 + 61 do not.
  const midi::Score far = transpose(s, 61);
  EXPECT_EQ(far.notes.size(), 3u);
  EXPECT_EQ(far.notes.back().pitch, 125);
}

TEST(ScorePerturbation, VelocityFlatteningLevelsAndScaling) {
  const midi::Score s = arpeggio();
  EXPECT_EQ(velocities(set_velocities(s, 80)), (std::vector<int>{80, 80, 80, 80}));
  EXPECT_EQ(velocities(quantise_velocities(s, 1)), (std::vector<int>{64, 64, 64, 64}));
  // Two levels split 0..127 at 64: centres 32 and 96.
  EXPECT_EQ(velocities(quantise_velocities(s, 2)), (std::vector<int>{96, 32, 96, 96}));
  // Three levels: 0..42 -> 21, 43..85 -> 64, 86..127 -> 107.
  EXPECT_EQ(velocities(quantise_velocities(s, 3)), (std::vector<int>{107, 21, 64, 107}));
  // x0.5: 50, 10, 35, 60; x1.5: 150 -> 127, 30, 105, 180 -> 127.
  EXPECT_EQ(velocities(scale_velocities(s, 0.5)), (std::vector<int>{50, 10, 35, 60}));
  EXPECT_EQ(velocities(scale_velocities(s, 1.5)), (std::vector<int>{127, 30, 105, 127}));
  EXPECT_EQ(velocities(scale_velocities(s, 0.001)), (std::vector<int>{1, 1, 1, 1}));
  // Pitched mean (20 + 70 + 120) / 3 = 70 -> 35: x0.5 (the drum is scaled, not counted).
  EXPECT_EQ(velocities(normalise_velocity_mean(s, 35)), (std::vector<int>{50, 10, 35, 60}));
  // x1.05 gives 105, 21, 74, 126 (pitched mean 73.67); back to mean 70: x0.9502.
  EXPECT_EQ(velocities(normalise_velocity_mean(scale_velocities(s, 1.05), 70)), (std::vector<int>{100, 20, 70, 120}));
}

TEST(ScorePerturbation, PedalRemovalKeepsWrittenDurationsAndBakingExtendsThem) {
  const midi::Score s = arpeggio();
  const midi::Score dry = remove_pedal(s);
  ASSERT_EQ(dry.controls.size(), 1u);
  EXPECT_EQ(dry.controls[0].controller, 7);
  for (size_t i = 0; i < s.notes.size(); ++i) EXPECT_EQ(dry.notes[i].end_tick, s.notes[i].end_tick);

  // The pedal is down over [480, 1920): C, released at the press tick, is not
  // held; E (released at 960) and G (1440) ring on to 1920; the drum is on
  // channel 9, which has no pedal.
  const midi::Score baked = bake_pedal(s);
  EXPECT_EQ(baked.controls.size(), 1u);
  EXPECT_EQ(baked.notes[0].end_tick, 480);  // the drum
  EXPECT_EQ(baked.notes[1].end_tick, 480);  // C
  EXPECT_EQ(baked.notes[2].end_tick, 1920);
  EXPECT_EQ(baked.notes[3].end_tick, 1920);
  EXPECT_DOUBLE_EQ(baked.notes[3].end_s, 2.0);
}

TEST(ScorePerturbation, BakedPedalStopsAtTheNextStrikeOfTheSameKey) {
  midi::Score s = arpeggio();
  midi::Note again = s.notes[2];  // E again at beat 2.5
  again.start_tick = 1200;
  again.end_tick = 1300;
  s.notes.push_back(again);
  s.update_times();
  const midi::Score baked = bake_pedal(s);
  EXPECT_EQ(baked.notes[2].end_tick, 1200);  // cut by the re-strike
  EXPECT_EQ(baked.notes[4].end_tick, 1920);  // the re-struck one rings to the release
}

TEST(ScorePerturbation, TempoScaleShrinksSecondsAndKeepsBeats) {
  const midi::Score s = arpeggio();
  const midi::Score fast = scale_tempo(s, 1.25);
  EXPECT_EQ(fast.tempos[0].microseconds_per_quarter, 400000);  // 150 bpm
  EXPECT_DOUBLE_EQ(fast.notes[3].start_beat, 2.0);
  EXPECT_DOUBLE_EQ(fast.notes[3].start_s, 0.8);
  EXPECT_DOUBLE_EQ(fast.duration_seconds(), 2.0);  // 5 beats at 0.4 s
  EXPECT_DOUBLE_EQ(fast.controls[2].seconds, 1.6);
}

TEST(ScorePerturbation, TempoMetaChangesBeatsAtTheSameSeconds) {
  const midi::Score s = arpeggio();
  // bpm x 1.25: 384 ticks per quarter, 400000 us per quarter (150 bpm).
  const midi::Score restated = restate_tempo(s, 1.25);
  EXPECT_EQ(restated.division.ticks_per_quarter, 384);
  EXPECT_EQ(restated.tempos[0].microseconds_per_quarter, 400000);
  EXPECT_DOUBLE_EQ(restated.notes[3].start_s, 1.0);
  EXPECT_DOUBLE_EQ(restated.notes[3].start_beat, 960.0 / 384.0);
  EXPECT_DOUBLE_EQ(restated.duration_seconds(), 2.5);
}

TEST(ScorePerturbation, TempoFlatKeepsSecondsOnOneTempoAndUndoesTempoMeta) {
  // The arpeggio slowed to 60 bpm from beat 2 (tick 960, 1 s): G sounds from
  // 1 s to 2 s, the pedal lifts at tick 1920 (3 s), the end is at 4 s.
  midi::Score s = arpeggio();
  s.tempos.push_back({960, 1000000, 0.0});
  s.update_times();
  ASSERT_DOUBLE_EQ(s.notes[3].end_s, 2.0);
  const midi::Score flat = flatten_tempo(s, 120);
  ASSERT_EQ(flat.tempos.size(), 1u);
  EXPECT_EQ(flat.tempos[0].microseconds_per_quarter, 500000);
  EXPECT_EQ(flat.division.ticks_per_quarter, 480);
  // 120 bpm at 480 ticks per quarter: 960 ticks per second.
  EXPECT_EQ(flat.notes[3].start_tick, 960);
  EXPECT_EQ(flat.notes[3].end_tick, 1920);
  EXPECT_DOUBLE_EQ(flat.notes[3].end_s, 2.0);
  EXPECT_DOUBLE_EQ(flat.notes[3].end_beat, 4.0);
  EXPECT_EQ(flat.controls[2].tick, 2880);
  EXPECT_DOUBLE_EQ(flat.duration_seconds(), 4.0);
  // At 90 bpm a second is 1.5 beats.
  EXPECT_DOUBLE_EQ(flatten_tempo(s, 90).notes[3].end_beat, 3.0);

  // tempo_meta:0.5 or :2 then tempo_flat:120 gives the beats and seconds of the original.
  const midi::Score original = arpeggio();
  for (double factor : {0.5, 2.0}) {
    const midi::Score back = flatten_tempo(restate_tempo(original, factor), 120);
    ASSERT_EQ(back.notes.size(), original.notes.size());
    for (size_t i = 0; i < back.notes.size(); ++i) {
      EXPECT_DOUBLE_EQ(back.notes[i].start_beat, original.notes[i].start_beat) << factor;
      EXPECT_DOUBLE_EQ(back.notes[i].end_beat, original.notes[i].end_beat) << factor;
      EXPECT_DOUBLE_EQ(back.notes[i].end_s, original.notes[i].end_s) << factor;
    }
  }
  EXPECT_EQ(parse_perturbations("tempo_flat:120").at(0).name, "tempo_flat");
  EXPECT_THROW(parse_perturbations("tempo_flat:5"), UsageError);
}

TEST(ScorePerturbation, CropKeepsAWindowMovedToZeroWithTheStateInForce) {
  const midi::Score s = arpeggio();
  // From 0.75 s (tick 720) for 0.5 s (to tick 1200): E starts at 480, before
  // the window; G starts at 960 (1 s), inside, and is cut at 1200.
  const midi::Score window = crop(s, 0.75, 0.5);
  ASSERT_EQ(window.notes.size(), 1u);
  EXPECT_EQ(window.notes[0].pitch, 67);
  EXPECT_EQ(window.notes[0].start_tick, 240);
  EXPECT_EQ(window.notes[0].end_tick, 480);
  EXPECT_DOUBLE_EQ(window.notes[0].start_s, 0.25);
  EXPECT_EQ(window.end_tick, 480);
  // The pedal is down at 720 and the volume was set at 0: both carry to tick 0.
  ASSERT_EQ(window.controls.size(), 2u);
  std::set<std::pair<int, int>> at_zero;
  for (const auto& c : window.controls) {
    EXPECT_EQ(c.tick, 0);
    at_zero.insert({c.controller, c.value});
  }
  EXPECT_EQ(at_zero, (std::set<std::pair<int, int>>{{7, 90}, {64, 127}}));
  ASSERT_EQ(window.tempos.size(), 1u);
  EXPECT_EQ(window.tempos[0].tick, 0);

  // crop:S from the start: the first second holds the drum, C and E.
  const midi::Score head = crop(s, 0.0, 1.0);
  EXPECT_EQ(head.notes.size(), 3u);
  EXPECT_DOUBLE_EQ(head.duration_seconds(), 1.0);
}

TEST(ScorePerturbation, SpecsParseInOrderAndBadPartsAreNamed) {
  const auto list = parse_perturbations("no_pedal,velocity_flat:80,transpose:-3");
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "no_pedal");
  EXPECT_EQ(list[1].name, "velocity_flat");
  EXPECT_DOUBLE_EQ(list[1].value, 80);
  EXPECT_DOUBLE_EQ(list[2].value, -3);
  EXPECT_TRUE(parse_perturbations("none").empty());
  EXPECT_TRUE(parse_perturbations("").empty());
  auto message = [](const std::string& spec) {
    try {
      parse_perturbations(spec);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("velocity_flat:200").find("'velocity_flat:200'"), std::string::npos);
  EXPECT_NE(message("transpose:1.5").find("integer"), std::string::npos);
  EXPECT_NE(message("tempo_scale").find("needs a value"), std::string::npos);
  EXPECT_NE(message("no_pedal:1").find("takes no value"), std::string::npos);
  EXPECT_NE(message("wobble:2").find("unknown name 'wobble'"), std::string::npos);
  EXPECT_NE(message("crop:ten").find("not a number"), std::string::npos);

  // Applied in order: flattening then scaling gives 80 x 0.5 = 40 everywhere.
  EXPECT_EQ(velocities(apply_perturbations(arpeggio(), parse_perturbations("velocity_flat:80,velocity_scale:0.5"))),
            (std::vector<int>{40, 40, 40, 40}));
}

ScoreAugmentConfig augment_from(const std::string& yaml) {
  auto doc = config::Document::load_string(yaml, "augment.yaml", "/");
  ScoreAugmentConfig c;
  doc.read_into(c);
  return c;
}

std::string augment_error(const std::string& yaml) {
  try {
    augment_from(yaml);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(ScoreAugmentation, BadRangesAndUnknownKeysAreConfigErrorsNamingTheKey) {
  EXPECT_FALSE(augment_from("{}").enabled());
  EXPECT_TRUE(augment_from("transpose: [-3, 3]").enabled());
  EXPECT_NE(augment_error("transpose: [3, -3]").find("transpose"), std::string::npos);
  EXPECT_NE(augment_error("tempo_scale: [0.8]").find("tempo_scale"), std::string::npos);
  EXPECT_NE(augment_error("tempo_scale: [0.1, 1.2]").find("tempo_scale"), std::string::npos);
  EXPECT_NE(augment_error("velocity_flatten_p: 1.5").find("velocity_flatten_p"), std::string::npos);
  EXPECT_NE(augment_error("pedal_removal_p: 0.7\npedal_bake_p: 0.5").find("pedal_bake_p"), std::string::npos);
  EXPECT_NE(augment_error("crop_p: 0.5").find("crop_p"), std::string::npos);
  EXPECT_NE(augment_error("crop_s: [0.1, 10]").find("crop_s"), std::string::npos);
  EXPECT_NE(augment_error("pedal_p: 0.5").find("pedal_p"), std::string::npos);
}

TEST(ScoreAugmentation, DrawsArePureFunctionsOfSeedEpochAndClip) {
  const ScoreAugmentConfig c = augment_from(
      "transpose: [-3, 3]\ntempo_scale: [0.8, 1.25]\nvelocity_flatten_p: 0.5\npedal_removal_p: 0.5\n"
      "crop_s: [5, 10]\ncrop_p: 0.5");
  auto text = [](const std::vector<Perturbation>& list) {
    std::string t;
    for (const auto& p : list) t += p.name + ":" + std::to_string(p.value) + "@" + std::to_string(p.start_s) + " ";
    return t;
  };
  EXPECT_EQ(text(draw_augmentation(c, 7, 2, 11, 30.0)), text(draw_augmentation(c, 7, 2, 11, 30.0)));
  std::set<std::string> seen;
  int transposed = 0, flattened = 0, no_pedal = 0, cropped = 0;
  for (int64_t index = 0; index < 400; ++index) {
    const auto draw = draw_augmentation(c, 7, 0, index, 30.0);
    seen.insert(text(draw));
    for (const auto& p : draw) {
      if (p.name == "transpose") {
        ++transposed;
        EXPECT_TRUE(p.value >= -3 && p.value <= 3 && p.value != 0) << p.value;
      }
      if (p.name == "tempo_scale") EXPECT_TRUE(p.value >= 0.8 && p.value <= 1.25) << p.value;
      if (p.name == "velocity_flat" || p.name == "velocity_levels") ++flattened;
      if (p.name == "no_pedal") ++no_pedal;
      if (p.name == "crop") {
        ++cropped;
        EXPECT_TRUE(p.value >= 5 && p.value <= 10 && p.start_s >= 0 && p.start_s + p.value <= 30.0);
      }
    }
  }
  EXPECT_GT(seen.size(), 390u);  // clips differ
  // 6 of 7 transpositions move; the probabilities hold within a few sigma.
  EXPECT_NEAR(transposed, 400 * 6 / 7, 40);
  EXPECT_NEAR(flattened, 200, 40);
  EXPECT_NEAR(no_pedal, 200, 40);
  EXPECT_NEAR(cropped, 200, 40);
  // Another epoch or seed draws again.
  EXPECT_NE(text(draw_augmentation(c, 7, 0, 5, 30.0)), text(draw_augmentation(c, 7, 1, 5, 30.0)));
  EXPECT_NE(text(draw_augmentation(c, 7, 0, 5, 30.0)), text(draw_augmentation(c, 8, 0, 5, 30.0)));
  // A clip shorter than the crop window is never cropped.
  for (int64_t index = 0; index < 50; ++index) {
    for (const auto& p : draw_augmentation(c, 7, 0, index, 4.0)) EXPECT_NE(p.name, "crop");
  }
}

}  // namespace
}  // namespace kmidi::features

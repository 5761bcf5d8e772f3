// Encoding against hand-written token sequences, decoding of valid, invalid
// and random sequences, and round trips within the quantization grid.

#include "datasets/tokenizer/Tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <tuple>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Strings.h"

namespace kmidi::tokenizer {
namespace {

TokenizerConfig from_yaml(const std::string& text) {
  TokenizerConfig c;
  config::Document::load_string(text, "tok.yaml", "/").read_into(c);
  return c;
}

// A small vocabulary that keeps hand-written sequences readable: 4 steps per
// quarter, velocities {1, 43, 85, 127}, tempos {55, 87.31, 138.59, 220},
// durations 1..8 steps.
const char* kSmall =
    "positions_per_quarter: 4\npitch_min: 60\npitch_max: 72\ndrum_pitch_min: 35\ndrum_pitch_max: 40\n"
    "velocity_bins: 4\nduration_max_quarters: 2\ntempo_bins: 4\ntempo_min: 55\ntempo_max: 220\n"
    "allowed_time_signatures: [4/4, 3/4]\n";

midi::Note note(int pitch, int velocity, int program, int64_t start, int64_t end, int channel = 0) {
  midi::Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.program = program;
  n.channel = channel;
  n.start_tick = start;
  n.end_tick = end;
  return n;
}

midi::Score hand_built_score() {
  midi::Score s;
  s.division.ticks_per_quarter = 480;  // one grid step = 120 ticks
  s.tempos = {midi::TempoChange{0, 600000, 0.0},      // 100 bpm -> bin 1 (87.31)
              midi::TempoChange{2160, 300000, 0.0}};  // 200 bpm at step 18 -> bin 3 (220)
  s.time_signatures = {midi::TimeSignature{0, 4, 4}, midi::TimeSignature{3840, 3, 4}};
  s.notes = {
      note(60, 100, 0, 0, 480),          // step 0, 4 steps, velocity 100 -> 85
      note(64, 30, 0, 0, 130),           // 130 ticks = 1.08 steps -> 1; velocity 30 -> 43
      note(36, 127, 0, 250, 300, 9),     // drum at 2.08 -> step 2; 50 ticks -> 0 -> at least 1
      note(90, 64, 0, 0, 480),           // outside 60..72: dropped
      note(67, 64, 40, 2040, 5040),      // step 17 = bar 1 pos 1; 25 steps clipped to 8; 64 ties -> 43
      note(72, 1, 0, 4800, 5280),        // step 40 = bar 2 (3/4 from step 32) pos 8
      note(65, 85, 0, 7200, 7440),       // step 60 = bar 4 (44..56 is bar 3, empty) pos 4
  };
  return s;
}

std::vector<int32_t> ids_of(const Tokenizer& tok, const std::string& names) {
  std::vector<int32_t> ids;
  for (const std::string& n : strings::split(names, ' ')) {
    const int32_t id = tok.vocab().find(n);
    EXPECT_GE(id, 0) << n;
    ids.push_back(id);
  }
  return ids;
}

TEST(Tokenizer, EncodesHandBuiltScorePerNote) {
  const Tokenizer tok(from_yaml(kSmall));
  EncodeStats stats;
  const std::vector<int32_t> ids = tok.encode(hand_built_score(), &stats);
  EXPECT_EQ(tok.describe(ids.data(), ids.size()),
            "BOS Bar TimeSig_4/4 Position_0 Tempo_87.31 Program_0 Pitch_60 Velocity_85 Duration_4 "
            "Program_0 Pitch_64 Velocity_43 Duration_1 Position_2 PitchDrum_36 Velocity_127 Duration_1 "
            "Bar Position_1 Program_40 Pitch_67 Velocity_43 Duration_8 Position_2 Tempo_220.00 "
            "Bar TimeSig_3/4 Position_8 Program_0 Pitch_72 Velocity_1 Duration_4 "
            "Bar Bar Position_4 Program_0 Pitch_65 Velocity_85 Duration_2 EOS");
  EXPECT_EQ(stats.notes_in, 7);
  EXPECT_EQ(stats.notes_encoded, 6);
  EXPECT_EQ(stats.pitch_out_of_range, 1);
  EXPECT_EQ(stats.durations_clipped, 1);
  EXPECT_EQ(stats.bars, 5);
  EXPECT_EQ(stats.tokens, static_cast<int64_t>(ids.size()));
  // Stats add up over calls.
  tok.encode(hand_built_score(), &stats);
  EXPECT_EQ(stats.notes_in, 14);
}

TEST(Tokenizer, EncodesProgramOnChangeAndNone) {
  TokenizerConfig c = from_yaml(kSmall);
  c.program_mode = "on_change";
  const Tokenizer on_change(c);
  auto ids = on_change.encode(hand_built_score());
  EXPECT_EQ(on_change.describe(ids.data(), ids.size()),
            "BOS Bar TimeSig_4/4 Position_0 Tempo_87.31 Program_0 Pitch_60 Velocity_85 Duration_4 "
            "Pitch_64 Velocity_43 Duration_1 Position_2 PitchDrum_36 Velocity_127 Duration_1 "
            "Bar Position_1 Program_40 Pitch_67 Velocity_43 Duration_8 Position_2 Tempo_220.00 "
            "Bar TimeSig_3/4 Position_8 Program_0 Pitch_72 Velocity_1 Duration_4 "
            "Bar Bar Position_4 Pitch_65 Velocity_85 Duration_2 EOS");
  c.program_mode = "none";
  c.tempos = false;
  c.time_signatures = false;
  const Tokenizer none(c);
  ids = none.encode(hand_built_score());
  // Without time signatures every bar is 4/4 (16 steps): step 40 is bar 2 pos 8, step 60 bar 3 pos 12.
  EXPECT_EQ(none.describe(ids.data(), ids.size()),
            "BOS Bar Position_0 Pitch_60 Velocity_85 Duration_4 Pitch_64 Velocity_43 Duration_1 "
            "Position_2 PitchDrum_36 Velocity_127 Duration_1 Bar Position_1 Pitch_67 Velocity_43 Duration_8 "
            "Bar Position_8 Pitch_72 Velocity_1 Duration_4 Bar Position_12 Pitch_65 Velocity_85 Duration_2 EOS");
}

TEST(Tokenizer, DecodesHandBuiltScoreWithTempoMap) {
  const Tokenizer tok(from_yaml(kSmall));
  DecodeStats stats;
  const midi::Score s = tok.decode(tok.encode(hand_built_score()), &stats);
  EXPECT_EQ(stats.invalid, 0);
  EXPECT_EQ(stats.notes, 6);
  ASSERT_EQ(s.notes.size(), 6u);
  EXPECT_EQ(s.division.ticks_per_quarter, 480);
  ASSERT_EQ(s.tempos.size(), 2u);
  EXPECT_EQ(s.tempos[0].tick, 0);
  EXPECT_EQ(s.tempos[0].microseconds_per_quarter, std::llround(60e6 / (55.0 * std::cbrt(4.0))));
  EXPECT_EQ(s.tempos[1].tick, 2160);
  EXPECT_EQ(s.tempos[1].microseconds_per_quarter, 272727);
  ASSERT_EQ(s.time_signatures.size(), 2u);
  EXPECT_EQ(s.time_signatures[1].tick, 3840);
  EXPECT_EQ(s.time_signatures[1].numerator, 3);

  const double q1 = s.tempos[0].microseconds_per_quarter / 1e6;  // seconds per quarter before step 18
  const double q2 = 0.272727;
  // (start_tick, end_tick, pitch, velocity, channel, program) in Score order.
  struct Expect { int64_t start, end; int pitch, velocity, channel, program; double start_s; };
  const Expect expected[] = {
      {0, 480, 60, 85, 0, 0, 0.0},
      {0, 120, 64, 43, 0, 0, 0.0},
      {240, 360, 36, 127, 9, 0, 0.5 * q1},
      {2040, 3000, 67, 43, 1, 40, 4.25 * q1},
      {4800, 5280, 72, 1, 0, 0, 4.5 * q1 + 5.5 * q2},
      {7200, 7440, 65, 85, 0, 0, 4.5 * q1 + 10.5 * q2},
  };
  for (size_t i = 0; i < 6; ++i) {
    SCOPED_TRACE(i);
    const midi::Note& n = s.notes[i];
    EXPECT_EQ(n.start_tick, expected[i].start);
    EXPECT_EQ(n.end_tick, expected[i].end);
    EXPECT_EQ(n.pitch, expected[i].pitch);
    EXPECT_EQ(n.velocity, expected[i].velocity);
    EXPECT_EQ(n.channel, expected[i].channel);
    EXPECT_EQ(n.program, expected[i].program);
    EXPECT_NEAR(n.start_s, expected[i].start_s, 1e-9);
    EXPECT_DOUBLE_EQ(n.start_beat, expected[i].start / 480.0);
  }
  // Track per instrument in order of first appearance: program 0, drums, program 40.
  EXPECT_EQ(s.track_names, (std::vector<std::string>{"Program 0", "Drums", "Program 40"}));
  EXPECT_EQ(s.notes[2].track, 1);
  EXPECT_EQ(s.notes[3].track, 2);
  EXPECT_EQ(s.num_tracks, 3);
  EXPECT_EQ(s.end_tick, (56 + 12) * 120);  // the end of the last (3/4) bar
}

TEST(Tokenizer, TimeSignatureRules) {
  TokenizerConfig c = from_yaml(kSmall);
  const Tokenizer tok(c);
  midi::Score s;
  s.division.ticks_per_quarter = 480;
  s.tempos = {midi::TempoChange{0, 600000, 0.0}};
  s.time_signatures = {midi::TimeSignature{0, 4, 4}, midi::TimeSignature{960, 3, 4}};  // mid-bar change
  s.notes = {note(60, 127, 0, 0, 480), note(61, 127, 0, 1920 + 1440 + 480, 1920 + 1440 + 960)};
  auto ids = tok.encode(s);
  // The 3/4 takes effect at the next bar line (step 16): bar 1 is 16..28, the note at step 32 is bar 2 pos 4.
  EXPECT_EQ(tok.describe(ids.data(), ids.size()),
            "BOS Bar TimeSig_4/4 Position_0 Tempo_87.31 Program_0 Pitch_60 Velocity_127 Duration_4 "
            "Bar TimeSig_3/4 Bar Position_4 Program_0 Pitch_61 Velocity_127 Duration_4 EOS");

  s.time_signatures = {midi::TimeSignature{0, 5, 8}};
  EXPECT_THROW(
      {
        try {
          tok.encode(s);
        } catch (const DataError& e) {
          EXPECT_STREQ(e.what(),
                       "time signature 5/8 at tick 0 is not in tokenizer.allowed_time_signatures and no "
                       "time_signature_fallback is set");
          throw;
        }
      },
      DataError);
  c.time_signature_fallback = "4/4";
  const Tokenizer fallback(c);
  EncodeStats st;
  ids = fallback.encode(s, &st);
  EXPECT_EQ(st.time_signatures_replaced, 1);
  EXPECT_EQ(fallback.vocab().name(ids[2]), "TimeSig_4/4");
}

TEST(Tokenizer, BarLimitGuardsAgainstCorruptTicks) {
  TokenizerConfig c = from_yaml(kSmall);
  c.max_bars = 100;
  const Tokenizer tok(c);
  midi::Score s;
  s.notes = {note(60, 100, 0, int64_t{1} << 40, (int64_t{1} << 40) + 480)};
  try {
    tok.encode(s);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("the score is longer than tokenizer.max_bars (100 bars)"), std::string::npos);
  }
}

TEST(Tokenizer, EmptyScoreEncodesTempoOnly) {
  const Tokenizer tok(from_yaml(kSmall));
  midi::Score s;
  auto ids = tok.encode(s);
  EXPECT_EQ(tok.describe(ids.data(), ids.size()), "BOS Bar TimeSig_4/4 Position_0 Tempo_138.59 EOS");  // 120 bpm default
  const midi::Score d = tok.decode(ids);
  EXPECT_TRUE(d.notes.empty());
}

TEST(Tokenizer, DecodeSkipsAndCountsGrammarErrors) {
  const Tokenizer tok(from_yaml(kSmall));
  std::vector<int32_t> ids = ids_of(
      tok,
      "Position_0 BOS Bar Pitch_60 Position_0 Program_0 Pitch_60 Duration_4 Pitch_62 Velocity_43 Duration_2 "
      "TimeSig_3/4 MASK Bar TimeSig_3/4 Position_13 Position_5 Position_3 Velocity_1 PAD Pitch_61 Velocity_127 "
      "PAD Duration_1 Pitch_63 Bar BOS Position_2 Tempo_55.00 PitchDrum_35 Velocity_1 Duration_8 EOS Pitch_60 Bar");
  ids.insert(ids.begin() + 5, 9999);  // out of vocabulary, between Position_0 and Program_0
  ids.insert(ids.begin() + 6, -1);
  DecodeStats st;
  const midi::Score s = tok.decode(ids, &st);
  // Invalid: Position before Bar, Pitch before Position, 9999, -1, Duration after Pitch
  // (drops the pending note), TimeSig after Position, MASK, Position_13 (3/4 bar has 12
  // steps), Position_3 after Position_5, Velocity without Pitch, BOS after the start.
  EXPECT_EQ(st.invalid, 11);
  EXPECT_EQ(st.out_of_vocabulary, 2);
  EXPECT_EQ(st.incomplete_notes, 2);  // Pitch_60 cut by Duration; Pitch_63 cut by Bar
  EXPECT_EQ(st.pad, 2);
  EXPECT_EQ(st.after_eos, 2);
  EXPECT_EQ(st.notes, 3);
  ASSERT_EQ(s.notes.size(), 3u);
  EXPECT_EQ(s.notes[0].pitch, 62);  // bar 0 pos 0, program carried over
  EXPECT_EQ(s.notes[0].end_tick, 240);
  EXPECT_EQ(s.notes[1].pitch, 61);  // bar 1 (3/4) starts at step 16; pos 5 -> step 21
  EXPECT_EQ(s.notes[1].start_tick, 21 * 120);
  EXPECT_EQ(s.notes[2].pitch, 35);  // bar 2 starts at 16 + 12 = 28; pos 2 -> step 30
  EXPECT_EQ(s.notes[2].start_tick, 30 * 120);
  EXPECT_EQ(s.notes[2].channel, 9);
  ASSERT_EQ(s.tempos.size(), 2u);  // 120 bpm default, then 55 at step 30
  EXPECT_EQ(s.tempos[1].tick, 30 * 120);
  EXPECT_EQ(s.tempos[1].microseconds_per_quarter, 1090909);
}

void expect_valid_score(const midi::Score& s) {
  for (size_t i = 0; i < s.notes.size(); ++i) {
    const midi::Note& n = s.notes[i];
    ASSERT_GE(n.pitch, 0);
    ASSERT_LE(n.pitch, 127);
    ASSERT_GE(n.velocity, 1);
    ASSERT_LE(n.velocity, 127);
    ASSERT_GE(n.channel, 0);
    ASSERT_LE(n.channel, 15);
    ASSERT_EQ(n.is_drum(), s.track_names[static_cast<size_t>(n.track)] == "Drums");
    ASSERT_GT(n.end_tick, n.start_tick);
    ASSERT_LE(n.start_s, n.end_s);
    ASSERT_LE(n.end_tick, s.end_tick);
    if (i) ASSERT_LE(s.notes[i - 1].start_tick, n.start_tick);
  }
  for (size_t i = 1; i < s.tempos.size(); ++i) ASSERT_LT(s.tempos[i - 1].tick, s.tempos[i].tick);
}

TEST(Tokenizer, DecodeAcceptsRandomIdSequences) {
  for (const char* mode : {"per_note", "on_change", "none"}) {
    TokenizerConfig c;
    c.program_mode = mode;
    const Tokenizer tok(c);
    std::mt19937 rng(1234);
    int64_t notes = 0;
    for (int trial = 0; trial < 300; ++trial) {
      std::uniform_int_distribution<int> len(0, 3000);
      std::uniform_int_distribution<int32_t> any(-5, tok.vocab_size() + 5);
      std::vector<int32_t> ids(static_cast<size_t>(len(rng)));
      for (auto& id : ids) id = any(rng);
      // Half the trials bias toward structure so that notes actually form.
      if (trial % 2) {
        for (size_t i = 0; i + 4 < ids.size(); i += 7) {
          ids[i] = tok.vocab().range(TokenKind::kPosition).first + (ids[i] & 7);
          ids[i + 1] = tok.vocab().range(TokenKind::kProgram).first;
          ids[i + 2] = tok.vocab().range(TokenKind::kPitch).first + (ids[i + 2] & 15);
          ids[i + 3] = tok.vocab().range(TokenKind::kVelocity).first + 3;
          ids[i + 4] = tok.vocab().range(TokenKind::kDuration).first + 5;
        }
        if (!ids.empty()) ids[0] = tok.vocab().range(TokenKind::kBar).first;
      }
      DecodeStats st;
      const midi::Score s = tok.decode(ids, &st);
      expect_valid_score(s);
      ASSERT_EQ(st.notes, static_cast<int64_t>(s.notes.size()));
      notes += st.notes;
    }
    EXPECT_GT(notes, 1000) << mode;  // the structured half yields notes
  }
}

TEST(Tokenizer, EncodeSurvivesExtremeScores) {
  const Tokenizer tok{TokenizerConfig{}};
  std::mt19937 rng(7);
  int encoded = 0, refused = 0;
  for (int trial = 0; trial < 400; ++trial) {
    midi::Score s;
    s.division.ticks_per_quarter = trial % 3 == 0 ? 1 : trial % 3 == 1 ? 32767 : 96;
    if (trial % 7 == 0) {
      s.division.smpte = true;
      s.division.frames_per_second = 29;
      s.division.ticks_per_frame = 1 + trial % 80;
    }
    // Tempo events of 0 and of the largest 24-bit value.
    s.tempos = {midi::TempoChange{0, trial % 2 ? 0 : 0xFFFFFF, 0.0}, midi::TempoChange{int64_t{1} << (trial % 40), 1, 0.0}};
    s.time_signatures = {midi::TimeSignature{0, 1 + trial % 12, 1 << (trial % 4)}};
    std::uniform_int_distribution<int64_t> tick(0, int64_t{1} << (trial % 50));
    for (int k = 0; k < 50; ++k) {
      midi::Note n = note(static_cast<int>(rng() % 128), static_cast<int>(rng() % 128), static_cast<int>(rng() % 128),
                          tick(rng), 0, static_cast<int>(rng() % 16));
      n.end_tick = k % 5 == 0 ? n.start_tick - 1 : n.start_tick + tick(rng);  // even reversed notes
      s.notes.push_back(n);
    }
    try {
      const auto ids = tok.encode(s);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
      expect_valid_score(tok.decode(ids));
      ++encoded;
    } catch (const DataError& e) {
      const std::string what = e.what();
      ASSERT_TRUE(what.find("max_bars") != std::string::npos || what.find("time signature") != std::string::npos) << what;
      ++refused;
    }
  }
  EXPECT_GT(encoded, 30);  // both outcomes are exercised
  EXPECT_GT(refused, 30);
}

/// Round trip of random scores: every kept note comes back at its grid-rounded
/// onset and duration, with its velocity bin's value; dropped notes are counted.
TEST(Tokenizer, RandomScoresRoundTripWithinGrid) {
  for (const char* mode : {"per_note", "on_change", "none"}) {
    TokenizerConfig c;
    c.program_mode = mode;
    const Tokenizer tok(c);
    std::mt19937 rng(99);
    for (int trial = 0; trial < 40; ++trial) {
      midi::Score s;
      s.division.ticks_per_quarter = trial % 2 ? 480 : 384;
      const int64_t tpq = s.division.ticks_per_quarter;
      s.tempos = {midi::TempoChange{0, 500000 + trial * 7000, 0.0}};
      if (trial % 3 == 0) s.time_signatures = {midi::TimeSignature{0, 3, 4}, midi::TimeSignature{tpq * 3 * 4, 6, 8}};
      std::uniform_int_distribution<int64_t> start(0, tpq * 64);
      std::uniform_int_distribution<int64_t> length(0, tpq * 10);
      std::uniform_int_distribution<int> pitch(10, 120), velocity(1, 127), program(0, 127), drum(0, 5);
      int64_t expected_dropped = 0;
      std::multiset<std::tuple<int64_t, int, int, int, int64_t>> expected;  // grid, pitch, drum/program, velocity, steps
      for (int k = 0; k < 200; ++k) {
        midi::Note n = note(pitch(rng), velocity(rng), program(rng), start(rng), 0, drum(rng) == 0 ? 9 : 0);
        n.end_tick = n.start_tick + length(rng);
        s.notes.push_back(n);
        const bool is_drum = n.channel == 9;
        const bool kept = is_drum ? n.pitch >= 21 && n.pitch <= 87 : n.pitch >= 21 && n.pitch <= 108;
        if (!kept) { ++expected_dropped; continue; }
        const int64_t grid = (n.start_tick * 12 * 2 + tpq) / (2 * tpq);  // rounded half up
        int64_t steps = ((n.end_tick - n.start_tick) * 12 * 2 + tpq) / (2 * tpq);
        steps = std::clamp<int64_t>(steps, 1, 96);
        const int instrument = is_drum ? 128 : (std::string(mode) == "none" ? 0 : n.program);
        const int vel = tok.vocab().velocity_value(tok.vocab().velocity_bin(n.velocity));
        expected.insert({grid, n.pitch, instrument, vel, steps});
      }
      EncodeStats es;
      const auto ids = tok.encode(s, &es);
      EXPECT_EQ(es.pitch_out_of_range + es.drums_out_of_range, expected_dropped);
      DecodeStats ds;
      const midi::Score d = tok.decode(ids, &ds);
      EXPECT_EQ(ds.invalid, 0);
      EXPECT_EQ(ds.incomplete_notes, 0);
      std::multiset<std::tuple<int64_t, int, int, int, int64_t>> got;
      for (const midi::Note& n : d.notes) {
        ASSERT_EQ(n.start_tick % 40, 0);  // decoded at 480 tpq: 40 ticks per step
        const int instrument = n.is_drum() ? 128 : n.program;
        got.insert({n.start_tick / 40, n.pitch, instrument, n.velocity, (n.end_tick - n.start_tick) / 40});
      }
      ASSERT_EQ(got, expected) << mode << " trial " << trial;
      // Re-encoding the decoded score is a fixed point.
      const midi::Score d2 = tok.decode(tok.encode(d));
      ASSERT_EQ(tok.encode(d2), tok.encode(d));
    }
  }
}

}  // namespace
}  // namespace kmidi::tokenizer
